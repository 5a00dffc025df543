"""The report quotes what its findings rest on, and its PDF keeps things whole.

Each test reproduces one way a report misled or broke (issue 12, "Reports and plots"): the
harmless name missing from an SNI finding, a public resolver's AAAA NXDOMAIN quoted as if it
refused the name, the control's TLS handshake left unquoted, an outage finding headed as if a
site were out, a figure parted from its caption by a page break, table headers split mid-word.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from core import failures
from core.observations import (
    DNSQuery,
    DNSResponse,
    HTTPRequest,
    Measurement,
    TCPConnect,
    TLSHandshake,
)
from core.target import Target
from presentation.i18n import translator
from presentation.report_control import describe_control
from presentation.report_evidence import explain
from presentation.report_model import Figure, Paragraph, Report, Section
from presentation.report_pdf import render_pdf
from results.store import Store
from services.report import ReportOptions, write_report

pypdf = pytest.importorskip("pypdf")

GENERATED = "2025-01-03T10:00:00.000000Z"
STARTED = "2025-01-02T03:04:05.000000Z"
SNI_URL = "https://blocked-sni.example/"
DNS_URL = "https://blocked-dns.example/"
REAL = "93.184.216.34"
HARMLESS = "harmless.example"
TR = translator()


def dns(host: str, qtype: str, rcode: str, *addresses: str, engine: str = "udp",
        resolver: str = "8.8.8.8:53") -> DNSQuery:
    failure = {"NXDOMAIN": failures.DNS_NXDOMAIN}.get(rcode) or (
        None if addresses else failures.DNS_NO_ANSWER)
    return DNSQuery(0.0, 0.02, host, qtype, engine, "" if engine == "system" else resolver,
                    failure, (DNSResponse(0.02, rcode, addresses, ttl=60),))


def tls(sni: str, failure: str | None, purpose: str = "target",
        verified: bool = False) -> TLSHandshake:
    return TLSHandshake(0.05, 0.1, REAL, 443, sni, failure, purpose=purpose,
                        version=None if failure else "TLSv1.3", cert_verified=verified)


def sni_block() -> Measurement:
    """SNI filtering as the probe records it: the target's name is reset; the harmless name's
    handshake reaches the server, which answers with a certificate for its own name."""
    return Measurement(Target(SNI_URL), STARTED, 0.5, (
        dns("blocked-sni.example", "ANY", "NOERROR", REAL, engine="system"),
        TCPConnect(0.02, 0.03, REAL, 443, None),
        tls("blocked-sni.example", failures.CONNECTION_RESET),
        TCPConnect(0.1, 0.11, REAL, 443, None),
        tls(HARMLESS, failures.SSL_INVALID_HOSTNAME, purpose="harmless_sni"),
    ))


SNI_VERDICT = {"verdict": "blocked", "techniques": ["tls"], "outcomes": ["tls.sni_filtered"],
               "confidence": 0.95, "confirmed": True,
               "reason": "the TLS handshake naming blocked-sni.example was reset"}


def _report(tmp_path: Path, name: str, measurement: Measurement, verdict: dict) -> Path:
    with Store(tmp_path / "q.db") as store:
        run = store.begin_run({"tool": "netvigil", "version": "0.1.0"}, {})
        store.add_measurement(run, measurement, verdict)
        store.finish_run(run, "ok", {})
        return write_report(store, tmp_path / name, ReportOptions(generated=GENERATED,
                                                                  plot=False))


def _flat(text: str) -> str:
    return " ".join(text.split())


def _pdf_pages(data: bytes) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages]


# --- 1. the SNI finding names the harmless site its proof rests on --------------------------


def test_the_sni_explanation_names_and_quotes_the_harmless_handshake() -> None:
    text, quotes = explain("tls.sni_filtered", sni_block(), None, TR)
    assert f"naming a harmless site ({HARMLESS})" in text and "(?)" not in text
    harmless = [q for q in quotes if f"SNI {HARMLESS}" in q.text]
    assert len(harmless) == 1
    # The server answered the harmless name: the quote must not read as a failure like the
    # target's reset; it says the certificate was for another name.
    assert "server answered" in harmless[0].text
    assert failures.SSL_INVALID_HOSTNAME in harmless[0].text


def test_the_sni_finding_names_the_harmless_site_in_html_and_pdf(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETVIGIL_KEYS", str(tmp_path / "keys"))
    html = _report(tmp_path, "r.html", sni_block(), SNI_VERDICT).read_text(encoding="utf-8")
    assert f"naming a harmless site ({HARMLESS}) completed" in html
    assert f"SNI {HARMLESS} → {REAL}:443" in html
    pdf = _flat("\n".join(_pdf_pages(
        _report(tmp_path, "r.pdf", sni_block(), SNI_VERDICT).read_bytes())))
    assert f"naming a harmless site ({HARMLESS}) completed" in pdf


# --- 2. DNS: the query types that decide, on both sides --------------------------------------


def dns_block() -> Measurement:
    """The ISP's resolver denies the name (A and AAAA); the public resolver gives its address
    (A) and has no IPv6 address for it (AAAA NXDOMAIN, as some resolvers answer)."""
    host = "blocked-dns.example"
    return Measurement(Target(DNS_URL), STARTED, 0.5, (
        dns(host, "AAAA", "NXDOMAIN"),
        dns(host, "A", "NOERROR", REAL),
        dns(host, "A", "NXDOMAIN", resolver="192.168.1.1:53"),
        dns(host, "AAAA", "NXDOMAIN", resolver="192.168.1.1:53"),
    ))


def dns_control(tls_failure: str | None = None) -> Measurement:
    host = "blocked-dns.example"
    steps: list = [dns(host, "AAAA", "NOERROR", resolver="1.1.1.1:53"),
                   dns(host, "A", "NOERROR", REAL, resolver="1.1.1.1:53"),
                   TCPConnect(0.02, 0.05, REAL, 443, None),
                   tls(host, tls_failure, verified=tls_failure is None)]
    if tls_failure is None:
        steps.append(HTTPRequest(0.1, 0.2, DNS_URL, REAL, 443, None, status=200,
                                 title="Independent News", body_length=31))
    return Measurement(Target(DNS_URL), STARTED, 0.4, tuple(steps))


def test_a_dns_finding_quotes_the_refusing_resolver_and_not_the_public_aaaa() -> None:
    text, quotes = explain("dns.nxdomain", dns_block(), dns_control(), TR)
    # The sentence names the resolver that refused the name, not the public one.
    assert "the resolver at 192.168.1.1:53 answered NXDOMAIN" in text
    shown = [q.text for q in quotes]
    # Both of its query types are quoted: together they are the refusal.
    assert any("192.168.1.1:53 A blocked-dns.example → NXDOMAIN" in t for t in shown), shown
    assert any("192.168.1.1:53 AAAA blocked-dns.example → NXDOMAIN" in t for t in shown), shown
    # The public resolver is never quoted as refusing: its AAAA NXDOMAIN decides nothing.
    assert not any("8.8.8.8:53 AAAA" in t for t in shown), shown
    # The control's quoted answer is the one with the address, not its empty AAAA.
    control = [q.text for q in quotes if q.label == "control DNS query"]
    assert control and all(REAL in t for t in control), control
    # The public resolver's A answer, if quoted, is quoted with its address.
    assert all(REAL in t for t in shown if "8.8.8.8:53" in t), shown


@pytest.mark.parametrize("tls_failure", [None, failures.CONNECTION_RESET])
def test_the_control_paragraph_quotes_the_helpers_tls_handshake(tls_failure: str | None) -> None:
    text, quotes = describe_control(dns_block(), dns_control(tls_failure), TR)
    tls_quotes = [q.text for q in quotes if q.label == "control TLS handshake"]
    assert len(tls_quotes) == 1, quotes
    dns_quotes = [q.text for q in quotes if q.label == "control DNS query"]
    assert dns_quotes and REAL in dns_quotes[0]  # the answer, not the empty AAAA
    if tls_failure is None:
        assert "completed" in tls_quotes[0]
        assert "Its TLS handshake naming blocked-dns.example completed" in text
    else:
        assert tls_failure in tls_quotes[0]
        assert (f"Its TLS handshake naming blocked-dns.example failed ({tls_failure})"
                in text)


def test_an_outage_finding_has_its_own_heading(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETVIGIL_KEYS", str(tmp_path / "keys"))
    with Store(tmp_path / "o.db") as store:
        run = store.begin_run({"tool": "netvigil", "version": "0.1.0"}, {})
        store.add_measurement(run, Measurement(Target(DNS_URL), STARTED, 0.1, ()),
                              {"verdict": "insufficient", "reason": "upstream unreachable"})
        store.finish_run(run, "upstream_unreachable", {})
        html = write_report(store, tmp_path / "o.html",
                            ReportOptions(generated=GENERATED, plot=False)).read_text()
    findings = html.split('<section id="s2">')[1].split("</section>")[0]
    assert "Finding 1: a network outage" in findings
    assert "outage of the site" not in findings
    assert "What bounds it in time" in findings
    # A blocking finding keeps the heading that fits it.
    blocking = _report(tmp_path / "b", "b.html", sni_block(), SNI_VERDICT)
    assert "What rules out a local fault or an outage of the site." in blocking.read_text()


# --- 4. the PDF: a figure keeps its caption; table headers keep their words -----------------


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (1200, 700), (40, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def _figure_report(filler: int) -> Report:
    lines = tuple(Paragraph(f"Filler paragraph {i} of the findings.") for i in range(filler))
    caption = "Caption of the timeline figure."
    section = Section(1, "Timeline", (*lines, Figure("image/png", _png(), caption, "alt")))
    return Report(lang="en", direction="ltr", title="t", front=(), sections=(section,),
                  page_label="Page {page} of {pages}", generated=GENERATED)


def test_a_figure_and_its_caption_share_a_page() -> None:
    png = _png()
    checked = 0
    # Fillers of every length move the figure down the page until it meets the page's end.
    for filler in range(0, 60, 2):
        reader = pypdf.PdfReader(io.BytesIO(render_pdf(_figure_report(filler))))
        with_image = [i for i, page in enumerate(reader.pages) if page.images]
        assert len(with_image) == 1, filler
        page = reader.pages[with_image[0]]
        assert "Caption of the timeline figure." in _flat(page.extract_text()), filler
        checked += len(reader.pages) > 1
    assert checked  # some layouts did reach a second page
    assert png  # the image is real PNG data


def test_the_exhibits_table_keeps_its_header_words_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETVIGIL_KEYS", str(tmp_path / "keys"))
    pages = _pdf_pages(_report(tmp_path, "e.pdf", sni_block(), SNI_VERDICT).read_bytes())
    words = {w for page in pages for line in page.splitlines() for w in line.split()}
    for header in ("Exhibit", "Measurement", "Run", "Target", "Started", "(UTC,", "exact)",
                   "Verdict", "Record", "SHA-256"):
        assert header in words, (header, sorted(w for w in words if len(w) < 8))
    assert not re.search(r"\bExhibi\b", "\n".join(pages))
    # The table's caption is on the page of its header, not alone at the foot of the one before.
    [page] = [p for p in pages if "Measurements cited in this report" in p]
    assert "Exhibit Measurement" in _flat(page)
