"""The lawyer-ready report: content, escaping, redaction, PDF, translations. No network at all.

The store is built by hand: a DNS NXDOMAIN block with a control, a blockpage whose title and
body carry `<script>alert(1)</script>`, a clean target, and a later run that finds the DNS
target reachable again.
"""

from __future__ import annotations

import ast
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from importlib.util import find_spec
from pathlib import Path

import pytest

from core.errors import FileLineError, ReportError
from core.observations import (
    DNSQuery,
    DNSResponse,
    HTTPRequest,
    Measurement,
    TCPConnect,
    TLSHandshake,
)
from core.target import Target
from presentation.i18n import LOCALEDIR, Translator, catalogue_from_po, parse_po, translator
from presentation.report_build import build_report, plan_findings
from presentation.report_html import CSP
from presentation.report_model import Evidence, ReportData
from presentation.report_pdf import render_pdf
from presentation.report_text import local_minute, utc_minute, visible, zone
from results.store import Store
from services import report as service
from services.report import ReportOptions, write_report

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "<script>alert(1)</script>"
VANTAGE = {"tool": "netvigil", "version": "0.1.0", "os": "linux", "asn": 64500,
           "network_name": "Example Telecom", "country": "EG", "timezone": "Africa/Cairo",
           "resolvers": ["192.168.1.1"]}
GENERATED = "2025-01-03T10:00:00.000000Z"
DNS_URL, PAGE_URL, CLEAN_URL = ("https://blocked-dns.example/", "http://blockpage.example/",
                                "https://clean.example/")


def _dns(host: str, rcode: str, *addresses: str, engine: str = "system",
         resolver: str = "") -> DNSQuery:
    failure = "dns_nxdomain_error" if rcode == "NXDOMAIN" else None
    return DNSQuery(0.0, 0.02, host, "ANY" if engine == "system" else "A", engine, resolver,
                    failure, (DNSResponse(0.02, rcode, addresses, ttl=60),))


def dns_block(started: str) -> Measurement:
    return Measurement(Target(DNS_URL, "news", "NEWS"), started, 0.5, (
        _dns("blocked-dns.example", "NXDOMAIN"),
        _dns("blocked-dns.example", "NXDOMAIN", engine="udp", resolver="192.168.1.1:53"),
    ))


def dns_control() -> Measurement:
    return Measurement(Target(DNS_URL, "news", "NEWS"), "2025-01-02T03:04:06.000000Z", 0.4, (
        _dns("blocked-dns.example", "NOERROR", "93.184.216.34"),
        TCPConnect(0.02, 0.05, "93.184.216.34", 443, None),
        TLSHandshake(0.05, 0.1, "93.184.216.34", 443, "blocked-dns.example", None,
                     version="TLSv1.3", cert_verified=True),
        HTTPRequest(0.1, 0.2, DNS_URL, "93.184.216.34", 443, None, status=200,
                    title="Independent News", body=b"<title>Independent News</title>",
                    body_length=31),
    ))


def blockpage(started: str) -> Measurement:
    body = (f"<html><head><title>Blocked {SCRIPT}</title></head>"
            f"<body>{SCRIPT} access denied</body></html>").encode()
    return Measurement(Target(PAGE_URL, "social", "SOCIAL"), started, 0.3, (
        _dns("blockpage.example", "NOERROR", "198.51.100.7"),
        TCPConnect(0.02, 0.03, "198.51.100.7", 80, None),
        HTTPRequest(0.03, 0.1, PAGE_URL, "198.51.100.7", 80, None, status=200,
                    headers=(("Server", f"censor {SCRIPT}"),), title=f"Blocked {SCRIPT}",
                    body=body, body_length=len(body), body_sha256="ab" * 32),
    ))


def clean(started: str, url: str = CLEAN_URL) -> Measurement:
    host = Target(url).hostname
    return Measurement(Target(url, "search", "SEARCH"), started, 0.2, (
        _dns(host, "NOERROR", "203.0.113.5"),
        TCPConnect(0.02, 0.03, "203.0.113.5", 443, None),
    ))


OK = {"verdict": "ok", "confidence": 0.9, "reason": "fetched over TLS with a valid certificate"}
DNS_VERDICT = {"verdict": "blocked", "techniques": ["dns"], "outcomes": ["dns.nxdomain"],
               "confidence": 0.8, "confirmed": False,
               "reason": "resolver 192.168.1.1:53 answered dns_nxdomain_error for "
                         "blocked-dns.example"}
