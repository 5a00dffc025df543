"""The report as ONE self-contained HTML file: no script, no external resource, everything escaped.

    render_html(report) -> str

Safe to open anywhere, including a court's computer:
- every string is escaped with `html.escape` (quotes too), so a blockpage's
  `<script>alert(1)</script>` shows as text and never runs;
- no `<script>`, no event handler attribute, no link: the only `src` is the timeline's `data:`
  URI; a strict Content-Security-Policy (`default-src 'none'`) would stop anything else anyway,
  and `no-referrer` keeps a stray request from saying where it came from;
- the style sheet is inline, so nothing is fetched when the file is opened.

Right-to-left languages get `dir="rtl"` on the document; quoted evidence gets `dir="auto"`, so
an address or a URL in an Arabic paragraph keeps its own order.
"""

from __future__ import annotations

import base64
from html import escape

from core.errors import ReportError
from presentation.report_model import Figure, Heading, Paragraph, Report, Section, Table

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_STYLE = """
body { font-family: "DejaVu Serif", Georgia, serif; max-width: 52em; margin: 2em auto;
       padding: 0 1em; line-height: 1.45; color: #111; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; margin-top: 2em; }
h3 { font-size: 1.05em; margin-top: 1.5em; }
.front { color: #444; margin: 0.2em 0; }
p.para { margin: 0.6em 0; }
.num { font-weight: bold; margin-inline-end: 0.5em; }
.lead { font-weight: bold; margin-inline-end: 0.3em; }
ul.quotes { list-style: none; margin: 0.3em 0 0.8em; padding-inline-start: 2.2em; }
ul.quotes li { margin: 0.15em 0; }
.label { color: #555; font-size: 0.9em; }
code { font-family: "DejaVu Sans Mono", monospace; font-size: 0.85em; background: #f3f3f3;
       padding: 0 0.2em; overflow-wrap: anywhere; white-space: pre-wrap; }
table { border-collapse: collapse; font-size: 0.8em; width: 100%; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.4em; text-align: start; vertical-align: top; }
td.mono { font-family: "DejaVu Sans Mono", monospace; overflow-wrap: anywhere; }
figure { margin: 1em 0; } figure img { max-width: 100%; }
@media print { body { max-width: none; } h2 { break-after: avoid; } }
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _paragraph(p: Paragraph) -> list[str]:
    lead = f'<span class="lead">{_e(p.lead)}</span> ' if p.lead else ""
    out = [f'<p class="para" id="p{p.number}"><span class="num">{p.number}.</span>'
           f"{lead}{_e(p.text)}</p>"]
    if p.quotes:
        out.append('<ul class="quotes">')
        out += [f'<li><span class="label">{_e(q.label)}:</span> '
                f'<code dir="auto">{_e(q.text)}</code></li>' for q in p.quotes]
        out.append("</ul>")
    return out


def _table(t: Table) -> list[str]:
    out = [f"<table><caption>{_e(t.caption)}</caption><thead><tr>"]
    out += [f'<th scope="col">{_e(h)}</th>' for h in t.header]
    out.append("</tr></thead><tbody>")
    for row in t.rows:
        cells = "".join(
            f'<td class="mono" dir="ltr">{_e(c)}</td>' if i in t.mono else f"<td>{_e(c)}</td>"
            for i, c in enumerate(row))
        out.append(f"<tr>{cells}</tr>")
    out.append("</tbody></table>")
    return out


def _figure(f: Figure) -> list[str]:
    if f.mime not in ("image/png", "image/jpeg"):
        raise ReportError(f"unsupported figure type {f.mime!r}")
    data = base64.b64encode(f.data).decode("ascii")
    return [f'<figure><img alt="{_e(f.alt)}" src="data:{f.mime};base64,{data}">'
            f"<figcaption>{_e(f.caption)}</figcaption></figure>"]


def _section(s: Section) -> list[str]:
    out = [f'<section id="s{s.number}">', f"<h2>{s.number}. {_e(s.title)}</h2>"]
    for block in s.blocks:
        if isinstance(block, Heading):
            out.append(f"<h3>{_e(block.text)}</h3>")
        elif isinstance(block, Paragraph):
            out += _paragraph(block)
        elif isinstance(block, Table):
            out += _table(block)
        else:
            out += _figure(block)
    out.append("</section>")
    return out


def render_html(report: Report) -> str:
    """The whole report as one HTML document."""
    direction = "rtl" if report.direction == "rtl" else "ltr"
    lines = [
        "<!DOCTYPE html>",
        f'<html lang="{_e(report.lang)}" dir="{direction}">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(report.title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{_e(report.title)}</h1>",
        *[f'<p class="front">{_e(line)}</p>' for line in report.front],
        "</header>",
    ]
    for section in report.sections:
        lines += _section(section)
    lines += ["</body>", "</html>", ""]
    return "\n".join(lines)
