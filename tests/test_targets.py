"""The platform catalogue and the target loaders, on real Citizen Lab lists and hostile files."""

import csv
from pathlib import Path

import pytest

from targets.catalogue import CATEGORIES, load_catalogue, platform_names
from targets.loaders import MAX_LINE, TargetError, load_targets, normalise
from tests.conftest import CORPUS

LISTS = CORPUS / "test-lists"
REQUIRED = {"facebook", "instagram", "whatsapp", "messenger", "x", "youtube", "tiktok",
            "telegram", "signal", "wikipedia", "google", "tor"}


def test_bundled_catalogue():
    platforms = load_catalogue()
    assert len(platforms) >= 25
    assert set(platform_names()) >= REQUIRED
    assert {"social", "messaging", "video", "news", "search", "appstore",
            "circumvention"} <= {p.category for p in platforms}
    for p in platforms:
        assert len(p.endpoints) >= 2, p.name
        assert all(normalise(e).url == e for e in p.endpoints), p.name


def test_platform_and_category_expand_and_dedupe():
    telegram = load_targets(["telegram"])
    assert all(t.platform == "telegram" for t in telegram)
    assert "tcp://149.154.167.51:443" in [t.url for t in telegram]
    messaging = load_targets(["category:messaging", "telegram", "https://telegram.org"])
    urls = [t.url for t in messaging]
    assert len(urls) == len(set(urls)) and "https://telegram.org/" in urls
    with pytest.raises(TargetError, match="no such category"):
        load_targets(["category:nope"])
    with pytest.raises(TargetError, match="not a platform, URL or file"):
        load_targets(["nonsense"])


@pytest.mark.parametrize(("spec", "url"), [
    ("example.org", "https://example.org/"),
    ("HTTP://Example.ORG/Path?q=1", "http://example.org/Path?q=1"),
    ("tcp://1.2.3.4:443", "tcp://1.2.3.4:443"),
    ("tls://Host.example:8443", "tls://host.example:8443"),
    ("https://[2001:db8::1]/", "https://[2001:db8::1]/"),
    ("https://bücher.example/", "https://xn--bcher-kva.example/"),
])
def test_normalise(spec, url):
    assert normalise(spec).url == url


@pytest.mark.parametrize("spec", ["http://exa mple.org/", "ftp://example.org/", "https:///x",
                                  "https://example.org:99999/", "tcp://example.org",
                                  "https://bad..name/", "x" * (MAX_LINE + 1)])
def test_normalise_rejects(spec):
    with pytest.raises(ValueError):
        normalise(spec)


def _rows(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [row["url"] for row in csv.DictReader(fh) if row.get("url", "").strip()]


@pytest.mark.parametrize("name", ["global.csv", "ir.csv"])
def test_citizen_lab_lists(name):
    path = LISTS / name
    if not path.exists():
        pytest.skip(f"corpus file {path} is not present on this machine")
    targets = load_targets([str(path)])
    expected = {normalise(u).key for u in _rows(path)}
    assert len(targets) == len(expected)
    assert all(t.category for t in targets)


def _write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


@pytest.mark.parametrize(("name", "content", "line", "what"), [
    ("l.txt", "# list\nexample.org\n\nhttp://exa mple.org/\n", 4, "spaces"),
    ("l.txt", "example.org\r\nftp://x.org/\r\n", 2, "unknown scheme"),
    ("l.txt", b"example.org\n\xff\xfe\n", 2, "not UTF-8"),
    ("l.txt", "ok.org\n" + "a" * 3000 + "\n", 2, "longer than"),
    ("l.csv", "url,category_code\nhttps://a.org/,NEWS\nnot a url,NEWS\n", 3, "spaces"),
    ("l.csv", "name,value\nx,y\n", 1, "not a Citizen Lab list"),
    ("p.toml", '[[platform]]\nname = "ok"\ncategory = "bogus"\ndescription = "d"\n'
               'endpoints = ["a.org"]\n', 2, "category"),
    ("p.toml", "[[platform]\nname = 1\n", 1, "TOML error"),
])
def test_bad_lines_name_file_and_line(tmp_path, name, content, line, what):
    path = _write(tmp_path, name, content)
    with pytest.raises(TargetError) as info:
        load_targets([str(path)])
    message = str(info.value)
    assert message.startswith(f"{path}:{line}:") and what in message
    assert "\n" not in message


def test_text_file_with_bom_comments_and_duplicates(tmp_path):
    path = _write(tmp_path, "l.txt", "\ufeffexample.org # inline\n# c\nhttps://example.org/\n"
                                     "http://other.org/a\n")
    assert [t.url for t in load_targets([str(path)])] == ["https://example.org/",
                                                          "http://other.org/a"]


def test_toml_platform_file(tmp_path):
    path = _write(tmp_path, "p.toml", '[[platform]]\nname = "mine"\ncategory = "news"\n'
                                      'description = "my site"\nendpoints = ["mine.example", '
                                      '"tcp://192.0.2.1:5222"]\n')
    targets = load_targets([str(path)])
    assert [t.url for t in targets] == ["https://mine.example/", "tcp://192.0.2.1:5222"]
    assert {t.platform for t in targets} == {"mine"}


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(TargetError, match="no such file"):
        load_targets([str(tmp_path / "missing.txt")])
    with pytest.raises(TargetError, match="is a directory"):
        load_targets([str(tmp_path) + "/"])


def test_categories_constant_matches_catalogue():
    assert {p.category for p in load_catalogue()} <= set(CATEGORIES)
