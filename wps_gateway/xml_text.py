"""Text as an XML document can hold it.

XML 1.0 has no place for NUL, most control characters, lone surrogates,
U+FFFE and U+FFFF, and lxml refuses them. A job's message (a task's last
stderr line, colours and all), a literal output or an echoed request may hold
them; the document that shows them must not fail for it.
"""

from __future__ import annotations

import re

NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text: str) -> str:
    """``text`` with every character XML has no place for replaced by U+FFFD."""
    return NOT_XML.sub("\ufffd", text)
