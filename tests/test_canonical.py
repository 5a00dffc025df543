"""Canonical JSON against RFC 8785's published examples, and the hash chain helpers."""

from __future__ import annotations

import hashlib
import json
import struct

import pytest

from results.canonical import GENESIS, canonical_json, chain_hash, es_number, sha256_hex


def _double(bits: int) -> float:
    value: float = struct.unpack(">d", bits.to_bytes(8, "big"))[0]
    return value


# RFC 8785, Appendix B: IEEE 754 bit patterns and their ECMAScript serialisation.
RFC8785_NUMBERS = [
    (0x0000000000000000, "0"),
    (0x8000000000000000, "0"),  # minus zero
    (0x0000000000000001, "5e-324"),
    (0x8000000000000001, "-5e-324"),
    (0x7FEFFFFFFFFFFFFF, "1.7976931348623157e+308"),
    (0xFFEFFFFFFFFFFFFF, "-1.7976931348623157e+308"),
    (0x4340000000000000, "9007199254740992"),
    (0xC340000000000000, "-9007199254740992"),
    (0x4430000000000000, "295147905179352830000"),
    (0x44B52D02C7E14AF5, "9.999999999999997e+22"),
    (0x44B52D02C7E14AF6, "1e+23"),
    (0x44B52D02C7E14AF7, "1.0000000000000001e+23"),
    (0x444B1AE4D6E2EF4E, "999999999999999700000"),
    (0x444B1AE4D6E2EF4F, "999999999999999900000"),
    (0x444B1AE4D6E2EF50, "1e+21"),
    (0x3EB0C6F7A0B5ED8C, "9.999999999999997e-7"),
    (0x3EB0C6F7A0B5ED8D, "0.000001"),
    (0x41B3DE4355555553, "333333333.3333332"),
    (0x41B3DE4355555554, "333333333.33333325"),
    (0x41B3DE4355555555, "333333333.3333333"),
    (0x41B3DE4355555556, "333333333.3333334"),
    (0x41B3DE4355555557, "333333333.33333343"),
    (0xBECBF647612F3696, "-0.0000033333333333333333"),
    (0x43143FF3C1CB0959, "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "expected"), RFC8785_NUMBERS)
def test_rfc8785_number_samples(bits: int, expected: str) -> None:
    value = _double(bits)
    assert es_number(value) == expected
    assert canonical_json(value) == expected.encode()
    assert float(expected) == value  # the text reads back to the same double


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1.0, "1"), (1e21, "1e+21"), (0.1, "0.1"), (1e20, "100000000000000000000"),
     (1e-7, "1e-7"), (1.5e-7, "1.5e-7"), (123.456, "123.456"), (-2.5, "-2.5"), (0.001, "0.001"),
     (4.5, "4.5"), (2e-3, "0.002"), (1e30, "1e+30"), (1e-27, "1e-27")],
)
def test_ecmascript_number_forms(value: float, expected: str) -> None:
    assert es_number(value) == expected


@pytest.mark.parametrize("bits", [0x7FFFFFFFFFFFFFFF, 0x7FF0000000000000, 0xFFF0000000000000])
def test_nan_and_infinity_are_rejected(bits: int) -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": _double(bits)})


def test_rfc8785_key_ordering_by_utf16_code_units() -> None:
    # RFC 8785, 3.2.3: the sorting example. The emoji (a surrogate pair, D83D...) sorts before
    # U+FB33, although its code point is higher: UTF-16 code units, not code points.
    data = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    values = list(json.loads(canonical_json(data)).values())
    assert values == [
        "Carriage Return", "One", "Control", "Latin Small Letter O With Diaeresis", "Euro Sign",
        "Emoji: Grinning Face", "Hebrew Letter Dalet With Dagesh",
    ]


def test_rfc8785_canonicalization_example() -> None:
    # RFC 8785, 3.2.2: the input as JSON text (so the numbers are parsed as doubles) and the
    # published output, byte for byte.
    source = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_json(json.loads(source)) == expected.encode("utf-8")


def test_strings_are_escaped_minimally() -> None:
    text = canonical_json(["\x00\x1f\x7f/é\u2028\"\\\b\f\n\r\t"]).decode("utf-8")
    # Control characters as \u00xx (lower-case hex) or their short escapes; DEL, '/', non-ASCII
    # and U+2028 as they are.
    assert text == '["\\u0000\\u001f\x7f/é\u2028\\"\\\\\\b\\f\\n\\r\\t"]'


def test_integers_tuples_and_nesting() -> None:
    assert canonical_json({"b": [1, (2, 3)], "a": {"d": None, "c": True}, "n": -0}) == (
        b'{"a":{"c":true,"d":null},"b":[1,[2,3]],"n":0}'
    )
    assert canonical_json(2**53) == b"9007199254740992"


def test_unrepresentable_values_are_rejected() -> None:
    with pytest.raises(ValueError):
        canonical_json(2**53 + 1)  # every other JCS implementation would round it
    with pytest.raises(ValueError):
        canonical_json("\ud800")  # a lone surrogate is not Unicode text
    with pytest.raises(TypeError):
        canonical_json({1: "non-string key"})
    with pytest.raises(TypeError):
        canonical_json(b"bytes")


def test_hash_helpers() -> None:
    assert sha256_hex(b"abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert GENESIS == "0" * 64
    canonical = canonical_json({"a": 1})
    assert chain_hash(GENESIS, canonical) == hashlib.sha256(
        GENESIS.encode() + b"\n" + b'{"a":1}'
    ).hexdigest()
    assert chain_hash("1" * 64, canonical) != chain_hash(GENESIS, canonical)
