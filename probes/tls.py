"""The TLS handshake probe, and the TLS ByteStream it yields.

We drive an `ssl.SSLObject` over two `ssl.MemoryBIO`s ourselves, pumping bytes over the TCP
ByteStream, instead of asyncio's start_tls: owning the SSLObject lets us read the peer's
certificate chain even when verification fails (the evidence of a MITM or a block page served
with a bogus certificate), and lets the same code run over any ByteStream.

Verification is the browser's: CERT_REQUIRED, hostname checked against `sni`, the system store or
only the given CA bundle. The whole handshake is bounded by one timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from typing import Any

from core.observations import TLSHandshake
from core.times import Clock
from probes.failure_mapping import classify_tls
from probes.streams import CHUNK, ByteStream

#: Closing sends our close_notify; this bounds the wait for the transport to take it.
_CLOSE_NOTIFY_GRACE = 0.5


@functools.lru_cache(maxsize=16)
def client_context(ca_bundle: str | None, alpn: tuple[str, ...]) -> ssl.SSLContext:
    """A verifying client context. Cached: loading the system store costs milliseconds per call,
    which a campaign of hundreds of handshakes would feel. Contexts are not mutated afterwards."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_bundle)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


def peer_chain(sslobj: ssl.SSLObject) -> tuple[bytes, ...]:
    """The certificates the peer sent (DER, leaf first), whether or not they verified.

    Python 3.13 has a public `get_unverified_chain()` returning DER bytes; 3.11 and 3.12 have it on
    the private `_sslobj`, returning Certificate objects. The leaf alone is the last resort.
    """
    chain: Any = None
    getter = getattr(sslobj, "get_unverified_chain", None)
    if getter is None:
        getter = getattr(getattr(sslobj, "_sslobj", None), "get_unverified_chain", None)
    if getter is not None:
        with contextlib.suppress(ssl.SSLError, ValueError):
            chain = getter()
    certs: list[bytes] = []
    for item in chain or ():
        if isinstance(item, bytes):
            certs.append(item)
        else:
            certs.append(item.public_bytes(ssl._ssl.ENCODING_DER))  # type: ignore[attr-defined]
    if not certs:
        with contextlib.suppress(ssl.SSLError, ValueError):
            leaf = sslobj.getpeercert(binary_form=True)
            if leaf:
                certs.append(leaf)
    return tuple(certs)


class TLSStream:
    """A ByteStream of application data over an established SSLObject."""

    def __init__(
        self,
        sslobj: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        transport: ByteStream,
    ) -> None:
        self._ssl = sslobj
        self._in = incoming
        self._out = outgoing
        self._transport = transport
        self._closed = False
        self._eof = False

    async def _flush(self) -> None:
        data = self._out.read()
        if data:
            await self._transport.write(data)

    async def read(self, max_bytes: int) -> bytes:
        got = bytearray()
        while True:
            try:
                data = self._ssl.read(max_bytes - len(got))
            except ssl.SSLWantReadError:
                if got or self._eof:
                    return bytes(got)
                await self._flush()  # TLS 1.3 may need to answer (e.g. a key update)
                chunk = await self._transport.read(CHUNK)
                if chunk:
                    self._in.write(chunk)
                else:
                    self._eof = True
                    self._in.write_eof()
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                # close_notify, or the TCP connection ended without one: either way the stream
                # is over, as it is when a plain TCP peer closes.
                return bytes(got)
            if not data:  # close_notify received
                return bytes(got)
            got += data
            # One call yields at most one record (16 KiB): keep decrypting what is already
            # buffered, so a fast body costs few trips through the event loop.
            if len(got) >= max_bytes or not (self._ssl.pending() or self._in.pending):
                return bytes(got)

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = self._ssl.write(view)
            view = view[written:]
            await self._flush()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._ssl.unwrap()  # queues our close_notify; we do not wait for the peer's
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._flush(), _CLOSE_NOTIFY_GRACE)
        await self._transport.close()


async def _pump_handshake(
    sslobj: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, stream: ByteStream
) -> None:
    """Run the handshake to completion, moving bytes between the BIOs and the stream."""
    eof = False
    while True:
        try:
            sslobj.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        except ssl.SSLError:
            # Best effort: tell the peer why (an alert), then report the real error.
            pending = outgoing.read()
            if pending:
                with contextlib.suppress(OSError):
                    await stream.write(pending)
            raise
        data = outgoing.read()
        if data:
            await stream.write(data)
        if done:
            return
        if eof:
            raise EOFError("peer closed the connection during the TLS handshake")
        chunk = await stream.read(CHUNK)
        if chunk:
            incoming.write(chunk)
        else:
            eof = True
            incoming.write_eof()


async def handshake(
    stream: ByteStream,
    address: str,
    port: int,
    sni: str,
    clock: Clock,
    timeout: float,
    ca_bundle: str | None = None,
    alpn: tuple[str, ...] = ("http/1.1",),
    purpose: str = "target",
) -> tuple[TLSHandshake, ByteStream | None]:
    """A verifying TLS handshake with `sni` over `stream`, bounded by `timeout` seconds.

    Returns the observation (peer chain kept even when verification fails) and, on success, a TLS
    ByteStream over `stream`; closing it closes `stream`. On failure the second item is None and
    `stream` stays the caller's to close. `address` and `port` are recorded, not dialled.
    """
    context = client_context(ca_bundle, tuple(alpn))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    sslobj = context.wrap_bio(incoming, outgoing, server_side=False, server_hostname=sni)
    t0 = clock.now()
    # Both outcomes record the same endpoint, and the peer's chain even when verification failed.
    observed = functools.partial(TLSHandshake, t0=t0, address=address, port=port, sni=sni,
                                 purpose=purpose)
    try:
        await asyncio.wait_for(_pump_handshake(sslobj, incoming, outgoing, stream), timeout)
    except (OSError, EOFError) as exc:  # ssl.SSLError and TimeoutError are OSErrors
        return observed(t=clock.now(), failure=classify_tls(exc),
                        peer_certificates=peer_chain(sslobj)), None
    cipher = sslobj.cipher()
    observation = observed(
        t=clock.now(),
        failure=None,
        version=sslobj.version(),
        cipher=cipher[0] if cipher else None,
        alpn=sslobj.selected_alpn_protocol(),
        peer_certificates=peer_chain(sslobj),
        cert_verified=True,
    )
    return observation, TLSStream(sslobj, incoming, outgoing, stream)
