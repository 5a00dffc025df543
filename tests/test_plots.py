"""Tests for presentation/plots.py: the images are valid, reproducible, and show the data.

The inputs are the records the plots draw in the product: analysis.event_records.Point / Event
and analysis.outages.Bin (the plots read them through presentation.inputs' protocols; the
report's own TimelinePoint is drawn in tests/test_report.py). Pixels are read with Pillow, which
matplotlib depends on.
"""

from __future__ import annotations

import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from analysis import event_records
from analysis.outages import Bin
from presentation import plot_style, plots
from presentation.plot_style import (
    BOTTOM_IN,
    CRITICAL_COLOUR,
    DPI,
    LEFT_IN,
    OUTAGE_COLOUR,
    RIGHT_IN,
    TOP_IN,
    WIDTH_IN,
    X_PAD,
    mark_key,
    short_label,
    timeline_height,
)
from presentation.plots import plot_reachability, plot_timeline

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SVG_NS = "{http://www.w3.org/2000/svg}"
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def Point(*args, **fields) -> event_records.Point:
    """A real Point, with the defaults these tests draw: judged, in a working run, AS12345."""
    defaults = {"confidence": 0.9, "run_network": "ok", "asn": "12345"}
    return event_records.Point(*args, **{**defaults, **fields})


def Event(id: str, kind: str, targets: tuple[str, ...], start: str, end: str | None,
          first_clean: str | None = None, techniques: tuple[str, ...] = (),
          **fields) -> event_records.Event:
    """A real Event with only what a test is about given; the rest as one measurement shows."""
    defaults = {"outcomes": (), "asn": "12345", "country": None, "vantage_points": ("local",),
                "measurements": 1, "measurement_ids": (), "confidence": 0.9, "pattern": "",
                "window": None}
    return event_records.Event(id=id, kind=kind, targets=targets, techniques=techniques,
                               start=start, end=end, first_clean=first_clean,
                               **{**defaults, **fields})


def iso(days: float) -> str:
    return (T0 + timedelta(days=days)).isoformat().replace("+00:00", "Z")


def urls(count: int) -> list[str]:
    return [f"https://www.site{i:02d}.example/path/{i}" for i in range(count)]


def points_for(targets: list[str], days: int = 10, step: float = 0.5,
               verdict: str = "ok", **fields) -> list[Point]:
    out: list[Point] = []
    for target in targets:
        for k in range(int(days / step) + 1):
            out.append(Point(len(out) + 1, k, target, "web", iso(k * step), verdict, **fields))
    return out


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.uint8)


def svg_texts(path: Path) -> list[str]:
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG_NS}svg"
    return ["".join(node.itertext()) for node in root.iter(f"{SVG_NS}text")]


def render(tmp_path: Path, name: str, points, events, **kwargs) -> Path:
    """The timeline in the format of `name`'s suffix, written there as the CLI writes it."""
    out = tmp_path / name
    out.write_bytes(plot_timeline(points, events, out.suffix[1:], **kwargs))
    return out


def reach(tmp_path: Path, name: str, bins, **kwargs) -> Path:
    out = tmp_path / name
    out.write_bytes(plot_reachability(bins, out.suffix[1:], **kwargs))
    return out


# --- validity and content ------------------------------------------------------------------------
def test_png_is_a_valid_image_sized_by_the_rows(tmp_path):
    out = render(tmp_path, "t.png", points_for(urls(5)), [])
    assert out == tmp_path / "t.png"
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.size == (round(WIDTH_IN * DPI), round(timeline_height(5) * DPI))


def test_svg_parses_and_names_targets_vantage_and_period(tmp_path):
    points = points_for(urls(3), days=6, vantage="pi-berlin", asn="3320", country="DE")
    out = render(tmp_path, "t.svg", points, [], title="Campaign A")
    texts = svg_texts(out)
    assert "www.site00.example/path/0" in texts
    assert "www.site02.example/path/2" in texts
    assert "time (UTC)" in texts
    heading = [t for t in texts if "Campaign A" in t or "pi-berlin" in t]
    assert any("vantage pi-berlin, AS3320 (DE) — 2026-11-01 to 2026-11-07 UTC" in t
               for t in heading), heading


