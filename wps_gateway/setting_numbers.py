"""A setting that must be a number above zero, read with one clear message when it is not."""

from __future__ import annotations


def above_zero(text: str, kind: type[float] | type[int], where: str, what: str) -> float:
    """``text`` as ``kind`` (int or float); ValueError ``"{where} must be {what}, not '...'"`` unless above 0."""
    try:
        number = kind(text)
    except ValueError:
        number = 0
    if not number > 0:
        raise ValueError(f"{where} must be {what}, not {text!r}")
    return number
