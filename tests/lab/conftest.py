"""Fixtures of the censorship lab: one topology per module, a clean network per scenario.

Without root, `ip`, `iptables` or `tc`, or where network namespaces cannot be made, the lab
skips with the reason (tests/conftest.py turns such a skip into a failure when CI=true).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from tests.lab.topology import Lab, LabUnavailable, missing_requirements


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """The lab, built once: servers, resolvers and the test helper running, no censorship."""
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)
    # A SIGTERM (a CI job cancelled) would end pytest without any teardown, leaving namespaces
    # and servers behind: turn it into a KeyboardInterrupt, which runs the `finally` below.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        try:
            built = Lab().__enter__()
        except LabUnavailable as exc:
            pytest.skip(str(exc))
        try:
            yield built
        finally:
            leftovers = built.close()
            assert not leftovers, f"lab namespaces left behind: {leftovers}"
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture()
def net(lab: Lab) -> Iterator[Lab]:
    """The lab with an uncensored network; whatever the scenario applies is undone after it."""
    lab.reset()
    try:
        yield lab
    finally:
        lab.reset()
