"""The report's content model (what the renderers draw) and its inputs (what the store gives).

A `Report` is a title, a few front lines and numbered `Section`s of blocks: `Heading`,
`Paragraph` (numbered consecutively through the document, as in an expert report, with
`Quote`s of the decisive evidence), `Table` and `Figure`. Every string in it is final: already
translated, with untrusted text already made visible (`report_text.visible`). The HTML and PDF
renderers only lay it out and escape it; they add no words of their own.

Inputs: `ReportData` holds what `services.report` gathered from a Store: run rows, measurement
rows, `Evidence` (the Measurement and its control) for the measurements whose observations are
quoted, and the record hashes of every measurement the report cites. Events come from
`analysis.event_detection` (typed by the attributes read, `presentation.inputs.EventLike`) and
are optional.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.observations import Measurement
from presentation.inputs import EventLike

# --- the content -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Quote:
    """Evidence quoted verbatim from a record: `label` is ours, `text` came from the network."""

    label: str
    text: str


@dataclass(frozen=True)
class Paragraph:
    """A numbered paragraph: an optional lead ("What was blocked"), the text, its quotes."""

    text: str
    lead: str = ""
    quotes: tuple[Quote, ...] = ()
    number: int = 0  # set by `numbered`


@dataclass(frozen=True)
class Heading:
    text: str


@dataclass(frozen=True)
class Table:
    caption: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    mono: tuple[int, ...] = ()  # columns of hashes and identifiers, set in a fixed-width font


@dataclass(frozen=True)
class Figure:
    mime: str  # "image/png"
    data: bytes
    caption: str
    alt: str


Block = Heading | Paragraph | Table | Figure


@dataclass(frozen=True)
class Section:
    number: int
    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Report:
    lang: str
    direction: str  # "ltr" | "rtl"
    title: str
    front: tuple[str, ...]  # lines under the title: scope, generation time, software
    sections: tuple[Section, ...]
    page_label: str  # "Page {page} of {pages}", for the PDF footer
    generated: str = ""  # ISO UTC, for the PDF's metadata (the same data, the same file)

    def text(self) -> str:
        """Every string of the report, one block a line (for search and tests)."""
        lines = [self.title, *self.front]
        for section in self.sections:
            lines.append(f"{section.number}. {section.title}")
            for block in section.blocks:
                if isinstance(block, Heading):
                    lines.append(block.text)
                elif isinstance(block, Paragraph):
                    lines.append(f"{block.number}. {block.lead} {block.text}".replace("  ", " "))
                    lines += [f"{q.label}: {q.text}" for q in block.quotes]
                elif isinstance(block, Table):
                    lines.append(block.caption)
                    lines += [" | ".join(row) for row in (block.header, *block.rows)]
                else:
                    lines.append(block.caption)
        return "\n".join(lines)


def numbered(sections: Sequence[Section]) -> tuple[Section, ...]:
    """The sections with their paragraphs numbered 1, 2, 3... through the whole document."""
    count = 0
    out = []
    for section in sections:
        blocks: list[Block] = []
        for block in section.blocks:
            if isinstance(block, Paragraph):
                count += 1
                block = Paragraph(block.text, block.lead, block.quotes, count)
            blocks.append(block)
        out.append(Section(section.number, section.title, tuple(blocks)))
    return tuple(out)


# --- the inputs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """A measurement whose observations the report quotes, with the test helper's control."""

    measurement: Measurement
    control: Measurement | None = None
    control_sha256: str | None = None  # the control's own raw record


@dataclass(frozen=True)
class Integrity:
    """The state of the database's record chain when the report was made."""

    head: str  # the newest record's hash
    damaged: tuple[int, ...] | None = None  # record ids that fail; None: not checked


@dataclass
class ReportData:
    """Everything the report is built from; gathered by `services.report`."""

    runs: Mapping[int, Mapping[str, Any]]  # run id -> Store.run row
    rows: Sequence[Mapping[str, Any]]  # measurement rows (Store.iter_rows), oldest first
    scope: Sequence[int]  # ids of the measurements the report covers
    generated: str  # ISO UTC: when the report was made
    software: str  # "netvigil 0.2.0": the software that wrote the report
    since: str | None = None
    until: str | None = None
    event_id: str | None = None
    events: Sequence[EventLike] = ()
    events_available: bool = False  # False: no grouping over time was possible
    evidence: Mapping[int, Evidence] = field(default_factory=dict)
    hashes: Mapping[int, str] = field(default_factory=dict)  # measurement id -> record sha256
    integrity: Integrity | None = None
    plot: bytes | None = None  # the timeline as PNG; None: matplotlib is missing, or it failed
    plot_error: str | None = None  # why drawing it failed
    redact_vantage: bool = False


class Exhibits:
    """The measurements the report cites, each with a label ("E1", "E2", ...) in citing order."""

    def __init__(self) -> None:
        self._labels: dict[int, str] = {}

    def cite(self, measurement_id: int) -> str:
        label = self._labels.get(measurement_id)
        if label is None:
            label = self._labels[measurement_id] = f"E{len(self._labels) + 1}"
        return label

    def cited(self) -> list[tuple[str, int]]:
        return [(label, mid) for mid, label in self._labels.items()]
