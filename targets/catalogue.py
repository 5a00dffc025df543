"""The platform catalogue: the bundled `catalogue.toml`, or a TOML file of platforms the user gives.

Format: a list of `[[platform]]` tables with `name` (lower-case letters, digits, dashes),
`category` (one of CATEGORIES), `description` (one line) and `endpoints` (URLs, bare domains,
`tls://host:port` or `tcp://host:port`). Every entry is checked; an error names the file and the
line of the offending key or endpoint, as an editor numbers them.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from pathlib import Path

from core.errors import TargetError
from core.target import Platform
from targets.loaders import normalise, read_text

BUNDLED = Path(__file__).with_name("catalogue.toml")
CATEGORIES = (
    "social", "messaging", "video", "news", "search", "appstore", "circumvention", "reference",
    "calls",
)
MAX_DESCRIPTION = 200
_KEYS = {"name", "category", "description", "endpoints"}
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
_HEADER = re.compile(r"^\s*\[\[\s*platform\s*\]\]")
_TOML_AT = re.compile(r"\s*\(at line (\d+), column \d+\)")
_SKIPPED = re.compile(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'|#.*')  # strings and comments, on one line


class _Lines:
    """Finds the line of a key or a value inside the n-th `[[platform]]` table of a file.

    tomllib gives values without positions, so the text is searched, within the entry's own
    table so that an endpoint shared by two platforms is reported where it is wrong.
    """

    def __init__(self, text: str, entries: int) -> None:
        self.lines = text.split("\n")
        starts = [i for i, line in enumerate(self.lines) if _HEADER.match(line)]
        # Inline-table files (`platform = [{...}]`) have no headers: search the whole file.
        self.starts = starts if len(starts) == entries else []

    def _span(self, index: int) -> range:
        if not self.starts:
            return range(len(self.lines))
        end = self.starts[index + 1] if index + 1 < len(self.starts) else len(self.lines)
        return range(self.starts[index], end)

    def of(self, index: int, key: str | None = None, value: object = None) -> int:
        """1-based line of `value` (a string) or of `key = ...` in entry `index`."""
        span = self._span(index)
        if isinstance(value, str):
            for i in span:
                if f'"{value}"' in self.lines[i] or f"'{value}'" in self.lines[i]:
                    return i + 1
        if key is not None:
            assignment = re.compile(rf"\s*{re.escape(key)}\s*=")
            for i in span:
                if assignment.match(self.lines[i]):
                    return i + 1
        return span.start + 1 if span else 1


def _parse(path: Path) -> tuple[str, dict[str, object]]:
    text = read_text(path)
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_AT.search(str(exc))
        line = int(found.group(1)) if found else 1
        raise TargetError(f"TOML error: {_TOML_AT.sub('', str(exc))}", path, line) from None
    except RecursionError:  # tomllib recurses per level: arrays or tables nested ~500 deep
        raise TargetError("TOML error: values nested too deeply", path,
                          _deepest_line(text)) from None


def _deepest_line(text: str) -> int:
    """The 1-based line where `[`/`{` nesting first reaches its deepest: where a nesting that
    broke the parser is. Strings and comments are skipped line by line (roughly: multi-line
    strings are not followed), which is enough to point at the place."""
    depth = deepest = 0
    where = 1
    for number, raw in enumerate(text.split("\n"), start=1):
        for ch in _SKIPPED.sub("", raw):
            if ch in "[{":
                depth += 1
                if depth > deepest:
                    deepest, where = depth, number
            elif ch in "]}":
                depth -= 1
    return where


def _platform(path: Path, lines: _Lines, entry: object, index: int) -> Platform:
    if not isinstance(entry, dict):
        raise TargetError(f"platform {index + 1} is not a table", path, lines.of(index))

    def fail(key: str, message: str, value: object = None) -> TargetError:
        return TargetError(message, path, lines.of(index, key, value))

    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown key {unknown[0]!r} (expected {', '.join(sorted(_KEYS))})")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise fail("name", f"platform name {name!r} must be lower-case a-z, 0-9 and - "
                           f"(at most 40)")
    category = entry.get("category")
    if category not in CATEGORIES:
        raise fail("category", f"{name}: category {category!r} not one of "
                               f"{', '.join(CATEGORIES)}")
    description = entry.get("description", "")
    if (not isinstance(description, str) or "\n" in description
            or len(description) > MAX_DESCRIPTION):
        raise fail("description", f"{name}: description must be one line of at most "
                                  f"{MAX_DESCRIPTION} characters")
    endpoints = entry.get("endpoints")
    if not isinstance(endpoints, list) or not endpoints:
        raise fail("endpoints", f"{name}: endpoints must be a non-empty list")
    urls = []
    for endpoint in endpoints:
        if not isinstance(endpoint, str):
            raise fail("endpoints", f"{name}: endpoint {endpoint!r} is not a string")
        try:
            urls.append(normalise(endpoint).url)
        except TargetError as exc:
            raise fail("endpoints", f"{name}: {exc}", endpoint) from None
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
        raise TargetError("no [[platform]] tables", path, 1)
    lines = _Lines(text, len(entries))
    platforms: list[Platform] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        platform = _platform(path, lines, entry, index)
        if platform.name in seen:
            raise TargetError(f"platform {platform.name!r} listed twice", path,
                              lines.of(index, "name"))
        seen.add(platform.name)
        platforms.append(platform)
    return platforms


def platform_names() -> list[str]:
    """The names of the bundled platforms, in catalogue order."""
    return [p.name for p in _bundled()]