PAGE_VERDICT = {"verdict": "blocked", "techniques": ["http"],
                "outcomes": ["http.blockpage:ooni.zz_1"], "confidence": 0.9, "confirmed": True,
                "reason": f"{PAGE_URL} answered with a known blockpage {SCRIPT}"}


@dataclass
class Case:
    store: Store
    ids: dict[str, int]


@pytest.fixture
def case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Case]:
    monkeypatch.setenv("NETVIGIL_KEYS", str(tmp_path / "keys"))  # signing keys stay in tmp
    with Store(tmp_path / "case.db") as store:
        run1 = store.begin_run(VANTAGE, {})
        ids = {
            "dns": store.add_measurement(run1, dns_block("2025-01-02T03:04:05.123456Z"),
                                         DNS_VERDICT),
            "page": store.add_measurement(run1, blockpage("2025-01-02T03:04:30.000000Z"),
                                          PAGE_VERDICT),
            "clean": store.add_measurement(run1, clean("2025-01-02T03:05:00.000000Z"), OK),
        }
        store.add_control(run1, ids["dns"], dns_control())
        store.finish_run(run1, "ok", {})
        run2 = store.begin_run(VANTAGE, {})
        ids["dns_after"] = store.add_measurement(
            run2, clean("2025-01-02T05:00:00.000000Z", DNS_URL), OK)
        store.finish_run(run2, "ok", {})
        yield Case(store, ids)


def _html(case: Case, tmp_path: Path, **options: object) -> str:
    out = write_report(case.store, tmp_path / "report.html",
                       ReportOptions(generated=GENERATED, plot=False, **options))  # type: ignore[arg-type]
    return out.read_text(encoding="utf-8")


def test_html_report_states_what_where_when_how(case: Case, tmp_path: Path) -> None:
    html = _html(case, tmp_path)
    assert DNS_URL in html and PAGE_URL in html
    # How, in plain words, with the control's answer.
    assert ("the system resolver (normally the one the ISP provides) answered NXDOMAIN (the name "
            "does not exist), while the control (the test helper, on an uncensored network) "
            "resolved it to 93.184.216.34.") in html
    assert "answered with a known blockpage (ooni.zz_1): status 200" in html
    # The decisive evidence, quoted: the DNS answer and the blockpage's server header.
    assert "system ANY blocked-dns.example → NXDOMAIN (t=0.020 s)" in html
    assert "Server: censor &lt;script&gt;" in html
    # Where and when: UTC to the minute and the vantage point's local time.
    assert "ISP: Example Telecom; network (ASN): AS64500; country: EG." in html
    assert "At 2025-01-02 03:04 UTC." in html
    assert "2025-01-02 05:04 (Africa/Cairo, UTC+02:00)" in html
    # How sure, and what rules out a local fault or an outage of the site.
    assert "The analysis&#x27;s confidence is 0.80" in html
    assert "It is confirmed by positive proof" in html
    assert "resolved blocked-dns.example to 93.184.216.34" in html
    assert "1 other target was reachable: https://clean.example/" in html
    assert re.search(r"Afterwards, measurement \d+ \(exhibit E\d+\) of https://blocked-dns"
                     r"\.example/, at 2025-01-02 05:00 UTC, found it reachable\.", html)
    # The paragraphs are numbered through the whole document.
    numbers = [int(n) for n in re.findall(r'<p class="para" id="p(\d+)">', html)]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) > 20


def test_exhibits_cite_every_measurement_with_its_record_hash(case: Case, tmp_path: Path) -> None:
    html = _html(case, tmp_path)
    exhibits = html[html.index('<section id="s5">'):html.index('<section id="s6">')]
    for mid in case.ids.values():  # the findings, the clean peer, and the measurement after
        row = case.store.measurement(mid)
        assert row is not None
        assert f"<td>{mid}</td>" in exhibits
        assert row["record_sha256"] in exhibits
    control_hash = case.store.control_sha256(case.ids["dns"])
    assert control_hash and control_hash in exhibits
    assert "2025-01-02T03:04:05.123456Z" in exhibits
    assert case.store.head() in html  # the chain's head, stated in the methodology


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_untrusted_text_is_escaped_and_nothing_is_loaded(case: Case, tmp_path: Path) -> None:
    html = _html(case, tmp_path)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # title, header, body, reason
    assert "<script" not in html.lower()
    parser = _Tags()
    parser.feed(html)
    tags = {tag for tag, _ in parser.tags}
    assert "script" not in tags and "link" not in tags and "iframe" not in tags
    for tag, attrs in parser.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name in ("src", "href"):
                assert (value or "").startswith("data:image/"), (tag, name, value)
    escaped_csp = CSP.replace("'", "&#x27;")
    assert f'<meta http-equiv="Content-Security-Policy" content="{escaped_csp}">' in html
    assert CSP == "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", html)


