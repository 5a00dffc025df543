"""Turn what the user names (platforms, URLs, domains, test-list files) into targets.

Everything is all-or-nothing: one bad line stops the load with `FILE:LINE: what is wrong` before
any traffic is sent, so a typo never yields a half-measured list. Duplicates are removed (first
occurrence kept). Hostile files (binary, huge lines, wrong headers) give the same kind of error.

Accepted, per item of `--targets`:

    facebook                   a platform of the catalogue (all its endpoints)
    category:messaging         every platform of a category
    https://example.org/x      a URL (http, https, tls://host:port, tcp://host:port)
    example.org                a bare domain (measured as https://example.org/)
    list.txt                   one URL or domain a line, `#` comments
    ir.csv                     a Citizen Lab test list (url,category_code,...)
    platforms.toml             platforms in the catalogue's format
"""

from __future__ import annotations

import csv
import io
import ipaddress
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from targets.model import SCHEMES, Platform, Target

MAX_LINE = 2048
MAX_TARGETS = 100_000
CITIZEN_LAB_HEADER = ("url", "category_code")
_LIST_SUFFIXES = (".txt", ".csv", ".toml", ".list")


class TargetError(ValueError):
    """Bad user input about targets. `str()` is one line: `FILE:LINE: what is wrong`."""


def _idna(host: str) -> str:
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise ValueError(f"host {host!r} is not a valid domain name ({exc})") from None


def _host(raw: str) -> str:
    if not raw:
        raise ValueError("no host")
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        pass
    host = _idna(raw.rstrip("."))
    labels = host.split(".")
    if len(host) > 253 or any(not 0 < len(label) <= 63 for label in labels):
        raise ValueError(f"host {raw!r} is not a valid domain name")
    if any(not all(c.isalnum() or c in "-_" for c in label) for label in labels):
        raise ValueError(f"host {raw!r} has characters a domain name cannot have")
    return host


def normalise(spec: str, *, platform: str | None = None, category: str | None = None) -> Target:
    """One target from a URL or a bare domain. Raises ValueError saying what is wrong."""
    text = spec.strip()
    if not text:
        raise ValueError("empty target")
    if len(text) > MAX_LINE:
        raise ValueError(f"target longer than {MAX_LINE} characters")
    if any(c.isspace() for c in text):
        raise ValueError(f"{text!r} contains spaces")
    if "://" not in text:
        text = f"https://{text}/"
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r} (use http, https, tls or tcp)")
    host = _host(parts.hostname or "")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bad port in {spec.strip()!r}") from None
    if scheme == "tcp" and port is None:
        raise ValueError("tcp:// targets need a port")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    path = parts.path or ("/" if scheme in ("http", "https") else "")
    if scheme in ("tcp", "tls"):
        path = ""
    url = urlunsplit((scheme, netloc, path, parts.query if scheme.startswith("http") else "", ""))
    return Target(url=url, platform=platform, category=category)


def _dedupe(targets: Iterable[Target]) -> list[Target]:
    seen: dict[str, Target] = {}
    for target in targets:
        seen.setdefault(target.key, target)
        if len(seen) > MAX_TARGETS:
            raise TargetError(f"more than {MAX_TARGETS} targets: split the list")
    return list(seen.values())


def _read_lines(path: Path) -> list[str]:
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise TargetError(f"{path}: is a directory, not a target list") from None
    except OSError as exc:
        raise TargetError(f"{path}: cannot read: {exc.strerror or exc}") from None
    lines = data.split(b"\n")
    out: list[str] = []
    for number, raw in enumerate(lines, start=1):
        if len(raw) > MAX_LINE:
            raise TargetError(f"{path}:{number}: line longer than {MAX_LINE} bytes")
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise TargetError(f"{path}:{number}: not UTF-8 text") from None
        if "\x00" in text:
            raise TargetError(f"{path}:{number}: binary data, not a target list")
        out.append(text.rstrip("\r"))
    return out


def load_text(path: Path) -> list[Target]:
    """A plain list: one URL or domain a line; blank lines and `#` comments ignored."""
    targets = []
    for number, line in enumerate(_read_lines(path), start=1):
        item = line.split("#", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if not item:
            continue
        try:
            targets.append(normalise(item))
        except ValueError as exc:
            raise TargetError(f"{path}:{number}: {exc}") from None
    return targets


def load_citizenlab(path: Path) -> list[Target]:
    """A Citizen Lab test list: url,category_code,category_description,date_added,source,notes."""
    lines = _read_lines(path)
    reader = csv.reader(io.StringIO("\n".join(lines)))
    targets = []
    header: list[str] | None = None
    for row in reader:
        number = reader.line_num
        if header is None:
            header = [c.strip().lower() for c in row]
            if tuple(header[:2]) != CITIZEN_LAB_HEADER:
                raise TargetError(f"{path}:{number}: not a Citizen Lab list (the header must "
                                  f"start with url,category_code)")
            continue
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) < 2:
            raise TargetError(f"{path}:{number}: expected url,category_code,...")
        try:
            targets.append(normalise(row[0], category=row[1].strip() or None))
        except ValueError as exc:
            raise TargetError(f"{path}:{number}: {exc}") from None
    if header is None:
        raise TargetError(f"{path}:1: empty file")
    return targets


def _looks_like_citizenlab(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            first = fh.readline(MAX_LINE).decode("utf-8-sig", errors="replace").strip().lower()
    except OSError:
        return False
    return first.startswith("url,category_code")


def load_file(path: Path) -> list[Target]:
    """A target list file, its format told by its extension and first line."""
    from targets.catalogue import load_catalogue  # the catalogue module imports us

    suffix = path.suffix.lower()
    if suffix == ".toml":
        return [t for p in load_catalogue(path) for t in p.targets()]
    if suffix == ".csv" or _looks_like_citizenlab(path):
        return load_citizenlab(path)
    return load_text(path)


def _expand(spec: str, catalogue: Sequence[Platform]) -> list[Target]:
    by_name = {p.name: p for p in catalogue}
    if spec in by_name:
        return by_name[spec].targets()
    if spec.startswith("category:"):
        wanted = spec.split(":", 1)[1]
        found = [t for p in catalogue if p.category == wanted for t in p.targets()]
        if not found:
            known = ", ".join(sorted({p.category for p in catalogue}))
            raise TargetError(f"{spec}: no such category (known: {known})")
        return found
    path = Path(spec)
    is_url = "://" in spec
    if not is_url and (path.exists() or "/" in spec or spec.endswith(_LIST_SUFFIXES)):
        if not path.exists():
            raise TargetError(f"{spec}: no such file")
        return load_file(path)
    if is_url or "." in spec:
        try:
            return [normalise(spec)]
        except ValueError as exc:
            raise TargetError(f"{spec}: {exc}") from None
    raise TargetError(f"{spec}: not a platform, URL or file (see `netvigil targets list`)")


def load_targets(specs: Sequence[str], catalogue: Sequence[Platform] | None = None) -> list[Target]:
    """Every target named by `specs`, deduplicated; TargetError (one line) on the first problem."""
    if catalogue is None:
        from targets.catalogue import load_catalogue

        catalogue = load_catalogue()
    targets: list[Target] = []
    for spec in specs:
        targets.extend(_expand(spec.strip(), catalogue))
    if not targets:
        raise TargetError("no targets given")
    return _dedupe(targets)
