"""Where a task's input data lives, as places an engine can match against its machines.

Operators describe their storage with rules ``PREFIX PLACE``: an input whose
URL starts with PREFIX lives at PLACE. A place is what the Mesos backend
matches against agent attributes (``storage=site-a``, ``rack=r1``) or host
names; the local backend ignores it.
"""

from __future__ import annotations

from collections.abc import Iterable


class LocalityRuleError(ValueError):
    """A ``data_locality`` rule is not ``PREFIX PLACE``."""


def parse_rules(text: str) -> list[tuple[str, str]]:
    """``"file:///eodata/a/ storage=a, https://b.example.org/ storage=b"`` as (prefix, place) pairs."""
    rules = []
    for part in text.split(","):
        if not part.strip():
            continue
        fields = part.split()
        if len(fields) != 2:
            raise LocalityRuleError(f"data_locality rule {part.strip()!r} is not 'PREFIX PLACE'")
        rules.append((fields[0], fields[1]))
    # The longest prefix wins, so a specific folder can override its parent.
    return sorted(rules, key=lambda rule: len(rule[0]), reverse=True)


def places_for(items: Iterable[object], rules: list[tuple[str, str]]) -> list[str]:
    """The places of the items that match a rule, each once, in the items' order."""
    places: dict[str, None] = {}
    for item in items:
        text = str(item)
        for prefix, place in rules:
            if text.startswith(prefix):
                places[place] = None
                break
    return list(places)
