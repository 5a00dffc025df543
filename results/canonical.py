"""Canonical JSON (RFC 8785, JCS) and the SHA-256 hash chain over stored records.

Each raw record is stored as the exact bytes `canonical_json` gives, hashed together with the
previous record's hash (`chain_hash`). Anyone can check the chain with any JCS implementation and
`sha256sum`, without netvigil: that is the point of using a published canonical form rather than
`json.dumps(sort_keys=True)`, whose float and escaping rules are Python's own.

JCS in short: UTF-8, no whitespace, object keys sorted by their UTF-16 code units, strings escaped
only where JSON requires it, numbers written the way ECMAScript's `Number.prototype.toString`
writes them (shortest round-trip digits; exponent form below 1e-6 and from 1e21).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from core.errors import RecordError

GENESIS = "0" * 64  # the "previous hash" of the first record in a database

# JCS follows ECMAScript: every number is an IEEE 754 double. Integers beyond 2**53 would be
# rounded by any other verifier, so we refuse them instead of writing digits nobody can reproduce.
_MAX_SAFE_INTEGER = 2**53

_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def canonical_json(obj: Any) -> bytes:
    """The RFC 8785 canonical form of a JSON-ready value (dict, list, tuple, str, number, ...).

    Raises RecordError (a ValueError) for NaN, infinities, unsafe integers and lone surrogates
    (none of which I-JSON allows), TypeError for anything that is not JSON (bytes, sets,
    non-string keys).
    """
    parts: list[str] = []
    _write(obj, parts)
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RecordError(f"canonical JSON: a string holds a lone surrogate: {exc}") from None


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of `data` as 64 lower-case hex digits."""
    return hashlib.sha256(data).hexdigest()


def chain_hash(prev_hex: str, canonical: bytes) -> str:
    """The hash of a record linked to its predecessor: sha256(prev_hex + "\\n" + canonical)."""
    return sha256_hex(prev_hex.encode("ascii") + b"\n" + canonical)


def _write(value: Any, parts: list[str]) -> None:
    # bool before int: True is an int in Python, but JSON's `true`.
    if value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, int):
        parts.append(_integer(value))
    elif isinstance(value, float):
        parts.append(es_number(value))
    elif isinstance(value, str):
        parts.append(_string(value))
    elif isinstance(value, dict):
        _write_object(value, parts)
    elif isinstance(value, list | tuple):
        parts.append("[")
        for i, item in enumerate(value):
            if i:
                parts.append(",")
            _write(item, parts)
        parts.append("]")
    else:
        raise TypeError(f"canonical JSON: cannot serialise {type(value).__name__}")


def _write_object(value: dict[Any, Any], parts: list[str]) -> None:
    for key in value:
        if not isinstance(key, str):
            raise TypeError(f"canonical JSON: object keys must be strings, not {key!r}")
    # UTF-16 big-endian bytes compare exactly like the sequence of UTF-16 code units, which is
    # the order RFC 8785 prescribes (it differs from code point order above U+FFFF).
    keys = sorted(value, key=lambda k: k.encode("utf-16-be", "surrogatepass"))
    parts.append("{")
    for i, key in enumerate(keys):
        if i:
            parts.append(",")
        parts.append(_string(key))
        parts.append(":")
        _write(value[key], parts)
    parts.append("}")


def _integer(value: int) -> str:
    if abs(value) > _MAX_SAFE_INTEGER:
        raise RecordError(f"canonical JSON: integer {value} is beyond 2**53 (not exact in I-JSON)")
    return str(value)


def _string(value: str) -> str:
    out = ['"']
    for ch in value:
        escaped = _SHORT_ESCAPES.get(ch)
        if escaped is not None:
            out.append(escaped)
        elif ch < " ":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def es_number(value: float) -> str:
    """A double written as ECMAScript's Number.prototype.toString writes it (ES 2019, 7.1.12.1)."""
    if math.isnan(value) or math.isinf(value):
        raise RecordError(f"canonical JSON: {value} is not a JSON number")
    if value == 0:
        return "0"  # also for -0.0
    sign = "-" if value < 0 else ""
    digits, n = _shortest_digits(abs(value))
    k = len(digits)
    # The value is 0.<digits> * 10**n; the four cases are the specification's steps 6 to 10.
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * -n + digits
    else:
        exponent = n - 1
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        body = f"{mantissa}e{'+' if exponent > 0 else '-'}{abs(exponent)}"
    return sign + body


def _shortest_digits(value: float) -> tuple[str, int]:
    """The shortest digit string that round-trips, and n such that value = 0.digits * 10**n.

    Python's repr already finds the shortest round-trip digits (the same digits ECMAScript
    requires); we only take its text apart into digits and a decimal exponent.
    """
    text = repr(value)
    mantissa, _, exp_text = text.partition("e")
    exponent = int(exp_text) if exp_text else 0
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    # Position of the decimal point relative to the first significant digit.
    point = len(whole) + exponent
    leading_zeros = len(whole + fraction) - len((whole + fraction).lstrip("0"))
    n = point - leading_zeros
    return digits.rstrip("0"), n