def test_redact_vantage_leaves_out_the_network_and_says_so(case: Case, tmp_path: Path) -> None:
    html = _html(case, tmp_path, redact_vantage=True)
    for secret in ("64500", "Example Telecom", "192.168.1.1"):
        assert secret not in html
    assert "the vantage point&#x27;s exact network is left out" in html
    assert "withheld from this report" in html
    assert "udp [withheld] A blocked-dns.example" in html
    assert "resolver [withheld] answered dns_nxdomain_error" in html  # the analysis's reason
    assert "Country: EG." in html  # the country is not the exact network
    plain = _html(case, tmp_path)
    assert "AS64500" in plain and "udp 192.168.1.1:53 A blocked-dns.example" in plain


def test_timeline_is_embedded_as_a_data_uri(case: Case, tmp_path: Path) -> None:
    out = write_report(case.store, tmp_path / "t.html", ReportOptions(generated=GENERATED))
    html = out.read_text(encoding="utf-8")
    if find_spec("matplotlib") is None:
        assert "the plotting extra (matplotlib) is not installed" in html
    else:
        assert re.search(r'<img alt="Timeline of the measurements" src="data:image/png;base64,'
                         r'iVBORw0KGgo', html)


def _pdf_text(data: bytes) -> tuple[int, str]:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    return len(reader.pages), "\n".join(page.extract_text() for page in reader.pages)


def test_pdf_is_valid_and_holds_the_findings(case: Case, tmp_path: Path) -> None:
    out = write_report(case.store, tmp_path / "report.pdf",
                       ReportOptions(generated=GENERATED, plot=False))
    data = out.read_bytes()
    assert data.startswith(b"%PDF-")
    pages, text = _pdf_text(data)
    assert pages >= 2
    flat = " ".join(text.split())
    assert "Finding 1: blocking of https://blocked-dns.example/" in flat
    assert "answered NXDOMAIN (the name does not exist)" in flat
    assert "2025-01-02 03:04 UTC" in flat
    assert SCRIPT in flat  # the PDF shows the title as text; nothing in a PDF runs it
    dense = "".join(text.split())
    for mid in case.ids.values():
        row = case.store.measurement(mid)
        assert row is not None and row["record_sha256"] in dense
    assert f"Page 1 of {pages}" in flat


def test_pdf_without_unicode_fonts_escapes_what_latin1_cannot_show(case: Case) -> None:
    report = service.build(case.store, ReportOptions(generated=GENERATED, plot=False))
    data = render_pdf(report, find=False)
    _pages, text = _pdf_text(data)
    assert "Finding 1" in text
    assert "\\u2192" in text  # the arrow of a quoted DNS answer, written out, not dropped


PO_HEADER = ('msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n'
             '"Plural-Forms: {plural}\\n"\n\n')


def _catalogue(tmp_path: Path, lang: str, entries: str,
               plural: str = "nplurals=2; plural=(n != 1);") -> Path:
    folder = tmp_path / "locale" / lang / "LC_MESSAGES"
    folder.mkdir(parents=True)
    (folder / "netvigil.po").write_text(PO_HEADER.format(plural=plural) + entries,
                                        encoding="utf-8")
    return tmp_path / "locale"


def test_a_catalogue_translating_one_string_changes_the_report(case: Case,
                                                               tmp_path: Path) -> None:
    localedir = _catalogue(tmp_path, "fr", 'msgid "Summary of findings"\n'
                                           'msgstr "Résumé des constatations"\n')
    html = _html(case, tmp_path, lang="fr", localedir=localedir)
    assert "<h2>1. Résumé des constatations</h2>" in html
    assert "Summary of findings" not in html
    assert '<html lang="fr" dir="ltr">' in html


