"""Time in one place: the store's UTC format, the one parser, the wall clock and the step clock.

Every stored time is ISO 8601 UTC with microseconds and a `Z` (`STORE_FORMAT`). Anything that
reads a time from a user, a file or a row goes through `parse_utc`, which accepts any ISO 8601
form (dates, `Z`, offsets) and takes a time without an offset to be UTC already.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import overload

from core.errors import TimeFormatError

STORE_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
#: Whole seconds, for bins and labels where microseconds are noise.
SECONDS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
#: A minute of a wall clock, for people; the zone is named beside it.
WALL_MINUTE_FORMAT = "%Y-%m-%d %H:%M"
MINUTE_FORMAT = f"{WALL_MINUTE_FORMAT} UTC"


class Clock:
    """Seconds since a measurement started, from the monotonic clock (the steps' `t0`/`t`)."""

    def __init__(self) -> None:
        self._start = time.monotonic()

    def now(self) -> float:
        return round(time.monotonic() - self._start, 6)


def utc_now() -> str:
    """The current time in the store's format."""
    return datetime.now(UTC).strftime(STORE_FORMAT)


def format_utc(moment: datetime, fmt: str = STORE_FORMAT) -> str:
    """An aware (or UTC-naive) datetime in the store's format, or in `fmt`."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime(fmt)


@overload
def parse_utc(value: str | datetime) -> datetime: ...
@overload
def parse_utc(value: None) -> None: ...
def parse_utc(value: str | datetime | None) -> datetime | None:
    """An ISO 8601 time (or a datetime) as an aware UTC datetime; None stays None.

    A time without an offset is taken as UTC. Raises TimeFormatError (a ValueError) otherwise.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise TimeFormatError(value) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_utc_or_none(value: str | datetime | None) -> datetime | None:
    """Like `parse_utc`, but None for text that is not a time (rows written by older versions)."""
    try:
        return parse_utc(value)
    except TimeFormatError:
        return None
