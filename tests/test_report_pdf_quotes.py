"""The PDF report quotes evidence character for character (issue 11, section 6).

fpdf2 replaces its page-count alias `{nb}` in any text it draws: a censor's block page titled
"Blocked {nb}" came out of the PDF as "Blocked 3". These tests put `{nb}` (and fpdf2's other
triggers: markdown markers, a soft hyphen, a no-break space, a tab, a line break) in quoted
evidence, render the PDF in each of its text modes, extract the text with pypdf and look for the
quote exactly as the report model holds it. The footer's own page count must still work.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from core.observations import DNSQuery, DNSResponse, HTTPRequest, Measurement, TCPConnect
from core.target import Target
from presentation.report_model import Paragraph, Quote, Report, Section
from presentation.report_pdf import render_pdf
from presentation.report_text import visible
from results.store import Store
from services.report import ReportOptions, write_report

pypdf = pytest.importorskip("pypdf")
pytest.importorskip("fpdf")

QUOTES = ("Blocked {nb}", "{nb}{nb} of {nb}", "{{nb}}", "**bold** __it__ --strike-- {nb",
          "nb} {NB} { nb }")
#: fpdf2's text modes: shaped TrueType, unshaped TrueType, the core Latin-1 fonts.
MODES = {"shaped": {}, "unshaped": {"shape": False}, "latin1": {"find": False}}


def _pages(data: bytes) -> list[str]:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return [page.extract_text() for page in reader.pages]


def _report(paragraphs: int) -> Report:
    blocks = tuple(Paragraph(text=f"Finding {i} {{nb}}", number=i,
                             quotes=tuple(Quote("Title", q) for q in QUOTES))
                   for i in range(1, paragraphs + 1))
    return Report(lang="en", direction="ltr", title="Report {nb}", front=("Scope {nb}",),
                  sections=(Section(1, "Findings {nb}", blocks),),
                  page_label="Page {page} of {pages}")


@pytest.mark.parametrize("mode", sorted(MODES))
def test_nb_in_quoted_evidence_survives_on_every_page(mode: str) -> None:
    pages = _pages(render_pdf(_report(40), **MODES[mode]))  # type: ignore[arg-type]
    assert len(pages) >= 3
    for number, text in enumerate(pages, start=1):
        quoted = [line.strip().removeprefix("Title: ") for line in text.splitlines()
                  if line.startswith("Title: ")]
        assert quoted and set(quoted) <= set(QUOTES), (mode, number, quoted)
        assert f"Page {number} of {len(pages)}" in text  # the footer's own alias still works
    text = "\n".join(pages)
    assert "Report {nb}" in text and "Scope {nb}" in text and "Findings {nb}" in text
    for q in QUOTES:
        assert f"Title: {q}" in text, (mode, q)


def test_a_block_page_titled_with_nb_is_quoted_as_recorded(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NETVIGIL_KEYS", str(tmp_path / "keys"))
    title = "Blocked {nb} \u00adsoft\u00a0nbsp\ttab {nb}"
    url = "http://blockpage.example/{nb}"
    body = f"<html><head><title>{title}</title></head><body>denied</body></html>".encode()
    measurement = Measurement(Target(url, "social", "SOCIAL"), "2025-01-02T03:04:30.000000Z", 0.3, (
        DNSQuery(0.0, 0.02, "blockpage.example", "ANY", "system", "", None,
                 (DNSResponse(0.02, "NOERROR", ("198.51.100.7",), ttl=60),)),
        TCPConnect(0.02, 0.03, "198.51.100.7", 80, None),
        HTTPRequest(0.03, 0.1, url, "198.51.100.7", 80, None, status=200, title=title,
                    body=body, body_length=len(body), body_sha256="ab" * 32),
    ))
    verdict = {"verdict": "blocked", "techniques": ["http"],
               "outcomes": ["http.blockpage:ooni.zz_1"], "confidence": 0.9, "confirmed": True,
               "reason": f"{url} answered with a known blockpage {title}"}
    with Store(tmp_path / "case.db") as store:
        run = store.begin_run({"tool": "netvigil", "country": "EG", "asn": 64500}, {})
        store.add_measurement(run, measurement, verdict)
        store.finish_run(run, "ok", {})
        out = write_report(store, tmp_path / "report.pdf",
                           ReportOptions(generated="2025-01-03T10:00:00.000000Z", plot=False))
    text = "\n".join(_pages(out.read_bytes()))
    shown = visible(title)  # hidden characters written out as \xNN, as in the HTML
    assert "\\xad" in shown and "\\xa0" in shown and "\\x09" in shown
    assert shown in text
    assert url in text
