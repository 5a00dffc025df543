"""Counted nouns for people: "1 problem", "6 targets", never "6 target(s)" nor "1 problems".

Every layer that words a count for people (views, notices from services and results) uses
`counted`, so singular and plural are chosen in one place.
"""

from __future__ import annotations


def counted(n: int, singular: str, plural: str | None = None) -> str:
    """`n` and the noun that fits it: counted(1, "run") -> "1 run", counted(3, "run") -> "3 runs";
    an irregular plural is given: counted(2, "run head", "run heads")."""
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"
