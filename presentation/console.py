"""The one output helper of the command line: tables for people, JSON for scripts, notices apart.

Results go to stdout: JSON (`--json`) for scripts, or a view (`presentation.views`: lines and
tables) for people, rendered with rich. Messages, warnings, errors, the progress bar and the risk
notice go to stderr, so that `netvigil ... --json | jq` and `netvigil export > file` stay clean.
Lines never wrap (a long URL stays greppable) and text is never read as markup.

Much of what is printed comes from outside (a bundle's member names, page titles, OONI inputs, a
collection's vantage fields, errors quoting them). Every string passes through
`presentation.safe_text.printable` here, on every path (views, messages, warnings, errors, the
log, the progress bar), so a terminal never obeys what it was sent. JSON needs nothing: it escapes
control characters itself.

rich is imported on first use: `netvigil --help` does not need it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TextIO

from presentation.safe_text import printable
from presentation.views import Line, Styled, Table, View

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

PROG = "netvigil"

#: The width tables get when the output is not a terminal: wide enough that no row is folded.
_PIPE_WIDTH = 10_000


class Output:
    """Where a command's answer, notices and errors go. `as_json` chooses the answer's form."""

    def __init__(self, as_json: bool = False) -> None:
        self.as_json = as_json
        self._consoles: dict[bool, Console] = {}

    def _console(self, stderr: bool) -> Console:
        if stderr not in self._consoles:
            from rich.console import Console

            # No file given: rich writes to sys.stdout/sys.stderr as they are at each call,
            # which is what pytest's capsys and a redirected stream need. No highlighting: data
            # is printed plain, not with every number and bracket in bold.
            console = Console(stderr=stderr, highlight=False, soft_wrap=True)
            if not console.is_terminal:
                # A pipe or a file has no width: rich would assume 80 columns (or $COLUMNS) and
                # fold table cells inside words and URLs. Give it room for any row instead.
                console.width = _PIPE_WIDTH
            self._consoles[stderr] = console
        return self._consoles[stderr]

    @property
    def stream(self) -> TextIO:
        """stdout, for commands whose answer is a file's content (`export` without --out)."""
        return sys.stdout

    # --- the answer ----------------------------------------------------------------------

    def show(self, data: Any, view: View | Callable[[], View]) -> None:
        """The answer: `data` as JSON with --json, else the view (built only when needed)."""
        if self.as_json:
            self.json(data)
        else:
            self.render(view() if callable(view) else view)

    def json(self, data: Any) -> None:
        print(json.dumps(data, indent=2, default=str), file=sys.stdout)

    def text(self, text: str) -> None:
        """Plain text on stdout, its lines as they are (controls shown as escapes)."""
        print(printable(text, newlines=True), file=sys.stdout)

    def render(self, view: View) -> None:
        from rich.table import Table as RichTable

        for item in view:
            if isinstance(item, Line):
                # A line is one line: a newline inside a part is shown, not obeyed.
                self._console(item.stderr).print(_text(*item.parts))
            elif isinstance(item, Table):
                # Title and headers too: rich reads a plain str given to a table as markup.
                table = RichTable(title=_text(item.title))
                for column in item.columns:
                    # On a narrow terminal a cell wraps between words; a word (a verdict, a
                    # URL) longer than its column is cut with an ellipsis, never split in two.
                    table.add_column(_text(column), overflow="ellipsis")
                for row in item.rows:
                    # A cell may span lines (an event's targets); it cannot leave its cell.
                    table.add_row(*(_text(part, newlines=True) for part in row))
                self._console(False).print(table)

    # --- beside the answer ---------------------------------------------------------------

    def message(self, text: str) -> None:
        """A notice for people ("wrote case.zip"), on stderr."""
        self._console(True).print(_text(text))

    def log(self, line: str) -> None:
        """A line of a long-running command's log (monitor), on stderr at once: journald keeps
        it, and a crash must not lose it in a buffer."""
        print(printable(line), file=sys.stderr, flush=True)

    def warning(self, text: str | None) -> None:
        """A warning on stderr, when there is one."""
        if text:
            print(f"{PROG}: warning: {printable(text)}", file=sys.stderr)

    def error(self, text: str) -> None:
        """The one line an error gets, on stderr (errors quote bundles, files, answers)."""
        print(f"{PROG}: error: {printable(text)}", file=sys.stderr)

    def ask(self, notice: str, question: str) -> str | None:
        """Show `notice` on stderr and ask `question`: the answer, or None without a terminal."""
        print(printable(notice, newlines=True), file=sys.stderr)
        if not sys.stdin.isatty():
            return None
        return input(question)

    @contextlib.contextmanager
    def progress(self, total: int, label: str = "measuring") -> Iterator[Callable[[str], None]]:
        """A transient progress bar on stderr; yields `advance(what)`, called per item done."""
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        # The description is a target's URL, from a list someone else may have written: not
        # markup (a "[/]" in it would stop the run with a MarkupError), no controls.
        with Progress(TextColumn(label, markup=False), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TextColumn("{task.description}", markup=False),
                      console=self._console(True), transient=True) as bar:
            task = bar.add_task("", total=total)
            yield lambda what: bar.update(task, advance=1, description=printable(what))

    def silence(self) -> None:
        """After a reader went away (`netvigil ... | head`): drop what is left of stdout."""
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())



def _text(*parts: str | Styled, newlines: bool = False) -> Text:
    """Parts as one rich Text: never markup, every part made printable, styles kept."""
    from rich.text import Text

    return Text.assemble(*((printable(part, newlines), "") if isinstance(part, str)
                           else (printable(part.text, newlines), part.style)
                           for part in parts))
