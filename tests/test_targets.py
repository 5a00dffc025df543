"""The platform catalogue and the target loaders, on real Citizen Lab lists and hostile files."""

import csv
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from core.errors import TargetError
from core.target import Platform
from targets import loaders
from targets.catalogue import CATEGORIES, load_catalogue, platform_names
from targets.loaders import MAX_LINE, load_targets, normalise

LISTS = Path(__file__).resolve().parents[2] / "shared/corpus/test-lists"
REQUIRED = {"facebook", "instagram", "whatsapp", "messenger", "x", "youtube", "tiktok",
            "telegram", "signal", "wikipedia", "google", "tor"}
REQUIRED_CATEGORIES = {"social", "messaging", "video", "news", "search", "appstore",
                       "circumvention"}


def _write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def _error(specs: list[str], **kwargs) -> str:
    with pytest.raises(TargetError) as info:
        load_targets(specs, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    return message


# --- the bundled catalogue ------------------------------------------------------------------

def test_bundled_catalogue():
    platforms = load_catalogue()
    names = [p.name for p in platforms]
    assert len(platforms) >= 25
    assert names == platform_names() and len(set(names)) == len(names)
    assert set(names) >= REQUIRED
    assert REQUIRED_CATEGORIES <= {p.category for p in platforms} <= set(CATEGORIES)
    for p in platforms:
        assert 2 <= len(p.endpoints) <= 8, p.name
        assert p.description and "\n" not in p.description, p.name
        assert all(normalise(e).url == e for e in p.endpoints), p.name


def test_bundled_catalogue_has_the_endpoints_apps_need():
    by_name = {p.name: p for p in load_catalogue()}
    telegram = by_name["telegram"].endpoints
    assert {"https://api.telegram.org/", "https://web.telegram.org/",
            "tcp://149.154.167.51:443"} <= set(telegram)
    whatsapp = by_name["whatsapp"].endpoints
    assert "https://mmg.whatsapp.net/" in whatsapp
    assert any(e.startswith(("tls://", "tcp://")) for e in whatsapp)  # the chat endpoint
    tor = by_name["tor"].endpoints
    assert "https://bridges.torproject.org/" in tor
    assert "tcp://128.31.0.39:9201" in tor  # moria1's ORPort
    assert all(p.category == "circumvention" for p in load_catalogue()
               if p.name in {"tor", "psiphon"})


# --- expansion and duplicates ---------------------------------------------------------------

def test_platform_expands_to_its_endpoints():
    telegram = load_targets(["telegram"])
    catalogue = {p.name: p for p in load_catalogue()}
    assert [t.url for t in telegram] == list(catalogue["telegram"].endpoints)
    assert {(t.platform, t.category) for t in telegram} == {("telegram", "messaging")}


def test_category_expands_to_every_platform_of_it_without_duplicates():
    messaging = load_targets(["category:messaging"])
    platforms = [p for p in load_catalogue() if p.category == "messaging"]
    expected = {normalise(e).key for p in platforms for e in p.endpoints}
    assert {t.key for t in messaging} == expected and len(messaging) == len(expected)
    assert {t.platform for t in messaging} == {p.name for p in platforms}
    known = ", ".join(sorted({p.category for p in load_catalogue()}))
    assert _error(["category:nope"]) == f"category:nope: no such category (known: {known})"


def test_duplicates_removed_first_occurrence_kept_in_order():
    targets = load_targets(["https://www.facebook.com/", "b.example", "facebook",
                            "HTTPS://WWW.FACEBOOK.COM:443", "https://b.example"])
    urls = [t.url for t in targets]
    assert urls[:2] == ["https://www.facebook.com/", "https://b.example/"]
    assert urls.count("https://www.facebook.com/") == 1
    assert targets[0].platform is None  # the first occurrence, not the catalogue's
    facebook = next(p for p in load_catalogue() if p.name == "facebook")
    assert urls[2:] == [u for u in facebook.endpoints if u != urls[0]]


def test_a_custom_catalogue_is_used():
    catalogue = [Platform("mine", "news", "d", ("https://mine.example/",))]
    assert [t.url for t in load_targets(["mine"], catalogue)] == ["https://mine.example/"]
    assert _error(["facebook"], catalogue=catalogue) == (
        "facebook: not a platform, URL or file (see `netvigil targets list`)")


def test_specs_that_are_nothing():
    assert _error(["nonsense"]) == (
        "nonsense: not a platform, URL or file (see `netvigil targets list`)")
    assert _error([]) == "no targets given"
    assert _error([""]) == '"": empty target name'
    assert _error(["bad\nname"]) == ("bad\\x0aname: not a platform, URL or file "
                                     "(see `netvigil targets list`)")
    long = "a" * (MAX_LINE + 1)
    assert _error([long]) == f"{long[:80] + '...'!r}: longer than {MAX_LINE} characters"
    assert _error(["ftp://example.org/"]) == (
        "ftp://example.org/: unknown scheme 'ftp' (use http, https, tls or tcp)")


# --- normalise ------------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "url"), [
    ("example.org", "https://example.org/"),
    ("  example.org  ", "https://example.org/"),
    ("example.org/path", "https://example.org/path"),
    ("example.org.", "https://example.org/"),
    ("HTTP://Example.ORG/Path?q=1", "http://example.org/Path?q=1"),
    ("http://example.org:80/", "http://example.org/"),
    ("https://example.org:443", "https://example.org/"),
    ("https://example.org:8443/#frag", "https://example.org:8443/"),
    ("tcp://1.2.3.4:443", "tcp://1.2.3.4:443"),
    ("tls://Host.example:8443", "tls://host.example:8443"),
    ("tls://host.example", "tls://host.example:443"),
    ("https://[2001:DB8:0::1]/", "https://[2001:db8::1]/"),
    ("tcp://[2001:db8::1]:5222", "tcp://[2001:db8::1]:5222"),
    ("https://bücher.example/", "https://xn--bcher-kva.example/"),
    ("https://xn--bcher-kva.example/", "https://xn--bcher-kva.example/"),
    ("https://fa.wikipedia.org/wiki/ایران", "https://fa.wikipedia.org/wiki/ایران"),
])
def test_normalise(spec, url):
    assert normalise(spec).url == url


