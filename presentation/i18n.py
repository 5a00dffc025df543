"""Translations of the lawyer-ready report: gettext catalogues read from .po files.

Every sentence of the report goes through a `Translator`: `tr._("text")` for one string,
`tr.n_("one thing", "{n} things", n)` for a count. The catalogues live in `presentation/locale/`:
`netvigil.pot` is the template (every msgid used by `presentation/*.py`), and each language
has `LANG/LC_MESSAGES/netvigil.po`. A translator adds a language by copying the template there
and filling in the msgstr lines; no report code changes, and no compiler is needed: the .po text
is turned into an in-memory .mo catalogue here, so the standard library's `gettext` does the
lookups and the plural rules (the `Plural-Forms` header; Arabic has six forms).

After changing report strings, regenerate the template and the English catalogue with GNU
gettext's xgettext, msgmerge and msgen (the commands are in `presentation/locale/README.md`);
`tests/test_report.py` checks that they are in step with the code.

The direction of the text (`dir="rtl"` in HTML, right-aligned in PDF) follows the language:
`RTL_LANGUAGES` below.
"""

from __future__ import annotations

import gettext
import io
import struct
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import FileLineError, UnknownLanguage

DOMAIN = "netvigil"
LOCALEDIR = Path(__file__).resolve().parent / "locale"
SOURCE_LANGUAGE = "en"  # the msgids are English: "en" needs no translation at all

# Languages written right to left (ISO 639 codes): Arabic, Sorani, Dhivehi, Persian, Hebrew,
# Pashto, Sindhi, Uyghur, Urdu, Yiddish.
RTL_LANGUAGES = frozenset({"ar", "ckb", "dv", "fa", "he", "ps", "sd", "ug", "ur", "yi"})

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "a": "\a", "b": "\b",
            "f": "\f", "v": "\v"}
_MO_MAGIC = 0x950412DE


@dataclass
class POEntry:
    """One message of a .po file."""

    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: list[str] = field(default_factory=list)
    fuzzy: bool = False


def _bad_line(message: str, number: int, path: Path | None) -> FileLineError:
    """An error at line `number` of the .po file at `path` (or of .po text from elsewhere)."""
    return FileLineError(message if path is not None else f"line {number}: {message}", path,
                         number)


