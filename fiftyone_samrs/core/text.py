"""Small text helpers for what users read: counts with the right plural and
numbers without a negative zero.

No FiftyOne import here.
"""

from __future__ import annotations

from typing import Optional

#: irregular plurals of the nouns counted in summaries
_IRREGULAR = {"box": "boxes", "class": "classes", "pass": "passes"}


def plural(n: int, word: str, many: Optional[str] = None) -> str:
    """``"1 image"``, ``"2 images"``, ``"0 boxes"``.

    Args:
        n: the count
        word: the singular noun (a phrase whose first word is counted, e.g.
            ``"empty mask"`` -> ``"2 empty masks"``)
        many: the plural, when not ``word + "s"`` or a known irregular one
    """
    if n == 1:
        return "%d %s" % (n, word)
    if many is None:
        head, _, last = word.rpartition(" ")
        last = _IRREGULAR.get(last, last + "s")
        many = (head + " " + last) if head else last
    return "%d %s" % (n, many)


def num(value: float, fmt: str = "%.1f") -> str:
    """``fmt % value`` without a negative zero (``-0.0`` -> ``0.0``)."""
    text = fmt % value
    stripped = text.lstrip("-")
    if stripped != text and not any(c in "123456789" for c in stripped):
        return stripped
    return text