def test_normalise_keeps_platform_and_category():
    target = normalise("example.org", platform="p", category="NEWS")
    assert (target.platform, target.category, target.key) == ("p", "NEWS", "https://example.org")


@pytest.mark.parametrize(("spec", "what"), [
    ("", "empty target"),
    ("http://exa mple.org/", "contains spaces"),
    ("http://example.org/\x00", "control characters"),
    ("ftp://example.org/", "unknown scheme 'ftp'"),
    ("https:///x", "empty host"),
    ("https://example.org:99999/", "bad port"),
    ("https://example.org:x/", "bad port"),
    ("tcp://1.2.3.4:0", "bad port"),
    ("tcp://example.org", "need a port"),
    ("tcp://1.2.3.4:443/path", "no path"),
    ("https://user:pw@example.org/", "user names and passwords"),
    ("https://bad..name/", "not a valid domain name"),
    ("https://-bad.example/", "bad characters"),
    ("https://ex%41mple.org/", "bad characters"),
    ("https://xn--zz.example/", "bad punycode"),
    ("https://1.2.3/", "neither an IP address nor a domain name"),
    ("https://[2001:db8::1/", "not a valid URL"),
    ("https://[fe80::1%25eth0]/", "IPv6 zone"),
    ("https://" + "a" * 64 + ".example/", "not a valid domain name"),
    ("x" * (MAX_LINE + 1), f"longer than {MAX_LINE}"),
])
def test_normalise_rejects(spec, what):
    with pytest.raises(ValueError) as info:
        normalise(spec)
    assert what in str(info.value)


def test_normalise_rejects_ipv6_zones():
    with pytest.raises(ValueError, match="IPv6 zone"):
        normalise("https://[fe80::1%eth0]/")


# --- real Citizen Lab lists -----------------------------------------------------------------

