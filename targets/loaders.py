"""Turn what the user names (platforms, URLs, domains, test-list files) into targets.

Everything is all-or-nothing: one bad line stops the load with `FILE:LINE: what is wrong` before
any traffic is sent, so a typo never yields a half-measured list. Duplicates are removed (first
occurrence kept). Hostile files (binary, huge lines, wrong headers, FIFOs) give the same kind of
error; files are streamed, never read whole, and the number of targets is capped.

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
import ipaddress
import os
import re
import stat
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from core.errors import TargetError
from core.target import SCHEMES, Platform, Target

MAX_LINE = 2048  # bytes a line (and characters a target); no real URL in a test list comes close
MAX_LINES = 1_000_000  # lines a file, comments included: bounds the time a hostile file costs
MAX_TARGETS = 100_000
CITIZEN_LAB_HEADER = ("url", "category_code")
_LIST_SUFFIXES = (".txt", ".csv", ".toml", ".list")
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
# A scheme's name followed by ":" or "/" but not by "://": "https:/x", "http//x", "tcp:x".
_BROKEN_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)(?::|/)")


def _show(text: str, limit: int = 80) -> str:
    """`text` quoted for an error message, shortened: messages quote untrusted input."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


# --- one target ----------------------------------------------------------------------------

def _host(raw: str) -> str:
    """The host in canonical form: an IP address as Python prints it, or an ASCII (IDNA) name."""
    if not raw:
        raise TargetError("empty host")
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        pass
    else:
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            raise TargetError(f"host {_show(raw)}: an IPv6 zone means nothing on another machine")
        return str(address)
    name = raw[:-1] if raw.endswith(".") else raw  # the root dot changes nothing
    invalid = f"host {_show(raw)} is not a valid domain name"
    try:
        name = name.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise TargetError(invalid) from None
    labels = name.split(".")
    if len(name) > 253 or not all(0 < len(label) <= 63 for label in labels):
        raise TargetError(invalid)
    for label in labels:
        if not _LABEL.match(label):
            raise TargetError(f"{invalid} (bad characters in {_show(label)})")
        if label.startswith("xn--"):
            try:
                label.encode("ascii").decode("idna")
            except UnicodeError:
                raise TargetError(f"{invalid} (bad punycode in {_show(label)})") from None
    if labels[-1].isdigit():  # "1.2.3" is neither an address nor a name: refuse to guess
        raise TargetError(f"host {_show(raw)} is neither an IP address nor a domain name")
    return name


def _refuse_broken_scheme(text: str) -> None:
    """A target without "://" that starts with one of our schemes ("https:/x", "http//x",
    "https:x") is a mistyped URL: refuse it rather than measure a host called "https"."""
    found = _BROKEN_SCHEME.match(text)
    if found and found.group(1).lower() in SCHEMES:
        scheme = found.group(1).lower()
        raise TargetError(f"{_show(text)}: malformed scheme (write {scheme}://HOST/...)")


