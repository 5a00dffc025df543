"""Hypothesis helpers for the suites over untrusted input (tests/test_untrusted_fuzz*.py).

Each parser of untrusted input has a contract (CONTRACTS: what it may raise for bad input), and
its work must be bounded by its input: `bounded` measures allocation (tracemalloc's peak), never
wall-clock time, and `assert_bounded` holds it to a generous bound that grows with the input.
`mutated` damages genuine inputs a little, so parsers are exercised past their first check.
"""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from collections.abc import Callable
from typing import TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from core.errors import BundleRejected, OONIFormatError, RequestError, TargetError

#: What each parser may raise for bad input; anything else escaping is a bug.
CONTRACTS: dict[str, tuple[type[BaseException], ...]] = {
    "probes.dns_wire.read_reply/to_response": (),  # garbage is None
    "probes.http.fetch": (),  # every peer's answer is an observation
    "probes.http.normalise_url/redirect_location": (),  # unusable is None
    "core.html_title.extract_title": (),
    "ooni.read.parse_ooni": (OONIFormatError,),
    "ooni.read.read_ooni_file": (),  # each bad item is yielded as an OONIFormatError
    "targets.loaders.load_targets": (TargetError,),
    "results.bundle_verify.verify_bundle": (),  # problems are reported, never raised
    "services.helper_protocol.parse_request": (RequestError,),
    "services.collector_intake.Collection.add": (BundleRejected,),
}

FUZZ = settings(deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

T = TypeVar("T")


def fuzz(examples: int) -> settings:
    """FUZZ with `examples` examples: as many as keep the whole file under a minute."""
    return settings(FUZZ, max_examples=examples)


def bounded(run: Callable[[], T], allowed: tuple[type[BaseException], ...] = ()
            ) -> tuple[T | BaseException, int]:
    """`run()` (or the allowed exception it raised) and the peak of what it allocated."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    try:
        result: T | BaseException = run()
    except allowed as exc:
        result = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1] - before
        if started:
            tracemalloc.stop()
    return result, peak


def assert_bounded(peak: int, size: int, floor: int, per_byte: int) -> None:
    assert peak <= floor + per_byte * size, f"{peak} bytes allocated for {size} bytes of input"


@st.composite
def mutated(draw: st.DrawFn, data: bytes, most: int = 4) -> bytes:
    """`data` with up to `most` bytes flipped, runs inserted or deleted, or its tail cut."""
    out = bytearray(data)
    for _ in range(draw(st.integers(0, most))):
        at = draw(st.integers(0, len(out)))
        kind = draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        if kind == "flip" and at < len(out):
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del out[at:at + draw(st.integers(1, 16))]
        else:
            del out[at:]
    return bytes(out)


names = st.from_regex(r"[a-z0-9-]{1,12}(\.[a-z0-9-]{1,12}){0,3}", fullmatch=True)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=12)




def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


#: Nesting depths: shallow, around Python's recursion limit, and far beyond it.
depths = st.integers(1, 5000) | st.sampled_from([1000, 3000])
