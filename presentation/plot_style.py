"""The look of netvigil's plots, and the helpers that keep them safe and reproducible.

`presentation/plots.py` draws; this module decides the colours, the geometry, the labels and how
a figure becomes bytes. Nothing here writes a file: the caller does, with the bytes it is given.
Nothing here imports matplotlib at module level, so the rest of netvigil works without the
`[plot]` extra; the functions that need it import it when called.

Three promises, each kept in one place here:
- colour-blind safe: the palette is Okabe & Ito's, and blocked marks differ by shape as well as
  colour, so a technique can be told apart in greyscale too;
- reproducible: the same data gives the same bytes (`save`: a fixed SVG hash salt, no date or
  software version in the metadata, no randomness anywhere);
- untrusted text stays text: target URLs and vantage names never reach mathtext or TeX
  (`RC`: `text.parse_math` off, `text.usetex` off) and are stripped of control characters.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from core.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# --- palette (Okabe & Ito, "Color Universal Design") ---------------------------------------------
BLACK = "#000000"
ORANGE = "#E69F00"
SKY_BLUE = "#56B4E9"
BLUISH_GREEN = "#009E73"
YELLOW = "#F0E442"
BLUE = "#0072B2"
VERMILLION = "#D55E00"
REDDISH_PURPLE = "#CC79A7"
GREY = "#808080"
LIGHT_GREY = "#B0B0B0"

# Shaded spans are opaque and drawn beneath everything, so their colour in the image is exactly
# this one (tests sample it); a light yellow keeps every mark on top of it readable.
OUTAGE_COLOUR = "#F6E8A0"
OUTAGE_TAIL_COLOUR = "#FBF4D2"  # between the last failing and the first clean measurement


@dataclass(frozen=True)
class Mark:
    """How one category of measurement is drawn."""

    label: str
    colour: str
    marker: str
    hollow: bool = False


# The order is the legend's order. Blocked measurements are drawn by the first technique of
# TECHNIQUES they show: the earliest stage that failed is the one that explains the others.
MARKS: dict[str, Mark] = {
    "ok": Mark("ok", BLUISH_GREEN, "o"),
    "down": Mark("down (fails for the control too)", GREY, "o"),
    "insufficient": Mark("insufficient evidence", LIGHT_GREY, "o", hollow=True),
    "blocked:dns": Mark("blocked: DNS", VERMILLION, "v"),
    "blocked:tcp": Mark("blocked: TCP/IP", BLUE, "s"),
    "blocked:tls": Mark("blocked: TLS", REDDISH_PURPLE, "D"),
    "blocked:http": Mark("blocked: HTTP", ORANGE, "P"),
    "blocked:throttle": Mark("blocked: throttling", SKY_BLUE, "^"),
    "blocked": Mark("blocked: other", BLACK, "X"),
}
TECHNIQUE_ORDER = ("dns", "tcp", "tls", "http", "throttle")


def mark_key(verdict: str, techniques: Iterable[str]) -> str:
    """The MARKS key for a measurement; an unknown verdict is drawn as insufficient."""
    if verdict != "blocked":
        return verdict if verdict in MARKS else "insufficient"
    present = set(techniques)
    for technique in TECHNIQUE_ORDER:
        if technique in present:
            return f"blocked:{technique}"
    return "blocked"


def technique_colour(techniques: Iterable[str]) -> str:
    """The colour of a blocking event's outline: that of its first technique."""
    return MARKS[mark_key("blocked", techniques)].colour


# Lines of the reachability plot, one colour per network; orange and vermillion are kept for the
# warning and critical marks.
NETWORK_COLOURS = (BLUE, BLUISH_GREEN, REDDISH_PURPLE, SKY_BLUE, BLACK, GREY)
WARNING_COLOUR = ORANGE
CRITICAL_COLOUR = VERMILLION

# --- geometry (inches) ---------------------------------------------------------------------------
# Fixed margins, not a "tight" bounding box: the plot area then sits at the same place for the same
# number of rows, whatever the labels say, so images can be compared and sampled (the tests do).
DPI = 100
WIDTH_IN = 12.0
LEFT_IN = 2.9  # room for LABEL_CHARS characters of tick label
RIGHT_IN = 2.6  # room for the legend
TOP_IN = 0.85  # two lines of title
BOTTOM_IN = 0.65  # date ticks and the axis label
ROW_IN = 0.2  # one target
MIN_PLOT_IN = 2.6  # the legend's height when every category is present
X_PAD = 0.02  # fraction of the time range left empty on each side
LABEL_CHARS = 40


def tick_fontsize(rows: int) -> float:
    """Small enough for 60 rows at ROW_IN, as large as the rows allow below that."""
    return 8.0 if rows <= 30 else 7.0


def timeline_height(rows: int) -> float:
    """The figure's height in inches: it grows with the number of targets."""
    return TOP_IN + BOTTOM_IN + max(ROW_IN * rows, MIN_PLOT_IN)