def test_title_follows_the_data(tmp_path):
    other = Point(99, 9, urls(1)[0], "web", iso(0.5), "ok", vantage="vps", asn="AS64500")
    points = [*points_for(urls(2), days=1), other]
    texts = svg_texts(render(tmp_path, "t.svg", points, []))
    expected = "vantages local, vps, AS12345, AS64500 — 2026-11-01 to 2026-11-02 UTC"
    assert expected in texts, texts


def test_rows_are_sorted_by_platform_then_url(tmp_path):
    points = [
        Point(1, 1, "https://b.example/", "zeta", iso(0), "ok"),
        Point(2, 1, "https://a.example/", None, iso(0), "ok"),
        Point(3, 1, "https://c.example/", "alpha", iso(0), "ok"),
        Point(4, 1, "https://a2.example/", "zeta", iso(1), "ok"),
    ]
    texts = svg_texts(render(tmp_path, "t.svg", points, []))
    labels = [t for t in texts if t.endswith(".example")]
    assert labels == ["c.example", "a2.example", "b.example", "a.example"]


# --- reproducibility -----------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_identical_inputs_give_identical_bytes(tmp_path, suffix):
    points = points_for(urls(4), verdict="blocked", techniques=("tls",), confirmed=True)
    events = [Event("o", "outage", (), iso(2), iso(3), iso(3.5)),
              Event("b", "blocking", (urls(4)[1],), iso(1), None, techniques=("tls",))]
    first = render(tmp_path, "a" + suffix, points, events).read_bytes()
    second = render(tmp_path, "b" + suffix, list(points), list(events)).read_bytes()
    assert first == second
    if suffix == ".svg":
        assert b"<dc:date>" not in first  # no timestamp that would change from day to day


def test_an_added_event_changes_the_image(tmp_path):
    points = points_for(urls(4))
    event = Event("b", "blocking", (urls(4)[2],), iso(3), iso(5), techniques=("dns",))
    without = render(tmp_path, "a.png", points, [])
    with_event = render(tmp_path, "b.png", points, [event])
    assert without.read_bytes() != with_event.read_bytes()
    before, after = pixels(without), pixels(with_event)
    assert before.shape == after.shape
    changed = np.any(before != after, axis=2)
    assert changed.sum() > 100  # an outline around a row and a legend entry, not one stray pixel


# --- geometry ------------------------------------------------------------------------------------
def test_more_targets_make_a_taller_image_with_smaller_labels(tmp_path):
    small = render(tmp_path, "small.png", points_for(urls(5), days=2), [])
    started = time.monotonic()
    large = render(tmp_path, "large.png", points_for(urls(60), days=10, step=0.25), [])
    assert time.monotonic() - started < 10.0
    with Image.open(small) as a, Image.open(large) as b:
        assert b.size[0] == a.size[0]
        assert b.size[1] > a.size[1] * 2
        assert b.size[1] == round(timeline_height(60) * DPI)
    assert plot_style.tick_fontsize(60) < plot_style.tick_fontsize(5)


def _column(day: float, lo: float, hi: float) -> int:
    left, right = LEFT_IN * DPI, (WIDTH_IN - RIGHT_IN) * DPI
    return round(left + (day - lo) / (hi - lo) * (right - left))


def test_an_outage_is_shaded_across_the_rows_in_its_time_range(tmp_path):
    # Ten days of data; an outage from day 4 to day 6. The plot area sits at fixed margins and
    # the time axis spans the data plus X_PAD on each side, so day d has a known pixel column.
    points = points_for(urls(3), days=10, step=1.0)
    outage = Event("o", "outage", tuple(urls(3)), iso(4), iso(6))
    image = pixels(render(tmp_path, "o.png", points, [outage]))
    plain = pixels(render(tmp_path, "p.png", points, []))
    height = timeline_height(3)
    top, bottom = round(TOP_IN * DPI) + 2, round((height - BOTTOM_IN) * DPI) - 2
    lo, hi = -X_PAD * 10, 10 + X_PAD * 10
    shade = rgb(OUTAGE_COLOUR)

    def shaded_share(img: np.ndarray, day: float) -> float:
        column = img[top:bottom, _column(day, lo, hi)]
        return float(np.all(column == shade, axis=1).mean())

    inside = [shaded_share(image, d) for d in np.linspace(4.1, 5.9, 19)]
    # Most of each column is the shade (marks and row lines cross it); a date grid line may
    # fall on a sampled column, hence "most columns", not all.
    assert sum(share > 0.8 for share in inside) >= 16, inside
    outside = [shaded_share(image, d) for d in (0.5, 2.0, 3.8, 6.2, 8.0, 9.5)]
    assert outside == [0.0] * len(outside)
    assert not np.any(np.all(plain[top:bottom] == shade, axis=2))