def test_arabic_is_right_to_left(case: Case, tmp_path: Path) -> None:
    localedir = _catalogue(tmp_path, "ar", 'msgid "Findings"\nmsgstr "النتائج"\n',
                           plural="nplurals=6; plural=n==0 ? 0 : n==1 ? 1 : n==2 ? 2 : "
                                  "n%100>=3 && n%100<=10 ? 3 : n%100>=11 ? 4 : 5;")
    html = _html(case, tmp_path, lang="ar", localedir=localedir)
    assert '<html lang="ar" dir="rtl">' in html
    assert "<h2>2. النتائج</h2>" in html
    assert '<code dir="auto">' in html  # quoted evidence keeps its own direction
    report = service.build(case.store, ReportOptions(lang="ar", localedir=localedir,
                                                     generated=GENERATED, plot=False))
    assert render_pdf(report).startswith(b"%PDF-")


def test_an_unknown_language_is_refused(case: Case, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no report translation for 'xx'; available: en"):
        _html(case, tmp_path, lang="xx")


def test_a_broken_catalogue_names_its_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "xx" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    po = folder / "netvigil.po"
    po.write_text('msgid ""\nmsgstr ""\n\nmsgid "reachable"\nmsgstr erreichbar\n',
                  encoding="utf-8")
    with pytest.raises(FileLineError, match=r"netvigil\.po:5: expected a quoted string") as err:
        translator("xx", tmp_path)
    assert (err.value.path, err.value.line) == (str(po), 5)
    with pytest.raises(FileLineError, match=r"^line 2: 'msgtxt' before any msgid$"):
        parse_po('# a comment\nmsgtxt "x"\n')
    with pytest.raises(FileLineError, match=r"^line 2: unknown keyword 'msgtxt'$"):
        parse_po('msgid "a"\nmsgtxt "x"\n')


# --- every string goes through the catalogue ------------------------------------------------


def _source_messages() -> set[str]:
    """Every msgid of `_("...")` and `n_("...", "...", n)` in presentation/*.py."""
    found: set[str] = set()
    for path in sorted((ROOT / "presentation").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("_", "n_"):
                for arg in node.args[: 1 if name == "_" else 2]:
                    assert isinstance(arg, ast.Constant) and isinstance(arg.value, str), \
                        f"{path.name}:{node.lineno}: a translated string must be a literal"
                    found.add(arg.value)
    return found


def _catalogue_messages(path: Path) -> set[str]:
    entries = parse_po(path.read_text(encoding="utf-8"))
    return {m for e in entries if e.msgid for m in (e.msgid, e.msgid_plural) if m}


def test_the_template_and_the_english_catalogue_hold_every_report_string() -> None:
    source = _source_messages()
    assert len(source) > 100
    assert _catalogue_messages(LOCALEDIR / "netvigil.pot") == source
    assert _catalogue_messages(LOCALEDIR / "en" / "LC_MESSAGES" / "netvigil.po") == source


def _pseudo_locale(tmp_path: Path) -> Path:
    """A catalogue that wraps every template string in ⟦ ⟧ (placeholders kept)."""
    lines = []
    for e in parse_po((LOCALEDIR / "netvigil.pot").read_text(encoding="utf-8")):
        if not e.msgid:
            continue
        def q(s: str) -> str:
            return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
        lines.append(f"msgid {q(e.msgid)}")
        if e.msgid_plural is None:
            lines.append(f"msgstr {q('⟦' + e.msgid + '⟧')}")
        else:
            lines.append(f"msgid_plural {q(e.msgid_plural)}")
            lines.append(f"msgstr[0] {q('⟦' + e.msgid + '⟧')}")
            lines.append(f"msgstr[1] {q('⟦' + e.msgid_plural + '⟧')}")
        lines.append("")
    return _catalogue(tmp_path, "qps", "\n".join(lines))


class _Text(HTMLParser):
    """Text nodes outside quoted evidence (`<code>`), the style sheet and data table cells."""

    def __init__(self) -> None:
        super().__init__()
        self.skip = 0
        self.stack: list[bool] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("meta", "img"):
            return
        skipping = tag in ("code", "style") or (tag == "td" and ("class", "mono") in attrs)
        self.stack.append(skipping)
        self.skip += skipping

    def handle_endtag(self, tag: str) -> None:
        if self.stack:
            self.skip -= self.stack.pop()

    def handle_data(self, data: str) -> None:
        if not self.skip and data.strip():
            self.text.append(data)


def test_no_report_sentence_escapes_translation(case: Case, tmp_path: Path) -> None:
    html = _html(case, tmp_path, lang="qps", localedir=_pseudo_locale(tmp_path))
    parser = _Text()
    parser.feed(html)
    assert len(parser.text) > 50
    for text in parser.text:
        rest = text
        while True:  # translated strings nest ("⟦Finding ⟦...⟧⟧"): peel from the inside
            peeled = re.sub(r"⟦[^⟦⟧]*⟧", "", rest)
            if peeled == rest:
                break
            rest = peeled
        # What is left is data (numbers, URLs, ids, times): never two words in a row.
        assert not re.search(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}", rest), (text, rest)


# --- without events, with events, outages ---------------------------------------------------


@dataclass(frozen=True)
class FakeEvent:
    id: str
    kind: str
    targets: tuple[str, ...]
    techniques: tuple[str, ...]
    asn: str | None
    country: str | None
    start: str
    end: str | None
    first_clean: str | None
    measurement_ids: tuple[int, ...]
    confidence: float
    pattern: str = "persistent"
    window: str | None = None
    vantage_points: tuple[str, ...] = ("local",)


def _data(case: Case, **extra: object) -> ReportData:
    store = case.store
    rows = list(store.iter_rows())
    runs = {r["id"]: r for r in store.runs()}
    return ReportData(runs=runs, rows=rows, scope=[r["id"] for r in rows], generated=GENERATED,
                      software="netvigil test", **extra)  # type: ignore[arg-type]


def test_each_blocked_measurement_is_a_finding_without_events(case: Case) -> None:
    data = _data(case)
    plans = plan_findings(data.rows, data.runs, data.scope)
    assert [p.ids for p in plans] == [(case.ids["dns"],), (case.ids["page"],)]
    assert plans[0].after == (case.ids["dns_after"],)
    assert plans[0].peers == (case.ids["clean"],) and plans[0].peer_count == 1
    text = build_report(data, plans, translator()).text()
    assert "Measurements were not grouped into events over time" in text
    assert "There are 2 findings:" in text


def test_an_event_is_one_finding_over_its_span(case: Case) -> None:
    event = FakeEvent("e1", "blocking", (DNS_URL,), ("dns",), "AS64501", "EG",
                      "2025-01-02T03:04:05.123456Z", "2025-01-02T04:00:00.000000Z",
                      "2025-01-02T05:00:00.000000Z", (case.ids["dns"],), 0.87)
    data = _data(case, events=[event], events_available=True, evidence={
        case.ids["dns"]: Evidence(case.store.load_measurement(case.ids["dns"]),
                                  case.store.load_control(case.ids["dns"]))})
    plans = plan_findings(data.rows, data.runs, data.scope, [event])
    assert [p.ids for p in plans] == [(case.ids["dns"],), (case.ids["page"],)]
    assert plans[0].event is event and plans[0].after == (case.ids["dns_after"],)
    text = build_report(data, plans, translator()).text()
    assert "From 2025-01-02 03:04 UTC to 2025-01-02 04:00 UTC." in text
    assert "The first measurement without it afterwards was made at 2025-01-02 05:00 UTC." in text
    assert "It lasted without interruption." in text
    assert "network (ASN): AS64501" in text  # the event's own network
    assert "The analysis's confidence is 0.87" in text
    assert "answered NXDOMAIN (the name does not exist)" in text


def test_a_run_that_lost_the_internet_is_an_outage_finding(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETVIGIL_KEYS", str(tmp_path / "keys"))
    with Store(tmp_path / "o.db") as store:
        run = store.begin_run({"tool": "netvigil", "version": "0.1.0"}, {})
        store.add_measurement(run, clean("2025-02-01T10:00:00.000000Z"),
                              {"verdict": "insufficient", "reason": "upstream unreachable"})
        store.finish_run(run, "upstream_unreachable", {})
        html = write_report(store, tmp_path / "o.html",
                            ReportOptions(generated=GENERATED, plot=False)).read_text()
    assert "Finding 1: a network outage" in html
    assert "nothing beyond them answered" in html
    assert "ISP: not recorded; network (ASN): not recorded; country: not recorded." in html
    assert "Local time not recorded" in html


def test_scope_and_option_errors(case: Case, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    html = _html(case, tmp_path, since="2025-01-02T04:00", until="2025-01-02T06:00Z")
    assert "Scope: measurements from 2025-01-02 04:00 UTC to 2025-01-02 06:00 UTC." in html
    assert "No blocking and no outage was found" in html
    with pytest.raises(ReportError, match=r"must end in \.html or \.pdf"):
        write_report(case.store, tmp_path / "r.txt")
    with pytest.raises(ReportError, match="--since 'yesterday'"):
        _html(case, tmp_path, since="yesterday")
    monkeypatch.setattr(service, "_find_events", lambda *args: None)
    with pytest.raises(ReportError, match="--event needs the events analysis"):
        _html(case, tmp_path, event="e1")
    event = FakeEvent("e1", "blocking", (DNS_URL,), ("dns",), None, None,
                      "2025-01-02T03:04:05.123456Z", None, None, (case.ids["dns"],), 0.8)
    monkeypatch.setattr(service, "_find_events", lambda *args: [event])
    html = _html(case, tmp_path, event="e1")
    assert "Scope: event e1." in html and "blocking of https://blocked-dns.example/" in html
    assert "blockpage.example" not in html.split('<section id="s2">')[1].split("</section>")[0]
    with pytest.raises(ReportError, match="no such event"):
        _html(case, tmp_path, event="e2")


# --- pieces --------------------------------------------------------------------------------


def test_visible_shows_hidden_characters_and_bounds_length() -> None:
    assert visible("evil\u202egnp.exe\x00") == "evil\\u202egnp.exe\\x00"
    assert visible("a\u200bb") == "a\\u200bb"
    assert visible("x" * 10, limit=4) == "xxxx…(+6)"
    assert visible("Blocked <b>") == "Blocked <b>"  # escaping is the renderer's job


def test_times_are_truncated_to_the_minute_and_localised() -> None:
    assert utc_minute("2025-01-02T03:04:59.999999Z") == "2025-01-02 03:04 UTC"
    tz = zone("Asia/Tehran")
    assert tz is not None and zone("Not/AZone") is None and zone(None) is None
    assert local_minute("2025-01-02T03:04:05Z", tz) == "2025-01-02 06:34 (Asia/Tehran, UTC+03:30)"


def test_po_catalogues_with_plurals_contexts_and_fuzzy_entries() -> None:
    po = PO_HEADER.format(plural="nplurals=3; plural=n==1 ? 0 : n==2 ? 1 : 2;") + (
        '#, fuzzy\nmsgid "draft"\nmsgstr "brouillon"\n\n'
        'msgctxt "menu"\nmsgid "open"\nmsgstr "ouvrir"\n\n'
        'msgid "one {n}"\nmsgid_plural "many {n}"\n'
        'msgstr[0] "a{n}"\nmsgstr[1] "b{n}"\nmsgstr[2] "c{n}"\n\n'
        'msgid "two"\n"lines \\"quoted\\""\nmsgstr ""\n"deux\\n"\n"lignes"\n')
    tr = Translator("xx", catalogue_from_po(po))
    assert tr._("draft") == "draft"  # fuzzy: not trusted, as msgfmt does
    assert [tr.n_("one {n}", "many {n}", n) for n in (1, 2, 7)] == ["a{n}", "b{n}", "c{n}"]
    assert tr._('twolines "quoted"') == "deux\nlignes"
    assert catalogue_from_po(po).pgettext("menu", "open") == "ouvrir"
    assert not tr.rtl and Translator("fa").rtl and Translator("ar_EG").direction == "rtl"


def test_an_empty_database_still_gives_a_report(tmp_path: Path) -> None:
    with Store(tmp_path / "empty.db") as store:
        html = write_report(store, tmp_path / "e.html",
                            ReportOptions(generated=GENERATED, plot=False)).read_text()
        pdf = write_report(store, tmp_path / "e.pdf",
                           ReportOptions(generated=GENERATED, plot=False)).read_bytes()
    assert "No measurement is stored in the period this report covers." in html
    assert "This report cites no measurement." in html
    assert pdf.startswith(b"%PDF-") and "No blocking and no outage" in _pdf_text(pdf)[1]
