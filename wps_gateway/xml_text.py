"""Text as an XML document can hold it.

XML 1.0 has no place for NUL, most control characters, lone surrogates,
U+FFFE and U+FFFF, and lxml refuses them. A job's message (a task's last
stderr line, colours and all), a literal output or an echoed request may hold
them; the document that shows them must not fail for it. The WPS renderers'
element makers take ``SAFE_TEXT`` as their typemap, so every text they write
goes through ``xml_text``.
"""

from __future__ import annotations

import re

NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text: str) -> str:
    """``text`` with every character XML has no place for replaced by U+FFFD."""
    return NOT_XML.sub("\ufffd", text)


def _add_text(element, text: str) -> None:
    """How ``lxml.builder`` adds a text child (after the last child element, else as the text), made safe."""
    text = xml_text(text)
    if len(element):
        element[-1].tail = (element[-1].tail or "") + text
    else:
        element.text = (element.text or "") + text


SAFE_TEXT = {str: _add_text}  # an ElementMaker typemap
