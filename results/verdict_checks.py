"""Comparing verdicts: what a record gives when classified again against what is claimed.

A verdict is stored (a database's measurement row) or claimed (an evidence bundle's verdict
line) and can always be classified again from the signed raw records; both checks
(`results.verify.check_verdicts`, `services.bundle_claims`) compare the two here, column by
column, in the form the store keeps them (`results.rows.verdict_columns`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from results import rows as R


def verdict_differences(stored: Mapping[str, Any], fresh: Mapping[str, Any]
                        ) -> list[tuple[str, Any, Any]]:
    """(column, stored value, fresh value) of each verdict column in which `stored` (the
    columns of a measurement row, `results.rows.verdict_columns`) differs from what the
    verdict dict `fresh` gives, in column order (types count: see `same_value`)."""
    want = R.verdict_columns(fresh)
    return [(name, stored.get(name), value) for name, value in want.items()
            if not same_value(stored.get(name), value)]


def same_value(stored: Any, derived: Any) -> bool:
    """A stored value equals a derived one, type included (SQLite would happily keep the text
    '443' in an INTEGER column)."""
    if any(isinstance(v, float) for v in (stored, derived)):
        # A REAL column gives back 5.0 for 5, and canonical JSON writes 0.0 as 0: compare
        # numbers as numbers (but never a number with text or a boolean).
        return all(isinstance(v, int | float) and not isinstance(v, bool)
                   for v in (stored, derived)) and stored == derived
    return type(stored) is type(derived) and stored == derived
