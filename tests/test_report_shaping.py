"""PDF reports shaped by HarfBuzz (uharfbuzz, through fpdf2): Arabic joined, right to left.

The report is the one `tests/test_report.py` builds from its hand-made store, in Arabic through a
small catalogue. Shaping is proved on the PDF itself, rendered with and without it: the glyphs
drawn for each letter (the font's ToUnicode map), the glyphs the embedded font holds, and how the
text reads back. No network at all.
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from presentation import report_pdf
from presentation.report_model import Report
from presentation.report_pdf import find_fonts, render_pdf, text_support
from services import report as service
from services.report import ReportOptions
from tests import test_report
from tests.test_report import (
    CLEAN_URL,
    DNS_URL,
    GENERATED,
    PAGE_URL,
    Case,
    _catalogue,
    _pdf_text,
)

case = test_report.case  # the fixture: a store with a DNS block, a blockpage, a clean target

pytestmark = pytest.mark.skipif(find_fonts() is None,
                                reason="DejaVu Sans (Bold, Mono) not found: no TrueType font")

ARABIC_PLURALS = ("nplurals=6; plural=n==0 ? 0 : n==1 ? 1 : n==2 ? 2 : n%100>=3 && n%100<=10 ? 3 "
                  ": n%100>=11 ? 4 : 5;")
FINDINGS = "النتائج"  # "the findings": the section title, drawn in DejaVu Sans Bold
SUMMARY = "ملخص النتائج"  # "summary of findings"
# In النتائج the alef stands alone at the start (ا) and joins the teh before it near the end (ـا):
# the same letter, two glyphs once shaped. Its other letters take their contextual forms too:
# DejaVu's glyphs for them are those of Unicode's Arabic presentation forms.
ALEF = "\u0627"
CONTEXTUAL = {
    "\ufedf": "lam, initial", "\ufee8": "noon, medial", "\ufe98": "teh, medial",
    "\ufe8e": "alef, final", "\ufe8b": "yeh with hamza, initial", "\ufe9e": "jeem, final",
}
BASE = {"\u0644", "\u0646", "\u062a", ALEF, "\u0626", "\u062c"}  # the same letters, unjoined


def _arabic_report(case: Case, tmp_path: Path) -> Report:
    localedir = _catalogue(tmp_path, "ar",
                           f'msgid "Findings"\nmsgstr "{FINDINGS}"\n\n'
                           f'msgid "Summary of findings"\nmsgstr "{SUMMARY}"\n',
                           plural=ARABIC_PLURALS)
    return service.build(case.store, ReportOptions(lang="ar", localedir=localedir,
                                                   generated=GENERATED, plot=False))


def _fonts(data: bytes) -> dict[str, tuple[dict[int, str], set[int]]]:
    """Each embedded font by name: its ToUnicode map (code drawn -> text) and the code points
    its embedded font program maps (its cmap)."""
    from fontTools.ttLib import TTFont
    from pypdf import PdfReader

    found: dict[str, tuple[dict[int, str], set[int]]] = {}
    for page in PdfReader(io.BytesIO(data)).pages:
        resources: Any = page["/Resources"]
        for ref in resources["/Font"].values():
            font = ref.get_object()
            name = str(font["/BaseFont"]).split("+", 1)[-1]
            if name in found or "/ToUnicode" not in font:
                continue
            cmap = font["/ToUnicode"].get_object().get_data().decode("latin-1")
            to_unicode = {int(code, 16): bytes.fromhex(text).decode("utf-16-be")
                          for code, text in re.findall(r"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>",
                                                       cmap.split("endcodespacerange", 1)[1])}
            descendant = font["/DescendantFonts"][0].get_object()
            program = descendant["/FontDescriptor"]["/FontFile2"].get_object().get_data()
            found[name] = (to_unicode, set(TTFont(io.BytesIO(program)).getBestCmap()))
    return found


def _glyphs_for(to_unicode: dict[int, str], text: str) -> set[int]:
    return {code for code, chars in to_unicode.items() if chars == text}


def test_arabic_letters_are_joined_and_drawn_right_to_left(case: Case, tmp_path: Path) -> None:
    report = _arabic_report(case, tmp_path)
    shaped, unshaped = render_pdf(report), render_pdf(report, shape=False)
    bold_shaped = _fonts(shaped)["DejaVuSansBold"]
    bold_unshaped = _fonts(unshaped)["DejaVuSansBold"]

    # Shaped: the alef of النتائج is drawn with two glyphs, isolated and final; the embedded
    # font holds the contextual forms of all its letters.
    assert len(_glyphs_for(bold_shaped[0], ALEF)) == 2
    missing = {CONTEXTUAL[ch] for ch in CONTEXTUAL if ord(ch) not in bold_shaped[1]}
    assert not missing, f"contextual forms not drawn: {sorted(missing)}"
    # Unshaped: one glyph per letter, the isolated form, whatever its neighbours.
    assert len(_glyphs_for(bold_unshaped[0], ALEF)) == 1
    assert not {ord(ch) for ch in CONTEXTUAL} & bold_unshaped[1]
    assert {ord(ch) for ch in BASE} <= bold_unshaped[1]
    # The glyphs drawn are not the same: the content streams differ, not just metadata.
    assert shaped != unshaped

    # Right to left: read back, the shaped words come out in their own order (as typed, and as a
    # search finds them); drawn unshaped, left to right, they come out reversed.
    _pages, text = _pdf_text(shaped)
    assert FINDINGS in text and SUMMARY in text
    # The paragraphs' base direction is the language's: a sentence left in English ends on the
    # left, as in a browser's dir="rtl" (the full stop is read back first).
    assert ".Scope: every stored measurement" in text
    _pages, text = _pdf_text(unshaped)
    assert FINDINGS not in text and FINDINGS[::-1] in text
    assert "Scope: every stored measurement." in text


def test_shaped_arabic_pdf_is_valid_and_keeps_its_latin_text(case: Case, tmp_path: Path) -> None:
    from pypdf import PdfReader

    data = render_pdf(_arabic_report(case, tmp_path))
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    reader = PdfReader(io.BytesIO(data), strict=True)
    assert reader.metadata is not None and reader.metadata.title
    pages, text = _pdf_text(data)
    assert pages >= 2 and f"Page 1 of {pages}" in " ".join(text.split())
    # Target URLs, measurement ids and record hashes read back as they were recorded.
    dense = "".join(text.split())
    for url in (DNS_URL, PAGE_URL, CLEAN_URL):
        assert url in text
    for mid in case.ids.values():
        row = case.store.measurement(mid)
        assert row is not None and row["record_sha256"] in dense
        # its exhibit's row: label, measurement id, run id, left to right
        assert re.search(rf"^E\d+ {mid} {row['run_id']} ", text, re.MULTILINE), mid
    assert "NXDOMAIN" in text and "<script>alert(1)</script>" in dense  # evidence stays text
    # The limitations say what this PDF does: letters are joined, so no caveat about joining.
    assert "leaves out characters its font lacks" in text
    assert "without joining" not in text


@pytest.fixture
def clear_cache() -> Iterator[None]:
    """`harfbuzz_importable` is cached: forget what it found, before and after."""
    report_pdf.harfbuzz_importable.cache_clear()
    yield
    report_pdf.harfbuzz_importable.cache_clear()


def test_without_uharfbuzz_the_pdf_is_unshaped_and_says_so(case: Case, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          clear_cache: None) -> None:
    assert text_support() == "shaped"
    monkeypatch.setitem(sys.modules, "uharfbuzz", None)  # `import uharfbuzz` raises ImportError
    report_pdf.harfbuzz_importable.cache_clear()
    assert text_support() == "unshaped"
    report = _arabic_report(case, tmp_path)
    data = render_pdf(report)  # shaping asked for, not available: drawn unshaped, no error
    assert data == render_pdf(report, shape=False)
    to_unicode, _cmap = _fonts(data)["DejaVuSansBold"]
    assert len(_glyphs_for(to_unicode, ALEF)) == 1
    _pages, text = _pdf_text(data)
    assert "without joining Arabic letters" in " ".join(text.split())


def test_core_fonts_still_work_and_the_report_says_what_they_cannot_show(
        case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_pdf, "find_fonts", lambda dirs=None: None)
    assert text_support() == "latin1"
    report = _arabic_report(case, tmp_path)
    data = render_pdf(report)
    assert data.startswith(b"%PDF-")
    _pages, text = _pdf_text(data)
    flat = " ".join(text.split())
    assert "\\u0627" in text and FINDINGS not in text  # Arabic written out as numbers
    assert "No Unicode font was found for the PDF version" in flat
    assert DNS_URL in text