def test_blocking_outline_is_drawn_on_its_target_row_only(tmp_path):
    targets = urls(3)
    points = points_for(targets, days=10, step=1.0)
    event = Event("b", "blocking", (targets[2],), iso(2), iso(8), techniques=("tcp",))
    image = pixels(render(tmp_path, "b.png", points, [event]))
    blue = rgb(plot_style.MARKS["blocked:tcp"].colour)
    column = image[:, _column(5.5, -X_PAD * 10, 10 + X_PAD * 10)]
    # The outline is antialiased: match its colour within a tolerance.
    near = np.abs(column.astype(int) - blue.astype(int)).max(axis=1) < 40
    rows = np.nonzero(near)[0]
    assert rows.size >= 2  # the outline's top and bottom edges
    # Rows fill the plot area top to bottom; the third row is the lowest third.
    top, bottom = TOP_IN * DPI, (timeline_height(3) - BOTTOM_IN) * DPI
    row_height = (bottom - top) / 3
    assert rows.min() > top + 2 * row_height - 2
    assert rows.max() < bottom + 2
    assert abs((rows.max() - rows.min()) - 0.84 * row_height) < 4  # the outline's height


# --- untrusted strings ---------------------------------------------------------------------------
def test_untrusted_urls_and_names_are_drawn_as_literal_text(tmp_path):
    evil = "https://evil.example/$x^2$<script>"
    points = [
        Point(1, 1, evil, "web", iso(0), "blocked", ("http",), vantage="$\\notacommand$"),
        Point(2, 1, "https://nl.example/a\x1b[31mb", "web", iso(1), "ok"),
        Point(3, 1, "https://nl.example/x\ny", "web", iso(1), "ok"),
    ]
    events = [Event("b", "blocking", (evil,), iso(0), iso(1), techniques=("http",))]
    png = render(tmp_path, "u.png", points, events)
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    svg = render(tmp_path, "u.svg", points, events)
    texts = svg_texts(svg)
    assert "evil.example/$x^2$<script>" in texts
    # A control character cannot break the layout (urlsplit already drops newlines).
    assert "nl.example/a?[31mb" in texts
    assert not any("\n" in t or "\x1b" in t for t in texts if "example" in t)
    assert any("$\\notacommand$" in t for t in texts)
    assert b"<script>" not in svg.read_bytes()  # escaped by the SVG writer, not markup


def test_plotting_leaves_the_callers_matplotlib_settings_alone(tmp_path):
    import matplotlib

    before = matplotlib.rcParams["text.parse_math"], matplotlib.rcParams["svg.hashsalt"]
    render(tmp_path, "t.svg", points_for(urls(1), days=1), [])
    assert (matplotlib.rcParams["text.parse_math"], matplotlib.rcParams["svg.hashsalt"]) == before


def test_importing_the_module_does_not_import_matplotlib():
    code = "import sys, presentation.plots; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1], timeout=60, check=True)
    assert result.stdout.strip() == "False"


# --- edge cases ----------------------------------------------------------------------------------
def test_empty_data_and_open_ended_events_render(tmp_path):
    assert render(tmp_path, "e.png", [], []).read_bytes()[:8] == PNG_SIGNATURE
    texts = svg_texts(render(tmp_path, "e.svg", [], []))
    assert "no measurements" in texts
    # An event with no end yet reaches the right edge; a target only in an event gets a row.
    event = Event("b", "blocking", ("https://only-event.example/",), iso(0), None,
                  techniques=("dns",))
    texts = svg_texts(render(tmp_path, "o.svg", [], [event]))
    assert "only-event.example" in texts
    outage = Event("o", "outage", (), iso(0), iso(1))  # no rows at all, only a shaded span
    image = pixels(render(tmp_path, "s.png", [], [outage]))
    assert np.all(image == rgb(OUTAGE_COLOUR), axis=2).sum() > 1000