def _unquote(text: str, where: int, path: Path | None) -> str:
    text = text.strip()
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise _bad_line(f"expected a quoted string, got {text[:40]!r}", where, path)
    body, out, i = text[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            out.append(_ESCAPES.get(body[i + 1], body[i + 1]))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def parse_po(text: str, path: Path | None = None) -> list[POEntry]:
    """The entries of a .po file (the header is the entry whose msgid is ""); a line that
    cannot be read is a FileLineError naming `path`, when given, and the line."""
    entries: list[POEntry] = []
    entry: POEntry | None = None  # the entry being read
    has_id = False  # it has its msgid already: a new msgctxt or msgid starts the next one
    target: tuple[str, int] = ("msgid", 0)  # the field that continuation lines extend
    fuzzy_next = False
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("#,") and "fuzzy" in line:
            fuzzy_next = True
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword in ("msgctxt", "msgid") and (entry is None or has_id):
            entry, has_id = POEntry(fuzzy=fuzzy_next), False
            entries.append(entry)
            fuzzy_next = False
        if entry is None:
            raise _bad_line(f"{keyword!r} before any msgid", number, path)
        if line.startswith('"'):
            name, index = target
            value = _unquote(line, number, path)
            if name == "msgstr":
                entry.msgstr[index] += value
            else:
                setattr(entry, name, (getattr(entry, name) or "") + value)
        elif keyword in ("msgctxt", "msgid", "msgid_plural"):
            setattr(entry, keyword, _unquote(rest, number, path))
            target = (keyword, 0)
            has_id = has_id or keyword == "msgid"
        elif keyword == "msgstr" or keyword.startswith("msgstr["):
            index = int(keyword[7:-1]) if keyword != "msgstr" else 0
            while len(entry.msgstr) <= index:
                entry.msgstr.append("")
            entry.msgstr[index] = _unquote(rest, number, path)
            target = ("msgstr", index)
        else:
            raise _bad_line(f"unknown keyword {keyword!r}", number, path)
    return entries


def compile_mo(entries: list[POEntry]) -> bytes:
    """A GNU .mo catalogue of the translated entries (untranslated and fuzzy ones left out,
    so gettext falls back to the English msgid for them, as msgfmt does)."""
    # The .po text was read as UTF-8 and is written back as UTF-8: the header must say so,
    # whatever it declared (a copied template says "charset=CHARSET").
    header = next((e.msgstr[0] for e in entries if not e.msgid and e.msgctxt is None
                   and e.msgstr), "")
    lines = [ln for ln in header.split("\n") if ln and not ln.lower().startswith("content-type:")]
    messages = {b"": "\n".join([*lines, "Content-Type: text/plain; charset=UTF-8", ""])
                .encode("utf-8")}
    for e in entries:
        if not e.msgid or not any(e.msgstr) or e.fuzzy:
            continue
        key = e.msgid if e.msgid_plural is None else f"{e.msgid}\0{e.msgid_plural}"
        if e.msgctxt is not None:
            key = f"{e.msgctxt}\x04{key}"
        messages[key.encode("utf-8")] = "\0".join(e.msgstr).encode("utf-8")
    keys = sorted(messages)
    ids_table = 7 * 4  # after the header: magic, revision, count, two offsets, hash size/offset
    strs_table = ids_table + 8 * len(keys)
    data = strs_table + 8 * len(keys)
    ids = b"".join(key + b"\0" for key in keys)
    strs = b"".join(messages[key] + b"\0" for key in keys)
    out = struct.pack("<7I", _MO_MAGIC, 0, len(keys), ids_table, strs_table, 0, 0)
    for table, start in ((keys, data), ([messages[k] for k in keys], data + len(ids))):
        offset = start
        for item in table:
            out += struct.pack("<2I", len(item), offset)
            offset += len(item) + 1
    return out + ids + strs


def catalogue_from_po(text: str, path: Path | None = None) -> gettext.GNUTranslations:
    """A gettext catalogue from the text of a .po file (read from `path`, if given)."""
    return gettext.GNUTranslations(io.BytesIO(compile_mo(parse_po(text, path))))


def _primary(lang: str) -> str:
    return lang.replace("-", "_").split("_", 1)[0].lower()


class Translator:
    """The report's strings in one language, and the direction that language is written in."""

    def __init__(self, lang: str, catalogue: gettext.NullTranslations | None = None) -> None:
        self.lang = lang
        self._catalogue = catalogue or gettext.NullTranslations()

    @property
    def rtl(self) -> bool:
        return _primary(self.lang) in RTL_LANGUAGES

    @property
    def direction(self) -> str:
        return "rtl" if self.rtl else "ltr"

    def _(self, message: str) -> str:
        """One translated string."""
        return self._catalogue.gettext(message)

    def n_(self, singular: str, plural: str, n: int) -> str:
        """The translated form of a counted string that fits `n` in this language."""
        return self._catalogue.ngettext(singular, plural, n)


def _catalogue_path(localedir: Path, lang: str) -> Path:
    return localedir / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def available_languages(localedir: Path = LOCALEDIR) -> list[str]:
    """The languages with a catalogue (and English, the language of the msgids)."""
    found = {SOURCE_LANGUAGE}
    if localedir.is_dir():
        found |= {p.name for p in localedir.iterdir() if _catalogue_path(localedir, p.name)
                  .is_file()}
    return sorted(found)


def translator(lang: str = SOURCE_LANGUAGE, localedir: Path = LOCALEDIR) -> Translator:
    """The translator for `lang` ("ar", "pt_BR", "pt-BR"; a region falls back to its language).

    Raises UnknownLanguage when there is no catalogue: a legal report in a language other than
    the one asked for would mislead, so there is no silent fallback to English.
    """
    normal = lang.replace("-", "_")
    for candidate in dict.fromkeys((normal, _primary(normal))):
        path = _catalogue_path(localedir, candidate)
        if path.is_file():
            return Translator(candidate,
                              catalogue_from_po(path.read_text(encoding="utf-8"), path))
    if _primary(normal) == SOURCE_LANGUAGE:
        return Translator(SOURCE_LANGUAGE)
    known = ", ".join(available_languages(localedir))
    raise UnknownLanguage(f"no report translation for {lang!r}; available: {known}")