def _first_rows(path: Path) -> list[dict[str, str]]:
    """The data rows minus duplicates (first kept), worked out without the code under test."""
    rows: dict[tuple[str, str, str, str], dict[str, str]] = {}
    with path.open(newline="", encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            parts = urlsplit(row["url"].strip())
            path_part = "" if parts.path in ("", "/") else parts.path
            key = (parts.scheme.lower(), (parts.hostname or "").lower(), path_part, parts.query)
            rows.setdefault(key, row)
    return list(rows.values())


@pytest.mark.parametrize("name", ["global.csv", "ir.csv", "ru.csv", "mm.csv"])
def test_citizen_lab_lists(name):
    if not LISTS.is_dir():
        pytest.skip(f"the shared corpus {LISTS} is not on this machine")
    path = LISTS / name
    targets = load_targets([str(path)])
    rows = _first_rows(path)
    assert len(rows) > 500  # a real list, not an empty stand-in
    assert len(targets) == len(rows)
    for target, row in zip(targets, rows, strict=True):
        assert target.hostname == urlsplit(row["url"]).hostname
        assert target.category == row["category_code"] and target.platform is None


# --- files: formats that load ---------------------------------------------------------------

def test_text_file_with_bom_crlf_comments_and_duplicates(tmp_path):
    path = _write(tmp_path, "l.txt", "\ufeffexample.org # inline\r\n# c\r\n\r\n"
                                     "https://example.org/\r\nhttp://other.org/a\r\n")
    assert [t.url for t in load_targets([str(path)])] == ["https://example.org/",
                                                          "http://other.org/a"]


def test_a_line_of_exactly_the_limit_loads(tmp_path):
    url = "https://a.example/" + "x" * (MAX_LINE - len("https://a.example/"))
    path = _write(tmp_path, "l.txt", url + "\r\n")
    assert [t.url for t in load_targets([str(path)])] == [url]


def test_citizen_lab_file_with_bom_and_crlf_keeps_categories(tmp_path):
    path = _write(tmp_path, "l.csv", "\ufeffurl,category_code,category_description,date_added,"
                                     "source,notes\r\nhttps://a.org/,NEWS,News Media,2020-01-01,"
                                     "cl,\r\n\r\nhttp://b.org/x,HUMR,Human Rights,2020-01-01,,\r\n")
    assert [(t.url, t.category) for t in load_targets([str(path)])] == [
        ("https://a.org/", "NEWS"), ("http://b.org/x", "HUMR")]


def test_citizen_lab_header_is_recognised_whatever_the_extension(tmp_path):
    path = _write(tmp_path, "list", "url,category_code\nhttps://a.org/,GRP\n")
    assert [t.category for t in load_targets([str(path)])] == ["GRP"]


def test_toml_platform_file(tmp_path):
    path = _write(tmp_path, "p.toml", '[[platform]]\nname = "mine"\ncategory = "news"\n'
                                      'description = "my site"\nendpoints = ["mine.example", '
                                      '"tcp://192.0.2.1:5222"]\n')
    targets = load_targets([str(path)])
    assert [t.url for t in targets] == ["https://mine.example/", "tcp://192.0.2.1:5222"]
    assert {(t.platform, t.category) for t in targets} == {("mine", "news")}


# --- files: every bad one names FILE:LINE ---------------------------------------------------

_CL = "url,category_code,category_description,date_added,source,notes\n"
_TOML_OK = ('[[platform]]\nname = "ok"\ncategory = "news"\ndescription = "d"\n'
            'endpoints = ["a.org"]\n')


@pytest.mark.parametrize(("name", "content", "message"), [
    ("l.txt", "# list\nexample.org\n\nhttp://exa mple.org/\n",
     "4: 'http://exa mple.org/' contains spaces or control characters"),
    ("l.txt", "example.org\r\nftp://x.org/\r\n",
     "2: unknown scheme 'ftp' (use http, https, tls or tcp)"),
    ("l.txt", b"example.org\n\xff\xfe\x00garbage\n", "2: not UTF-8 text"),
    ("l.txt", b"example.org\nb\x00c\n", "2: binary data, not a target list"),
    ("l.txt", "ok.org\n" + "a" * 3000 + "\n", f"2: line longer than {MAX_LINE} bytes"),
    ("l.txt", "ok.org\n" + "a" * 3000, f"2: line longer than {MAX_LINE} bytes"),
    ("l.csv", _CL + "https://a.org/,NEWS\nnot a url,NEWS\n",
     "3: 'not a url' contains spaces or control characters"),
    ("l.csv", _CL + '"https://a.org/\nx",NEWS\n',
     "2: 'https://a.org/\\nx' contains spaces or control characters"),
    ("l.csv", _CL + "https://a.org/\n", "2: expected url,category_code,..."),
    ("l.csv", "name,value\nx,y\n",
     "1: not a Citizen Lab list (the header must start with url,category_code)"),
    ("l.csv", "\ufeffcategory_code,url\n",
     "1: not a Citizen Lab list (the header must start with url,category_code)"),
    ("l.csv", "", "1: empty file, expected a url,category_code header"),
    ("p.toml", _TOML_OK.replace('"news"', '"bogus"'),
     "3: ok: category 'bogus' not one of " + ", ".join(CATEGORIES)),
    ("p.toml", _TOML_OK + _TOML_OK, "7: platform 'ok' listed twice"),
    ("p.toml", _TOML_OK + _TOML_OK.replace('"ok"', '"two"').replace(
        '["a.org"]', '[\n  "b.org",\n  "ftp://a.org/",\n]'),
     "12: two: unknown scheme 'ftp' (use http, https, tls or tcp)"),
    ("p.toml", _TOML_OK.replace("endpoints", "endpoint"),
     "5: unknown key 'endpoint' (expected category, description, endpoints, name)"),
    ("p.toml", _TOML_OK.replace('"ok"', '"Bad Name"'),
     "2: platform name 'Bad Name' must be lower-case a-z, 0-9 and - (at most 40)"),
    ("p.toml", "[[platform]\nname = 1\n", "1: TOML error: Expected ']]' at the end of an "
                                          "array declaration"),
    ("p.toml", 'title = "no platforms"\n', "1: no [[platform]] tables"),
])
def test_bad_files_name_file_and_line(tmp_path, name, content, message):
    path = _write(tmp_path, name, content)
    assert _error([str(path)]) == f"{path}:{message}"


def test_a_bad_line_carries_its_file_and_line_as_data(tmp_path):
    path = _write(tmp_path, "l.csv", _CL + "https://a.org/,NEWS\nnot a url,NEWS\n")
    with pytest.raises(TargetError) as info:
        load_targets([str(path)])
    assert (info.value.path, info.value.line) == (str(path), 3)
    assert isinstance(info.value, ValueError)  # code catching ValueError keeps working
    with pytest.raises(TargetError) as bare:
        normalise("ftp://x.org/")
    assert (bare.value.path, bare.value.line) == (None, 0)


def test_nothing_is_returned_when_a_later_spec_is_bad(tmp_path):
    good = _write(tmp_path, "good.txt", "a.example\n")
    bad = _write(tmp_path, "bad.txt", "b.example\nhttps://\n")
    assert _error([str(good), "telegram", str(bad)]) == f"{bad}:2: empty host"


def test_missing_file_directory_fifo_and_empty_list(tmp_path):
    assert _error([str(tmp_path / "missing.txt")]) == f"{tmp_path / 'missing.txt'}: no such file"
    assert _error([str(tmp_path)]) == f"{tmp_path}: is a directory, not a target list"
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)  # opening it would block: it must be refused before that
    assert _error([str(fifo)]) == f"{fifo}: not a regular file"
    empty = _write(tmp_path, "empty.txt", "# nothing here\n\n")
    assert _error([str(empty)]) == f"{empty}: no targets in this file"


def test_target_count_is_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(loaders, "MAX_TARGETS", 3)
    dupes = _write(tmp_path, "dupes.txt", "a.org\nb.org\nc.org\na.org\nhttps://b.org/\n")
    assert len(load_targets([str(dupes)])) == 3  # duplicates do not count
    many = _write(tmp_path, "many.txt", "a.org\nb.org\nc.org\nd.org\n")
    assert _error([str(many)]) == f"{many}: more than 3 targets in all; split the list"
    assert _error([str(dupes), "x.org"]) == "x.org: more than 3 targets in all; split the list"


def test_line_count_is_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(loaders, "MAX_LINES", 3)
    path = _write(tmp_path, "l.txt", "#\n#\n#\n#\na.org\n")
    assert _error([str(path)]) == f"{path}:4: more than 3 lines"
