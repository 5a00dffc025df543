"""The one exception tree: every error netvigil raises on purpose, and what it carries.

Failures of the network are never exceptions (they are observations with a failure string, see
`core.failures`); these are for bad input, unusable storage, evidence that does not check, and
requests our servers refuse. Each class carries its data as attributes; `str()` is one line for
people. The CLI maps the branches to messages and exit codes in one place (`cli.py`, `main`).

    NetvigilError
    ├── InputError (ValueError)          something the user gave: exit 2
    │   ├── ConfigError                  an option or setting (`option`)
    │   ├── FileLineError                a line of a user's file (`path`, `line`)
    │   │   ├── TargetError              a targets file or name
    │   │   └── TableError               an IP-to-ASN table
    │   ├── OONIFormatError              an OONI measurement or file
    │   ├── TimeFormatError              not an ISO 8601 time (`value`)
    │   ├── UnknownLanguage              no catalogue for a language (`language`)
    │   ├── ReportError                  what a report was asked to cover
    │   └── RecordError                  a record (or a value for one) the store cannot take
    ├── StoreError                       the database cannot be used as asked: exit 1
    │   └── IntegrityError               a record or blob does not match its hash
    ├── EvidenceError                    evidence that does not check: exit 1
    │   ├── BundleRejected               a bundle a collector will not keep (`problems`)
    │   └── TimestampError               an authority's answer that cannot be kept
    └── ServiceError                     our servers and clients: exit 1
        ├── RequestError                 a request refused (`status`, `retry_after`)
        └── HelperError                  the test helper did not answer usefully (`status`)

`InputError` stays a `ValueError` so that code validating values reads naturally.

Outside the tree, `Terminated` (a KeyboardInterrupt) is a run stopped by SIGTERM: ended as
Ctrl-C ends it, with its own exit status (143, 128 + SIGTERM, where Ctrl-C is 130).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def one_line(text: object) -> str:
    """Text safe to print as one line: control characters (a newline in a name) escaped."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


class NetvigilError(Exception):
    """Every error netvigil raises on purpose. `str()` is one line for people."""

    exit_code = 1


class InputError(NetvigilError, ValueError):
    """Something the user gave is wrong: an option, a file, a line, a name."""

    exit_code = 2


class ConfigError(InputError):
    """An option or setting that cannot be used. `option` names it, when known."""

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(one_line(message))
        self.option = option


class FileLineError(InputError):
    """A line of a user's file: `path` and `line` (1-based; 0 for the file as a whole)."""

    def __init__(self, message: str, path: str | Path | None = None, line: int = 0) -> None:
        where = "" if path is None else f"{path}:{line}: " if line else f"{path}: "
        super().__init__(one_line(where + message))
        self.path = None if path is None else str(path)
        self.line = line


class TargetError(FileLineError):
    """Bad user input about targets. `str()` is one line: `FILE:LINE: what is wrong`."""


class TableError(FileLineError):
    """An IP-to-ASN table that cannot be read; the message names the file and the line."""


class OONIFormatError(InputError):
    """One OONI measurement (or file) could not be read. The message is one line, bounded."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split())[:400])


class TimeFormatError(InputError):
    """Not an ISO 8601 time. `value` is what was given."""

    def __init__(self, value: Any) -> None:
        super().__init__(f"not an ISO 8601 time: {one_line(repr(value))[:200]}")
        self.value = value


class UnknownLanguage(InputError):
    """No catalogue for the language asked for. `language` is the code given."""

    def __init__(self, message: str, language: str | None = None) -> None:
        super().__init__(message)
        self.language = language


class ReportError(InputError):
    """Bad input for a report (a time, an event id, a language, a file type): one line."""


class RecordError(InputError):
    """A record, or a value meant for one, that netvigil cannot write or read as asked: not
    canonical JSON or base64, a bad blob reference or verdict, an unknown custody action, a
    run that is not running, a vantage naming the probe's address. One line."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


class StoreError(NetvigilError):
    """The database cannot be used as asked (cannot be opened, is read-only, is newer)."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        super().__init__(one_line(message))
        self.path = None if path is None else str(path)


class IntegrityError(StoreError):
    """A stored record or blob does not match its hash, or a referenced blob is missing."""


class EvidenceError(NetvigilError):
    """Evidence that does not check: a bundle, a signature, a timestamp."""


class BundleRejected(EvidenceError):
    """A bundle that does not verify, or that a collector does not accept. `problems` lists why."""

    def __init__(self, message: str, problems: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class TimestampError(EvidenceError):
    """An authority's answer that cannot be kept as a timestamp (the message says why)."""


class ServiceError(NetvigilError):
    """Our servers and their clients."""


class RequestError(ServiceError):
    """A request refused as a whole: the HTTP `status`, a one-line reason, and `retry_after`."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class HelperError(ServiceError):
    """A batch the test helper did not answer usefully; `status` is its HTTP status, if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Terminated(KeyboardInterrupt):
    """A run stopped by SIGTERM (systemd, `kill`, a shutdown), ended as Ctrl-C ends it: a
    KeyboardInterrupt, so whatever handles Ctrl-C handles it. Exit status 128 + SIGTERM."""

    exit_code = 143