def test_an_unknown_format_is_refused_before_drawing(monkeypatch):
    def no_drawing(*args, **kwargs):
        raise AssertionError("drew a figure for a format it cannot write")

    monkeypatch.setattr(plots, "new_figure", no_drawing)
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        plot_timeline(points_for(urls(1), days=1), [], "pdf")
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        plot_reachability([], "pdf")
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        plot_style.output_format(Path("t.pdf"))
    assert plot_style.output_format(Path("T.SVG")) == "svg"


def test_plots_are_returned_as_bytes_and_write_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    png = plot_timeline(points_for(urls(2), days=1), [])
    svg = plot_reachability(_bins(critical_at=None), "svg")
    assert png[:8] == PNG_SIGNATURE
    assert svg.lstrip().startswith(b"<?xml") and b"<svg" in svg
    assert list(tmp_path.iterdir()) == []


def test_labels_are_short_and_keep_what_tells_targets_apart():
    assert short_label("https://www.example.com/") == "www.example.com"
    assert short_label("http://www.example.com/") == "http://www.example.com"
    assert short_label("tcp://149.154.167.51:443") == "tcp://149.154.167.51:443"
    long = "https://www.example.com/" + "a" * 50 + "/end"
    label = short_label(long)
    assert len(label) == plot_style.LABEL_CHARS
    assert label.startswith("www.example.com/aaa") and label.endswith("a/end") and "…" in label
    assert len(short_label("https://" + "h" * 80 + ".example/")) == plot_style.LABEL_CHARS


def test_blocked_marks_take_the_earliest_technique():
    assert mark_key("blocked", ("http", "dns")) == "blocked:dns"
    assert mark_key("blocked", ()) == "blocked"
    assert mark_key("ok", ()) == "ok"
    assert mark_key("weird", ()) == "insufficient"


# --- reachability --------------------------------------------------------------------------------
def _bins(critical_at: int | None) -> list[Bin]:
    bins = []
    for k in range(24):
        for network, baseline in (("AS12345", 0.95), ("AS64500", 0.9)):
            share, level = baseline, "normal"
            if network == "AS12345" and k == critical_at:
                share, level = 0.3, "critical"
            if network == "AS64500" and k == 12:
                share, level = 0.7, "warning"
            bins.append(Bin(iso(k / 24), network, share, baseline if k >= 2 else None, level))
    return bins


def test_reachability_marks_a_critical_bin(tmp_path):
    out = reach(tmp_path, "r.png", _bins(critical_at=8))
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    calm = reach(tmp_path, "calm.png", _bins(critical_at=None))
    red = rgb(CRITICAL_COLOUR)
    assert np.all(pixels(out) == red, axis=2).sum() > 20
    assert np.all(pixels(calm) == red, axis=2).sum() == 0
    texts = svg_texts(reach(tmp_path, "r.svg", _bins(critical_at=8)))
    assert {"critical bin", "warning bin", "AS12345", "AS64500"} <= set(texts)
    assert "baseline × 0.5 (critical)" in texts and "baseline × 0.8 (warning)" in texts
    assert any("2026-11-01 UTC" in t for t in texts)


def test_reachability_thresholds_follow_the_arguments(tmp_path):
    bins = _bins(critical_at=8)
    a = reach(tmp_path, "a.png", bins)
    b = reach(tmp_path, "b.png", bins, warning=0.9, critical=0.6)
    assert pixels(a).shape == pixels(b).shape
    assert np.any(pixels(a) != pixels(b))
    assert reach(tmp_path, "c.png", bins).read_bytes() == a.read_bytes()
    with pytest.raises(ValueError, match="critical"):
        reach(tmp_path, "d.png", bins, warning=0.5, critical=0.8)


def test_reachability_without_bins_renders(tmp_path):
    assert "no data" in svg_texts(reach(tmp_path, "r.svg", []))