def normalise(spec: str, *, platform: str | None = None, category: str | None = None) -> Target:
    """One target from a URL or a bare domain. Raises TargetError saying what is wrong.

    Scheme and host are lower-cased, IDN hosts become punycode, a bare domain becomes
    `https://domain/`, default ports of http/https are dropped and that of tls:// is written
    out, fragments (never sent) are dropped; path and query are kept as given.
    """
    text = spec.strip()
    if not text:
        raise TargetError("empty target")
    if len(text) > MAX_LINE:
        raise TargetError(f"target longer than {MAX_LINE} characters")
    if any(c.isspace() for c in text) or _CONTROL.search(text):
        raise TargetError(f"{_show(text)} contains spaces or control characters")
    bare = "://" not in text
    if bare:
        _refuse_broken_scheme(text)
        text = f"https://{text}"
    try:
        parts = urlsplit(text)
    except ValueError as exc:  # e.g. an unclosed "[" of an IPv6 literal
        raise TargetError(f"{_show(spec.strip())} is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise TargetError(f"unknown scheme {_show(scheme)} (use http, https, tls or tcp)")
    if "@" in parts.netloc:
        raise TargetError(f"{_show(spec.strip())}: user names and passwords are not allowed")
    host = _host(parts.hostname or "")
    if bare and "." not in host and ":" not in host:
        # "telegarm" is a typo, not a site: a name without a dot is measured only when the
        # user writes its scheme (http://intranet/), as the command line refuses it too.
        raise TargetError(f"{_show(spec.strip())} is not a domain name (no dot); a platform "
                          "name goes on the command line, a local name needs its URL, e.g. "
                          f"https://{host}/")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise TargetError(f"bad port in {_show(spec.strip())}")
    if scheme == "tcp" and port is None:
        raise TargetError("tcp:// targets need a port")
    if scheme in ("http", "https") and port == SCHEMES[scheme]:
        port = None
    if scheme == "tls" and port is None:  # tls://host and tls://host:443 are one endpoint
        port = SCHEMES[scheme]
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    if scheme in ("tcp", "tls"):
        if parts.path not in ("", "/") or parts.query:
            raise TargetError(f"{scheme}:// targets take no path or query")
        return Target(url=f"{scheme}://{netloc}", platform=platform, category=category)
    url = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
    return Target(url=url, platform=platform, category=category)


# --- files ---------------------------------------------------------------------------------

def _check_file(path: Path) -> None:
    """Refuse what is not a regular file before opening it: opening a FIFO would block."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise TargetError("no such file", path) from None
    except (OSError, ValueError) as exc:
        raise TargetError(f"cannot read: {getattr(exc, 'strerror', None) or exc}", path) from None
    if stat.S_ISDIR(mode):
        raise TargetError("is a directory, not a target list", path)
    if not stat.S_ISREG(mode):
        raise TargetError("not a regular file", path)


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number from 1, text) for each line of a UTF-8 file, without its CR/LF or BOM.

    Streams the file, so a huge one costs time, not memory; a line over MAX_LINE bytes, bytes
    that are not UTF-8 or a NUL stop the load with the line's number.
    """
    _check_file(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise TargetError(f"cannot read: {exc.strerror or exc}", path) from None
    with handle:
        number = 0
        while raw := handle.readline(MAX_LINE + 3):  # room for CR LF and one byte too many
            number += 1
            if number > MAX_LINES:
                raise TargetError(f"more than {MAX_LINES} lines", path, number)
            body = raw.removesuffix(b"\n").removesuffix(b"\r")
            if len(body) > MAX_LINE:
                raise TargetError(f"line longer than {MAX_LINE} bytes", path, number)
            try:
                text = body.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise TargetError("not UTF-8 text", path, number) from None
            if "\x00" in text:
                raise TargetError("binary data, not a target list", path, number)
            yield number, text


def read_text(path: Path) -> str:
    """A whole (small) UTF-8 file, checked line by line like every list."""
    return "\n".join(text for _, text in read_lines(path))


def load_text(path: Path) -> Iterator[Target]:
    """A plain list: one URL or domain a line; blank lines and `#` comments ignored."""
    for number, line in read_lines(path):
        item = line.split("#", 1)[0].strip()  # a URL's fragment is never sent, so "#" is safe
        if item:
            try:
                yield normalise(item)
            except TargetError as exc:
                raise TargetError(str(exc), path, number) from None


def load_citizenlab(path: Path) -> Iterator[Target]:
    """A Citizen Lab test list: url,category_code,category_description,date_added,source,notes."""
    # The line terminator goes back on so that csv counts physical lines (reader.line_num) and
    # keeps a newline inside a quoted field, which normalise then rejects.
    reader = csv.reader(f"{text}\n" for _, text in read_lines(path))
    header = True
    ended = 0  # the line the previous row ended on: a quoted field may span lines
    try:
        for row in reader:
            line, ended = ended + 1, reader.line_num
            if header:
                if tuple(c.strip().lower() for c in row[:2]) != CITIZEN_LAB_HEADER:
                    raise TargetError("not a Citizen Lab list (the header must start with "
                                      "url,category_code)", path, line)
                header = False
                continue
            if not any(cell.strip() for cell in row):
                continue
            if len(row) < 2:
                raise TargetError("expected url,category_code,...", path, line)
            try:
                yield normalise(row[0], category=row[1].strip() or None)
            except TargetError as exc:
                raise TargetError(str(exc), path, line) from None
    except csv.Error as exc:
        raise TargetError(f"CSV error: {exc}", path, reader.line_num) from None
    if header:
        raise TargetError("empty file, expected a url,category_code header", path, 1)


def _looks_like_citizenlab(path: Path) -> bool:
    for _, first in read_lines(path):
        return first.strip().lower().startswith(",".join(CITIZEN_LAB_HEADER))
    return False


def load_file(path: Path) -> Iterator[Target]:
    """A target list file, its format told by its extension and first line."""
    # The catalogue module imports this one (normalise, TargetError); importing it here, when a
    # TOML file is actually given, keeps the two modules free of an import cycle at load time.
    from targets.catalogue import load_catalogue

    suffix = path.suffix.lower()
    if suffix == ".toml":
        return (t for p in load_catalogue(path) for t in p.targets())
    if suffix == ".csv" or _looks_like_citizenlab(path):
        return load_citizenlab(path)
    return load_text(path)


# --- what the user names -------------------------------------------------------------------

def _is_path(spec: str) -> bool:
    if "/" in spec or os.sep in spec or spec.lower().endswith(_LIST_SUFFIXES):
        return True
    try:
        return Path(spec).exists()
    except (OSError, ValueError):  # a name too long for the OS is not a file we can read
        return False


def _expand(spec: str, catalogue: Sequence[Platform]) -> Iterable[Target]:
    if not spec:
        raise TargetError('"": empty target name')
    if len(spec) > MAX_LINE:
        raise TargetError(f"{_show(spec)}: longer than {MAX_LINE} characters")
    for platform in catalogue:
        if platform.name == spec:
            return platform.targets()
    if spec.startswith("category:"):
        wanted = spec.split(":", 1)[1]
        found = [t for p in catalogue if p.category == wanted for t in p.targets()]
        if not found:
            known = ", ".join(sorted({p.category for p in catalogue}))
            raise TargetError(f"{spec}: no such category (known: {known})")
        return found
    if "://" not in spec and _is_path(spec):
        return load_file(Path(spec))
    if "://" in spec or "." in spec or ":" in spec:
        try:
            return [normalise(spec)]
        except TargetError as exc:
            raise TargetError(f"{spec}: {exc}") from None
    raise TargetError(f"{spec}: not a platform, URL or file (see `netvigil targets list`)")


def load_targets(specs: Sequence[str], catalogue: Sequence[Platform] | None = None) -> list[Target]:
    """Every target named by `specs`, deduplicated; TargetError (one line) on the first problem.

    Nothing is returned unless every spec loads: files are streamed into one ordered set, and
    the list is handed back only at the end.
    """
    if catalogue is None:
        from targets.catalogue import load_catalogue  # see load_file about the import cycle

        catalogue = load_catalogue()
    if not specs:
        raise TargetError("no targets given")
    seen: dict[str, Target] = {}
    for spec in specs:
        spec = spec.strip()
        produced = 0
        for target in _expand(spec, catalogue):
            produced += 1
            if target.key in seen:
                continue
            if len(seen) >= MAX_TARGETS:
                raise TargetError(f"{spec}: more than {MAX_TARGETS} targets in all; "
                                  f"split the list")
            seen[target.key] = target
        if not produced:  # only a file can name nothing: a wrong file, or one all comments
            raise TargetError(f"{spec}: no targets in this file")
    return list(seen.values())
