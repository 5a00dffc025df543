"""The page title of an HTML body, found cheaply and safely.

Bodies are untrusted: the search is linear, looks only at the start of the body, and the result
is unescaped, whitespace-collapsed and bounded, so a hostile page cannot cost CPU or bloat records.
"""

from __future__ import annotations

import codecs
import html

#: A title lives in <head>; even pages with large inline scripts put it within this.
SEARCH_LIMIT = 256 * 1024
MAX_TITLE = 300
_OPEN = b"<title"
_CLOSE = b"</title"


def charset_of(content_type: str | None) -> str:
    """The charset named in a Content-Type header when Python knows it, else utf-8."""
    for param in (content_type or "").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            name = value.strip().strip("\"'")
            try:
                return codecs.lookup(name).name
            except (LookupError, ValueError):  # unknown, or no name at all (a NUL, a surrogate)
                break
    return "utf-8"


def extract_title(body: bytes, content_type: str | None = None) -> str | None:
    """The text of the first <title> element, or None when there is none."""
    head = body[:SEARCH_LIMIT].lower()  # ASCII lowering keeps byte offsets
    start = head.find(_OPEN)
    while start != -1:
        after = head[start + len(_OPEN) : start + len(_OPEN) + 1]
        if after in (b">", b" ", b"\t", b"\n", b"\r", b"/"):  # not <titlefoo>
            break
        start = head.find(_OPEN, start + 1)
    if start == -1:
        return None
    text_start = head.find(b">", start)
    if text_start == -1:
        return None
    end = head.find(_CLOSE, text_start)
    if end == -1:
        return None
    raw = _decode(body[text_start + 1 : end], charset_of(content_type))
    return " ".join(html.unescape(raw).split())[:MAX_TITLE]


def _decode(data: bytes, charset: str) -> str:
    """`data` in `charset`, or as UTF-8 when that codec cannot decode a page: Python also knows
    bytes-to-bytes codecs (rot13, base64, zlib: LookupError) and codecs that refuse to replace
    what they cannot read (idna, punycode, undefined: UnicodeError). A page may name any."""
    try:
        return data.decode(charset, errors="replace")
    except (LookupError, UnicodeError):
        return data.decode("utf-8", errors="replace")