# --- the time axis fits the data -----------------------------------------------------------------
def _mark_columns(image: np.ndarray, colour: str) -> np.ndarray:
    """The plot area's pixel columns where a mark of `colour` is drawn (the legend excluded)."""
    left, right = round(LEFT_IN * DPI), round((WIDTH_IN - RIGHT_IN) * DPI)
    near = np.abs(image[:, left:right].astype(int) - rgb(colour).astype(int)).max(axis=2) < 30
    return np.nonzero(near.any(axis=0))[0]


def _clusters(columns: np.ndarray) -> int:
    return int(columns.size and 1 + np.count_nonzero(np.diff(columns) > 1))


def test_runs_seconds_apart_spread_across_the_axis(tmp_path):
    # Ten runs over 80 seconds: they used to sit in one column of an hour-wide axis.
    start = T0 + timedelta(hours=9)
    points = [Point(k + 1, k + 1, urls(1)[0], "web",
                    (start + timedelta(seconds=80 * k / 9)).isoformat(), "ok")
              for k in range(10)]
    image = pixels(render(tmp_path, "fast.png", points, []))
    columns = _mark_columns(image, plot_style.MARKS["ok"].colour)
    width = (WIDTH_IN - LEFT_IN - RIGHT_IN) * DPI
    assert columns.max() - columns.min() > 0.5 * width  # the data fills the axis
    assert _clusters(columns) == 10  # every run a mark of its own
    lo, hi = plots.x_limits([start])  # one moment: a short axis, not an hour
    assert timedelta(days=hi - lo) < timedelta(minutes=5)
    lo, hi = plots.x_limits([T0, T0 + timedelta(days=10)])  # long data: its own range
    assert hi - lo == pytest.approx(10 * (1 + 2 * X_PAD))


def _fast_runs(db: Path) -> None:
    """Ten runs of three targets over 80 seconds; the third target fails from the sixth run."""
    from core.observations import Measurement
    from core.target import Target
    from results.store import Store

    start = T0 + timedelta(hours=9)
    with Store(db) as store:
        for k in range(10):
            run = store.begin_run({"tool": "netvigil", "asn": "AS64500"}, {})
            when = (start + timedelta(seconds=80 * k / 9)).isoformat().replace("+00:00", "Z")
            for i, url in enumerate(urls(3)):
                verdict = "down" if i == 2 and k >= 5 else "ok"
                store.add_measurement(run, Measurement(Target(url), when, 0.1, ()),
                                      {"verdict": verdict, "reason": "test"})
            store.finish_run(run, "ok", {})


def test_plot_reachability_takes_a_bin_width(tmp_path, capsys, monkeypatch):
    import cli

    monkeypatch.setenv("NETVIGIL_KEYS", str(tmp_path / "keys"))
    db = tmp_path / "fast.db"
    _fast_runs(db)
    base = ["plot", "reachability", "--db", str(db), "--out"]
    assert cli.main([*base, str(tmp_path / "hour.svg")]) == 0  # the default: 1h
    assert cli.main([*base, str(tmp_path / "minute.svg"), "--bin", "1m"]) == 0
    assert cli.main([*base, str(tmp_path / "minute.png"), "--bin", "1m"]) == 0
    assert (tmp_path / "minute.png").read_bytes()[:8] == PNG_SIGNATURE
    # One bin in an hour; two one-minute bins over 80 s: the charts differ.
    assert (tmp_path / "hour.svg").read_bytes() != (tmp_path / "minute.svg").read_bytes()
    capsys.readouterr()
    for wrong in ("5", "90s", "0m", "fast"):
        assert cli.main([*base, str(tmp_path / "x.png"), "--bin", wrong]) == 2, wrong
        err = capsys.readouterr().err
        assert err.startswith(f"netvigil: error: --bin {wrong}: "), err
        assert err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "x.png").exists()


def test_bin_widths_are_whole_minutes():
    from services.actions import bin_minutes

    assert [bin_minutes(t) for t in ("1m", "5m", "1h", "1h30m", "120s")] == [1, 5, 60, 90, 2]
    for wrong in ("", "30s", "1.5m", "-5m"):
        with pytest.raises(ValueError, match="--bin"):
            bin_minutes(wrong)
