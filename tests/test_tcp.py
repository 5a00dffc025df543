"""The TCP connect probe and the TCP ByteStream, against loopback fakes."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import time

import pytest

from core import failures
from core.observations import observation_from_dict, observation_to_dict
from core.times import Clock
from probes import tcp
from tests.fakes.servers import TCPServer


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_connect_ok_and_stream_round_trip() -> None:
    async def main() -> None:
        with TCPServer("garbage", payload=b"hello") as server:
            obs, stream = await tcp.connect("127.0.0.1", server.port, Clock(), 2.0)
            assert obs.failure is None
            assert (obs.address, obs.port) == ("127.0.0.1", server.port)
            assert 0 <= obs.t0 <= obs.t
            assert stream is not None
            await stream.write(b"ping")
            assert await stream.read(100) == b"hello"
            assert await stream.read(100) == b""  # the fake half-closes: a clean EOF
            await stream.close()
            await stream.close()  # idempotent, never raises

    asyncio.run(main())


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
@pytest.mark.parametrize("literal", ["::1", "[::1]"])
def test_connect_ipv6_literal(literal: str) -> None:
    async def main() -> None:
        with TCPServer("accept", host="::1") as server:
            obs, stream = await tcp.connect(literal, server.port, Clock(), 2.0)
            assert obs.failure is None
            assert obs.address == "::1"
            assert stream is not None
            await stream.close()

    asyncio.run(main())


def test_connect_refused() -> None:
    # A socket bound but not listening answers a SYN with RST: a closed port, deterministically.
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        obs, stream = asyncio.run(tcp.connect("127.0.0.1", port, Clock(), 2.0))
    assert obs.failure == failures.CONNECTION_REFUSED
    assert stream is None
    assert observation_from_dict(observation_to_dict(obs)) == obs


def test_connect_timeout_with_full_backlog() -> None:
    # A real TCP timeout without traffic leaving loopback: Linux drops SYNs to a listener whose
    # accept queue is full, so the connect retries until our timeout cuts it.
    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(3):
            filler = stack.enter_context(socket.socket())
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
        time.sleep(0.05)
        started = time.monotonic()
        obs, stream = asyncio.run(tcp.connect("127.0.0.1", port, Clock(), 0.3))
        elapsed = time.monotonic() - started
    assert obs.failure == failures.GENERIC_TIMEOUT
    assert stream is None
    assert 0.25 <= elapsed < 2.0
    assert obs.t - obs.t0 >= 0.25


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (errno.ENETUNREACH, failures.NETWORK_UNREACHABLE),
        (errno.EHOSTUNREACH, failures.HOST_UNREACHABLE),
        (errno.ENETDOWN, failures.NETWORK_DOWN),
    ],
)
def test_connect_unreachable_injected(
    monkeypatch: pytest.MonkeyPatch, code: int, expected: str
) -> None:
    # Unreachable networks cannot be produced on loopback without sending packets elsewhere,
    # so the kernel's error is injected where asyncio would raise it.
    async def unreachable(*args: object, **kwargs: object) -> None:
        raise OSError(code, "injected")

    monkeypatch.setattr(asyncio, "open_connection", unreachable)
    obs, stream = asyncio.run(tcp.connect("192.0.2.1", 443, Clock(), 1.0))
    assert obs.failure == expected
    assert stream is None


def test_connect_requires_an_address_literal() -> None:
    with pytest.raises(ValueError):
        asyncio.run(tcp.connect("localhost", 80, Clock(), 1.0))


def test_reset_at_once_is_a_reset() -> None:
    # The RST races the end of the connect: asyncio may already see it while setting up the
    # transport (a connect failure), or the first read does. Either way it is a reset.
    async def main() -> None:
        with TCPServer("reset_at_once") as server:
            obs, stream = await tcp.connect("127.0.0.1", server.port, Clock(), 2.0)
            if stream is None:
                assert obs.failure == failures.CONNECTION_RESET
                return
            assert obs.failure is None
            with pytest.raises(ConnectionResetError):
                await stream.read(100)
            await stream.close()

    asyncio.run(main())
