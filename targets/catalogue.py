"""The platform catalogue: the bundled `catalogue.toml`, or a TOML file of platforms the user gives.

Format: a list of `[[platform]]` tables with `name` (lower-case letters, digits, dashes),
`category` (one of CATEGORIES), `description` (one line) and `endpoints` (URLs, bare domains,
`tls://host:port` or `tcp://host:port`). Every entry is checked; an error names the file and line.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from pathlib import Path

from targets.loaders import TargetError, normalise
from targets.model import Platform

BUNDLED = Path(__file__).with_name("catalogue.toml")
CATEGORIES = (
    "social", "messaging", "video", "news", "search", "appstore", "circumvention", "reference",
    "calls",
)
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}$")
_TOML_AT = re.compile(r"\(at line (\d+), column \d+\)")


def _line_of(text: str, needle: str) -> int:
    """The 1-based line where `needle` first appears (1 when it does not)."""
    index = text.find(needle)
    return text.count("\n", 0, index) + 1 if index >= 0 else 1


def _parse(path: Path) -> tuple[str, dict[str, object]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TargetError(f"{path}:1: not UTF-8 text") from None
    except OSError as exc:
        raise TargetError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_AT.search(str(exc))
        line = found.group(1) if found else "1"
        message = _TOML_AT.sub("", str(exc)).strip()
        raise TargetError(f"{path}:{line}: TOML error: {message}") from None


def _platform(path: Path, text: str, entry: object, index: int) -> Platform:
    if not isinstance(entry, dict):
        raise TargetError(f"{path}:1: platform {index + 1} is not a table")
    name = entry.get("name")
    line = _line_of(text, f'"{name}"') if isinstance(name, str) else 1
    where = f"{path}:{line}"
    if not isinstance(name, str) or not _NAME.match(name):
        raise TargetError(f"{where}: platform name {name!r} must be lower-case a-z, 0-9 and -")
    category = entry.get("category")
    if category not in CATEGORIES:
        raise TargetError(f"{where}: {name}: category {category!r} not one of "
                          f"{', '.join(CATEGORIES)}")
    description = entry.get("description", "")
    if not isinstance(description, str) or "\n" in description:
        raise TargetError(f"{where}: {name}: description must be one line of text")
    endpoints = entry.get("endpoints")
    if not isinstance(endpoints, list) or not endpoints:
        raise TargetError(f"{where}: {name}: endpoints must be a non-empty list")
    urls = []
    for endpoint in endpoints:
        at = f"{path}:{_line_of(text, str(endpoint))}" if isinstance(endpoint, str) else where
        if not isinstance(endpoint, str):
            raise TargetError(f"{at}: {name}: endpoint {endpoint!r} is not a string")
        try:
            urls.append(normalise(endpoint).url)
        except ValueError as exc:
            raise TargetError(f"{at}: {name}: {exc}") from None
    return Platform(name, str(category), description, tuple(dict.fromkeys(urls)))


def load_catalogue(path: str | Path | None = None) -> list[Platform]:
    """The platforms of a catalogue file (the bundled one by default), checked."""
    if path is None:
        return list(_bundled())
    return _load(Path(path))


@cache
def _bundled() -> tuple[Platform, ...]:
    return tuple(_load(BUNDLED))


def _load(path: Path) -> list[Platform]:
    text, data = _parse(path)
    entries = data.get("platform")
    if not isinstance(entries, list) or not entries:
        raise TargetError(f"{path}:1: no [[platform]] tables")
    platforms = [_platform(path, text, e, i) for i, e in enumerate(entries)]
    seen: set[str] = set()
    for p in platforms:
        if p.name in seen:
            second = text.rfind(f'"{p.name}"')
            raise TargetError(f"{path}:{text.count(chr(10), 0, second) + 1}: "
                              f"platform {p.name!r} listed twice")
        seen.add(p.name)
    return platforms


def platform_names() -> list[str]:
    """The names of the bundled platforms, in catalogue order."""
    return [p.name for p in _bundled()]