# --- text ----------------------------------------------------------------------------------------
def clean_text(text: str) -> str:
    """Drop control characters (a newline in a URL would break the layout)."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def ellipsize(text: str, limit: int) -> str:
    """`text`, cut to `limit` characters with an ellipsis if longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def short_label(url: str, limit: int = LABEL_CHARS) -> str:
    """A target's row label: host and path, shortened with an ellipsis.

    https is the common case and shows no scheme; other schemes keep theirs so that
    `http://x/` and `https://x/` stay distinct rows. A long path is cut in the middle: the host
    and the end of the path are what tell two targets apart.
    """
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return ellipsize(clean_text(url), limit)
    if not host:
        return ellipsize(clean_text(url), limit)
    prefix = "" if parts.scheme == "https" else f"{parts.scheme}://"
    head = clean_text(prefix + host)
    path = clean_text(parts.path if parts.path not in ("", "/") else "")
    if parts.query:
        path += "?" + clean_text(parts.query)
    if len(head) + len(path) <= limit:
        return head + path
    room = limit - len(head) - 1  # the ellipsis
    if room < 8:
        return ellipsize(head + path, limit)
    keep_end = room // 2
    return head + path[: room - keep_end] + "…" + path[len(path) - keep_end :]


def listing(values: Iterable[str], limit: int = 3) -> str:
    """'a, b, c +2 more': the distinct values, sorted, the first `limit` of them named."""
    unique = sorted({clean_text(v) for v in values if v})
    more = f" +{len(unique) - limit} more" if len(unique) > limit else ""
    return ", ".join(unique[:limit]) + more


def summarise(values: Iterable[str], singular: str, plural: str, limit: int = 3) -> str:
    """'vantage local' or 'vantages a, b, c +2 more' ('' without values)."""
    count = len({v for v in values if v})
    if not count:
        return ""
    return f"{singular if count == 1 else plural} {listing(values, limit)}"


def asn_label(asn: str) -> str:
    return f"AS{asn}" if asn.isdigit() else asn


def period(times: Iterable[datetime]) -> str:
    """'2026-11-01 to 2026-11-07 UTC' (or one date) from the times of the data."""
    dates = sorted({t.astimezone(UTC).date() for t in times})
    if not dates:
        return ""
    if dates[0] == dates[-1]:
        return f"{dates[0].isoformat()} UTC"
    return f"{dates[0].isoformat()} to {dates[-1].isoformat()} UTC"


# --- rendering -----------------------------------------------------------------------------------
FORMATS = {".png": "png", ".svg": "svg"}

RC: dict[str, Any] = {
    "text.usetex": False,
    "text.parse_math": False,  # '$x^2$' in a URL is text, not a formula
    "svg.hashsalt": "netvigil",  # element ids are hashes: a fixed salt makes them repeatable
    "svg.fonttype": "none",  # text stays <text> (searchable, escaped by the writer), not paths
    "font.family": "DejaVu Sans",  # bundled with matplotlib: the same glyphs on every machine
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "legend.fontsize": 8.0,
    "path.simplify": True,
}

# No date, no software version: identical data gives identical bytes on every day.
_METADATA: dict[str, dict[str, str | None]] = {
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": None},
}


def output_format(out: Path) -> str:
    """'png' or 'svg' from a file name's suffix, for a caller that writes the bytes there."""
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{out}: the plot is written as .png or .svg, not {out.suffix!r}")
    return fmt


def check_format(fmt: str) -> str:
    """`fmt` if a plot can be drawn in it ('png' or 'svg'); a ConfigError otherwise."""
    if fmt not in _METADATA:
        raise ConfigError(f"the plot is drawn as .png or .svg, not {fmt!r}")
    return fmt


@contextmanager
def style() -> Iterator[None]:
    """The rc settings above, for the time it takes to build and save one figure."""
    import matplotlib

    settings: Any = RC  # matplotlib types the keys as literals; these are checked at run time
    with matplotlib.rc_context(settings):  # restores the caller's settings on the way out
        yield


def new_figure(width_in: float, height_in: float) -> Figure:
    """A figure on the Agg canvas, without pyplot: no global state, no GUI backend, no leak."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=DPI, facecolor="white")
    FigureCanvasAgg(figure)
    return figure


def place_axes(figure: Figure, height_in: float, left_in: float = LEFT_IN) -> Axes:
    """One axes at the fixed margins (see the geometry above)."""
    return figure.add_axes(
        (
            left_in / WIDTH_IN,
            BOTTOM_IN / height_in,
            (WIDTH_IN - left_in - RIGHT_IN) / WIDTH_IN,
            (height_in - TOP_IN - BOTTOM_IN) / height_in,
        )
    )


def save(figure: Figure, fmt: str) -> bytes:
    """The figure as PNG or SVG bytes (`fmt`), reproducibly."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=check_format(fmt), dpi=DPI, metadata=_METADATA[fmt],
                   facecolor="white")
    return buffer.getvalue()
