"""Text from outside made safe to print on a terminal: the one place that decides what is shown.

Member names of a bundle, page titles, OONI inputs, a collection's vantage fields and error
messages quoting any of them reach the console. A terminal obeys some characters instead of
showing them: ESC starts sequences that set the window title, clear the screen or rewrite what
was printed; C1 controls (U+0080-U+009F, e.g. CSI U+009B) do the same on terminals that take
8-bit controls; bidi overrides and isolates reorder what follows, so a name reads differently
from what it is. Each of those is shown as a visible escape (`\\x1b`, `\\u202e`) instead: the text
stays readable and the attempt stays visible, which matters for evidence.

Markup is not handled here: `presentation.console` never lets rich read text as markup (every
string becomes a `rich.text.Text`), so brackets print as they are.
"""

from __future__ import annotations

import re

__all__ = ["printable"]

# C0 controls but newline and DEL with the C1 block; bidi embeddings and overrides
# (U+202A-U+202E) and isolates (U+2066-U+2069); the line and paragraph separators (they break
# a line on some terminals, so a one-line message could forge a second line); lone surrogates
# (a file name decoded with surrogateescape: printing one raises UnicodeEncodeError).
_UNSAFE = "\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE_LINE = re.compile(f"[{_UNSAFE}\n]")
_UNSAFE_TEXT = re.compile(f"[{_UNSAFE}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, newlines: bool = False) -> str:
    """`text` with every character a terminal would obey shown as an escape.

    A newline is kept only with `newlines` (a multi-line text or a table cell of ours); in a
    line it would let quoted text forge a line of the output ("all holds")."""
    return (_UNSAFE_TEXT if newlines else _UNSAFE_LINE).sub(_escape, text)
