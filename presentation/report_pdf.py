"""The report as a PDF, from the same content as the HTML (fpdf2, the optional `[report]` extra).

    render_pdf(report, fonts=find_fonts()) -> bytes

fpdf2 is pure Python (its dependencies, Pillow and fontTools, install from wheels): no system
library, no browser. It is imported when a PDF is rendered, never when this module is imported.

Fonts: DejaVu Sans (and Sans Mono for evidence and hashes) when found, in the system's font
folder or in matplotlib's own data, embedded as subsets: they cover Latin, Greek, Cyrillic,
Arabic and Hebrew letters. Without them the PDF falls back to the core Helvetica and Courier,
which know only Latin-1: every other character is then written as `\\uXXXX`, so nothing is
silently dropped or changed.

Shaping: with DejaVu and uharfbuzz (HarfBuzz, in the `[report]` extra) text is shaped, as in a
browser: Arabic letters take their joined (initial, medial, final) forms and ligatures, and
fpdf2's Unicode bidi algorithm orders mixed right-to-left and left-to-right runs (an address in
an Arabic sentence keeps its own order). The report's language sets the paragraphs' base
direction; quoted evidence and table cells take the direction of their own first strong letter
(as quoted evidence does in the HTML, `dir="auto"`). Without uharfbuzz, or with the core fonts,
text is drawn unshaped: Arabic letters unjoined, and right-to-left letters left to right, in
the order they are stored. `text_support()` says which, and the report's limitations say so
(`presentation.report_build`). Right-to-left reports are right-aligned either way.

Untrusted text stays text, quoted character for character: fpdf2's markdown is never switched on,
its page-count alias `{nb}` is live only while the footer is drawn (elsewhere "{nb}" is text),
and images come only from the report's own bytes. Bidi controls, soft hyphens, no-break spaces,
tabs and line breaks in recorded text (which fpdf2 would reorder, drop, hyphenate or break on)
never reach it as such: `report_text.visible` has already written them out as `\\uXXXX`.
"""

from __future__ import annotations

import importlib.util
import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from core.times import parse_utc
from presentation.report_model import Figure, Heading, Paragraph, Report, Section, Table

SYSTEM_FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"),
                    Path("/usr/local/share/fonts"))
_FILES = {"regular": "DejaVuSans.ttf", "bold": "DejaVuSans-Bold.ttf",
          "mono": "DejaVuSansMono.ttf"}
_COL_WEIGHTS = (10, 18, 7, 30, 27, 16, 52)  # exhibits: the hash column gets the most room
LINE = 5.0  # mm per line of body text
_PAGES = "{nb}"  # fpdf2's alias for the page count, live only in the footer (`_PDF`)
TextSupport = Literal["shaped", "unshaped", "latin1"]


@dataclass(frozen=True)
class Fonts:
    """The TrueType fonts to embed; None: use the core fonts (Latin-1 only)."""

    regular: Path
    bold: Path
    mono: Path


def _matplotlib_fonts() -> Path | None:
    # Found without importing matplotlib (slow): its fonts sit in its package data.
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "fonts" / "ttf"


def find_fonts(dirs: tuple[Path, ...] | None = None) -> Fonts | None:
    """DejaVu Sans, Sans Bold and Sans Mono from the first folder that has all three."""
    if dirs is None:
        found = _matplotlib_fonts()
        dirs = SYSTEM_FONT_DIRS + ((found,) if found else ())
    for folder in dirs:
        paths = {k: folder / name for k, name in _FILES.items()}
        if all(p.is_file() for p in paths.values()):
            return Fonts(**paths)
    return None


@cache
def harfbuzz_importable() -> bool:
    """uharfbuzz (the shaping engine fpdf2 uses) can be imported (checked once)."""
    try:
        import uharfbuzz  # noqa: F401
    except ImportError:
        return False
    return True


def text_support(fonts: Fonts | None = None, find: bool = True) -> TextSupport:
    """How `render_pdf` with the same `fonts` and `find` draws text: "shaped" (TrueType fonts and
    uharfbuzz: Arabic letters joined, right-to-left runs ordered), "unshaped" (TrueType fonts
    without uharfbuzz: letters unjoined, drawn left to right) or "latin1" (the core fonts)."""
    if fonts is None and find:
        fonts = find_fonts()
    if fonts is None:
        return "latin1"
    return "shaped" if harfbuzz_importable() else "unshaped"


def _latin1(text: str) -> str:
    return "".join(ch if ord(ch) < 256 else f"\\u{ord(ch):04x}" for ch in text)


class _Writer:
    def __init__(self, report: Report, fonts: Fonts | None, shape: bool) -> None:
        from fpdf import FPDF

        label = report.page_label
        body_font = "DejaVu" if fonts else "helvetica"
        clean = (lambda s: s) if fonts else _latin1
        writer = self

        class _PDF(FPDF):
            # fpdf2 replaces its page-count alias ("{nb}") in any text it draws while the alias
            # is set: a page title "{nb}" quoted as evidence came out as "3". So the alias is set
            # only from the footer to the next page's header, where none of the report's own
            # text is drawn, and stays set after the last footer, when fpdf2 substitutes it.
            def header(self) -> None:
                self.alias_nb_pages(None)  # type: ignore[arg-type]  # fpdf2's documented "off"

            def footer(self) -> None:
                self.alias_nb_pages(_PAGES)
                writer._shape(report.direction)
                self.set_y(-15)
                self.set_font(body_font, size=8)
                self.cell(0, 10, clean(label.format(page=self.page_no(), pages=_PAGES)),
                          align="C")

        pdf = _PDF(format="A4")
        pdf.alias_nb_pages(None)  # type: ignore[arg-type]  # until the first page's footer
        pdf.set_margins(20, 18, 20)
        pdf.set_auto_page_break(True, margin=20)
        if fonts:
            pdf.add_font("DejaVu", "", str(fonts.regular))
            pdf.add_font("DejaVu", "B", str(fonts.bold))
            pdf.add_font("DejaVuMono", "", str(fonts.mono))
        self.pdf = pdf
        self.body = body_font
        self.mono = "DejaVuMono" if fonts else "courier"
        self.clean = clean
        self.align = "R" if report.direction == "rtl" else "L"
        # Shaping needs TrueType fonts; fpdf2 raises when uharfbuzz is missing, so ask first.
        self.shaping = shape and fonts is not None and harfbuzz_importable()
        self.direction: str | None = report.direction  # the base direction shaping is set to
        if self.shaping:
            pdf.set_text_shaping(use_shaping_engine=True, direction=report.direction)
        pdf.set_title(clean(report.title))
        pdf.set_lang(report.lang)
        pdf.set_creator("netvigil")
        if report.generated:
            pdf.set_creation_date(parse_utc(report.generated))
        self.report = report

    def _shape(self, direction: str | None) -> None:
        """Shape with this base direction ("ltr", "rtl"; None: from the text's first strong
        letter). Script and language are left to HarfBuzz, per run: a report in one language
        quotes text in others."""
        if self.shaping and direction != self.direction:
            self.pdf.set_text_shaping(use_shaping_engine=True, direction=direction)
            self.direction = direction

    def text(self, text: str, size: float = 10, bold: bool = False, mono: bool = False,
             indent: float = 0.0, height: float = LINE) -> None:
        from fpdf.enums import WrapMode, XPos, YPos

        pdf = self.pdf
        self._shape(None if mono else self.report.direction)  # evidence: dir="auto"
        pdf.set_font(self.mono if mono else self.body, "B" if bold else "", size)
        pdf.set_x(pdf.l_margin + (0 if self.align == "R" else indent))
        pdf.multi_cell(pdf.epw - indent, height, self.clean(text), align=self.align,
                       new_x=XPos.LMARGIN, new_y=YPos.NEXT,
                       wrapmode=WrapMode.CHAR if mono else WrapMode.WORD)

    def paragraph(self, p: Paragraph) -> None:
        if p.lead:
            self.text(f"{p.number}. {p.lead}", bold=True)
            self.text(p.text)
        else:
            self.text(f"{p.number}. {p.text}")
        for q in p.quotes:
            self.text(f"{q.label}: {q.text}", size=7.5, mono=True, indent=8, height=3.8)
        self.pdf.ln(2)

    def table(self, t: Table) -> None:
        from fpdf.enums import WrapMode
        from fpdf.fonts import FontFace

        pdf = self.pdf
        self.text(t.caption, bold=True)
        self._shape(None)  # each cell its own direction: an Arabic label, an LTR URL or hash
        pdf.set_font(self.body, "", 7)
        mono = FontFace(family=self.mono, size_pt=6.5)
        with pdf.table(col_widths=_COL_WEIGHTS[: len(t.header)], text_align="LEFT",
                       wrapmode=WrapMode.CHAR, line_height=3.4, width=pdf.epw) as table:
            header = table.row()
            for cell in t.header:
                header.cell(self.clean(cell))
            for values in t.rows:
                row = table.row()
                for i, cell in enumerate(values):
                    row.cell(self.clean(cell), style=mono if i in t.mono else None)
        pdf.ln(3)

    def figure(self, f: Figure) -> None:
        pdf = self.pdf
        pdf.image(io.BytesIO(f.data), w=pdf.epw, alt_text=self.clean(f.alt))
        self.text(f.caption, size=8.5)

    def section(self, s: Section) -> None:
        self.pdf.ln(3)
        self.text(f"{s.number}. {s.title}", size=13, bold=True, height=7)
        for block in s.blocks:
            if isinstance(block, Heading):
                self.pdf.ln(1)
                self.text(block.text, size=11, bold=True, height=6)
            elif isinstance(block, Paragraph):
                self.paragraph(block)
            elif isinstance(block, Table):
                self.table(block)
            else:
                self.figure(block)

    def render(self) -> bytes:
        pdf, report = self.pdf, self.report
        pdf.add_page()
        self.text(report.title, size=16, bold=True, height=8)
        for line in report.front:
            self.text(line, size=9)
        for section in report.sections:
            self.section(section)
        return bytes(pdf.output())


def render_pdf(report: Report, fonts: Fonts | None = None, find: bool = True,
               shape: bool = True) -> bytes:
    """The report as PDF bytes. `fonts=None` with `find` looks for DejaVu (`find_fonts`);
    `find=False` forces the core fonts. Text is shaped when it can be (`text_support`);
    `shape=False` draws it unshaped."""
    if fonts is None and find:
        fonts = find_fonts()
    return _Writer(report, fonts, shape).render()
