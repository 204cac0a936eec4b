"""Node-to-node transport: opaque frames over asyncio TCP with mutual TLS.

Protocol-independent: Raft today, a BFT protocol later. A frame is a u32 big-endian length followed
by that many opaque bytes; the consensus codec lives elsewhere.

Connections. Each node listens, and dials every peer whose address it knows. A connection carries
frames one way only, from the dialler to the acceptor, so two nodes talk over two connections and
there is no "who keeps the duplicate connection" race. The acceptor learns who dialled from the
verified certificate (:func:`ledgercore.net.pki.peer_node_id`), never from anything the peer says;
the dialler checks the acceptor's certificate names the node it meant to reach (TLS hostname
verification against the node id, then the CN). A certificate not issued by the consortium CA, a
client certificate, or a node id outside the peer set is refused, logged and counted.

Delivery is best effort: frames from one peer arrive in order and at most once, but frames queued or
in flight when a connection breaks may be lost. Consensus protocols tolerate that (they retransmit).

Backpressure. ``send`` never blocks: it appends to the peer's bounded queue (``queue_frames`` frames
and ``queue_bytes`` bytes) and, when the queue is full, drops the *oldest* frames and counts them in
``PeerStats.dropped``. Dropping the oldest suits consensus traffic (the newest heartbeat or append
supersedes older ones) and a slow peer can never stall the caller's event loop nor grow memory. A
caller that would rather wait uses ``await send_wait(...)``. On the receiving side the inbox is
bounded too (``inbox_frames`` / ``inbox_bytes``); when it is full the connection's reader stops
reading, TCP's window closes and the sender's queue fills, so backpressure reaches the sender.

Memory per peer is bounded by ``queue_bytes`` + one frame + one write batch + the socket buffers.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import socket
import ssl
import struct
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ledgercore.errors import InvalidInputError
from ledgercore.net.errors import (
    FrameTooLargeError,
    HandshakeError,
    MalformedFrameError,
    PeerIdentityError,
    PeerRejectedError,
    TransportClosedError,
    TransportError,
    UnknownPeerError,
)
from ledgercore.net.pki import TLSFiles, peer_node_id, validate_node_id
from ledgercore.net.tls_accept import accept_tls, cancel_all, describe, listen
from ledgercore.waits import at_most

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "Address",
    "Backoff",
    "BackoffPolicy",
    "FrameDecoder",
    "PeerStats",
    "RejectionStats",
    "Transport",
    "TransportLimits",
    "encode_frame",
]

log = logging.getLogger("ledgercore.net.transport")

Address = tuple[str, int]

HEADER = struct.Struct(">I")
DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024
_MAX_U32 = 0xFFFF_FFFF
# StreamReader buffer limit: it stops reading the socket once about twice this much is buffered.
_READ_LIMIT = 256 * 1024
_READ_CHUNK = 256 * 1024
_WRITE_HIGH_WATER = 256 * 1024


def _check_address(address: object, what: str, *, listening: bool = False) -> Address:
    """``address`` if it is a ``(host, port)`` tuple of a str host and an int port in 1..65535,
    else :class:`InvalidInputError` naming it; to listen on, the host may also be ``""`` (all
    interfaces) and the port 0 (any free one). Checked up front because getaddrinfo takes a port
    modulo 65536 (70000 listens on 4464) and a dialler would retry an unusable address forever."""
    lowest_port = 0 if listening else 1
    if isinstance(address, tuple) and len(address) == 2:
        host, port = address
        if (isinstance(host, str) and (host or listening) and isinstance(port, int) and not isinstance(port, bool)
                and lowest_port <= port <= 65535):  # fmt: skip
            return host, port
    raise InvalidInputError(
        f"{what} must be a (host, port) tuple of a {'' if listening else 'non-empty '}host string and a port in "
        f"{lowest_port}..65535, got {address!r:.100}")


def encode_frame(payload: bytes) -> bytes:
    """``payload`` with its u32 big-endian length prefix."""
    if len(payload) > _MAX_U32:
        raise FrameTooLargeError(len(payload), _MAX_U32)
    return HEADER.pack(len(payload)) + payload


class FrameDecoder:
    """Incremental decoder of length-prefixed frames.

    ``feed(data)`` returns the frames completed so far. A header announcing more than
    ``max_frame_size`` bytes is rejected as soon as its 4 bytes arrive, before any body is
    buffered: frames before it are still returned, ``error`` is set, and every later ``feed``
    raises it. The buffer never holds more than one frame plus one chunk."""

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = max_frame_size
        self.error: FrameTooLargeError | None = None
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes buffered that do not yet form a whole frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the frames it completes, in order."""
        if self.error is not None:
            raise self.error
        buf = self._buf
        buf += data
        frames: list[bytes] = []
        pos, end = 0, len(buf)
        with memoryview(buf) as view:  # one copy per frame (the bytes we return)
            while end - pos >= HEADER.size:
                (size,) = HEADER.unpack_from(view, pos)
                if size > self.max_frame_size:
                    self.error = FrameTooLargeError(size, self.max_frame_size)
                    break
                if end - pos - HEADER.size < size:
                    break
                start = pos + HEADER.size
                frames.append(view[start : start + size].tobytes())
                pos = start + size
        if pos:
            del buf[:pos]  # one memmove per feed, not per frame
        if self.error is not None and not frames:
            raise self.error
        return frames


def _check_numbers(settings: Any) -> None:
    """InvalidInputError naming the first field of the dataclass ``settings`` whose value is not
    what its annotation says: an ``int`` field takes an int (10.5 frames is no count), a ``float``
    field an int or float that is finite (range checks compare false with NaN, a NaN or infinite
    delay never fires as meant, and an int past the float range, ``10**400``, would raise
    OverflowError where a delay is computed). A bool is neither."""
    for field in fields(settings):
        value = getattr(settings, field.name)
        ok = isinstance(value, int) and not isinstance(value, bool)
        if field.type == "float" and (ok or isinstance(value, float)):
            try:
                ok = math.isfinite(value)
            except OverflowError:
                ok = False
        if not ok:
            kind = "a finite number" if field.type == "float" else "an int"
            raise InvalidInputError(f"{type(settings).__name__}.{field.name} must be {kind}, got {value!r:.40}")


@dataclass(frozen=True)
class BackoffPolicy:
    """Reconnect delays: ``initial * multiplier**k`` capped at ``maximum``, each shortened by a
    random fraction up to ``jitter`` (so peers that lost a node together do not redial in step).
    A connection that stayed up ``stable_after`` seconds resets the sequence."""

    initial: float = 0.05
    maximum: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.5
    stable_after: float = 1.0

    def __post_init__(self) -> None:
        _check_numbers(self)
        if not (0 < self.initial <= self.maximum):
            raise InvalidInputError("backoff needs 0 < initial <= maximum")
        if self.multiplier < 1:
            raise InvalidInputError("backoff multiplier must be >= 1")
        if not (0 <= self.jitter <= 1):
            raise InvalidInputError("backoff jitter must be in [0, 1]")
        if self.stable_after < 0:
            raise InvalidInputError("backoff stable_after must be >= 0")


class Backoff:
    """Exponential backoff with jitter; deterministic for a seeded ``rng``."""

    def __init__(self, policy: BackoffPolicy, rng: random.Random) -> None:
        self.policy = policy
        self._rng = rng
        self._base = policy.initial

    def next(self) -> float:
        """The delay before the next attempt, in seconds."""
        p = self.policy
        base = self._base
        # Grown by multiplying, not by ``multiplier**k``: a float product past the float range is
        # inf, which the cap brings back, where a power raises OverflowError (and would end the
        # dial loop). Invariant: initial <= _base <= maximum.
        self._base = min(base * p.multiplier, p.maximum)
        return base * (1.0 - p.jitter * self._rng.random())

    def reset(self) -> None:
        """Start again from ``initial``."""
        self._base = self.policy.initial


@dataclass(frozen=True)
class TransportLimits:
    """Bounds on frames, queues and handshakes (see the module docstring)."""

    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    queue_frames: int = 4096
    queue_bytes: int = 64 * 1024 * 1024
    inbox_frames: int = 4096
    inbox_bytes: int = 64 * 1024 * 1024
    write_batch_bytes: int = 1024 * 1024
    connect_timeout: float = 5.0
    handshake_timeout: float = 5.0
    max_pending_handshakes: int = 64

    def __post_init__(self) -> None:
        _check_numbers(self)
        if not (0 < self.max_frame_size <= _MAX_U32):
            raise InvalidInputError(f"max_frame_size must be in 1..{_MAX_U32}")
        for name in ("queue_frames", "queue_bytes", "inbox_frames", "inbox_bytes",
                     "write_batch_bytes", "max_pending_handshakes"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"{name} must be >= 1")
        if self.connect_timeout <= 0 or self.handshake_timeout <= 0:
            raise InvalidInputError("timeouts must be positive")


@dataclass(frozen=True)
class PeerStats:
    """A snapshot of one peer's counters.

    ``sent`` counts frames handed to the kernel (``drain`` returned), ``dropped`` frames evicted
    from a full queue, ``reconnects`` outbound connections established after the first one,
    ``frame_errors`` inbound connections closed for a malformed or oversize frame."""

    peer_id: str
    connected: bool
    inbound: bool
    queued: int
    queued_bytes: int
    sent: int
    sent_bytes: int
    dropped: int
    dropped_bytes: int
    received: int
    received_bytes: int
    connects: int
    reconnects: int
    connect_failures: int
    frame_errors: int
    last_error: BaseException | None


@dataclass(frozen=True)
class RejectionStats:
    """Inbound connections refused: failed TLS handshakes (no/foreign/expired certificate, not
    TLS at all, too many pending) and verified certificates naming no node of the peer set."""

    handshakes: int
    peers: int
    last: TransportError | None


class _Counters:
    __slots__ = (
        "sent", "sent_bytes", "dropped", "dropped_bytes", "received", "received_bytes",
        "connects", "reconnects", "connect_failures", "frame_errors", "last_error",
    )

    def __init__(self) -> None:
        self.sent = self.sent_bytes = self.dropped = self.dropped_bytes = 0
        self.received = self.received_bytes = 0
        self.connects = self.reconnects = self.connect_failures = self.frame_errors = 0
        self.last_error: BaseException | None = None


def _wake_all(waiters: deque[asyncio.Future[None]]) -> None:
    while waiters:
        fut = waiters.popleft()
        if not fut.done():
            fut.set_result(None)


async def _wait_on(waiters: deque[asyncio.Future[None]]) -> None:
    fut = asyncio.get_running_loop().create_future()
    waiters.append(fut)
    await fut  # a cancelled waiter is skipped by _wake_all


class _SendQueue:
    """One peer's outbound frames, bounded by count and bytes. Single consumer (the pump).

    Invariant: ``nbytes == sum(map(len, frames))``, and ``len(frames) <= max_frames`` and
    ``nbytes <= max_bytes`` except for a single frame admitted into an empty queue."""

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.frames: deque[bytes] = deque()
        self.nbytes = 0
        self.closed = False
        self._ready = asyncio.Event()
        self._space: deque[asyncio.Future[None]] = deque()

    def _fits(self, n: int) -> bool:
        return not self.frames or (
            len(self.frames) < self.max_frames and self.nbytes + n <= self.max_bytes
        )

    def _append(self, payload: bytes) -> None:
        self.frames.append(payload)
        self.nbytes += len(payload)
        self._ready.set()

    def push(self, payload: bytes) -> tuple[int, int]:
        """Append, evicting the oldest frames until it fits; return (frames, bytes) evicted."""
        dropped = dropped_bytes = 0
        while not self._fits(len(payload)):
            old = self.frames.popleft()
            self.nbytes -= len(old)
            dropped += 1
            dropped_bytes += len(old)
        self._append(payload)
        return dropped, dropped_bytes

    async def push_wait(self, payload: bytes) -> None:
        """Append once there is room."""
        while not self._fits(len(payload)):
            if self.closed:
                raise TransportClosedError("peer queue closed")
            await _wait_on(self._space)
        if self.closed:
            raise TransportClosedError("peer queue closed")
        self._append(payload)

    async def take(self, max_bytes: int) -> list[bytes]:
        """Remove and return the oldest frames, at least one and about ``max_bytes`` at most."""
        while not self.frames:
            self._ready.clear()
            await self._ready.wait()
        batch = [self.frames.popleft()]
        total = len(batch[0])
        while self.frames and total + len(self.frames[0]) <= max_bytes:
            frame = self.frames.popleft()
            batch.append(frame)
            total += len(frame)
        self.nbytes -= total
        _wake_all(self._space)
        return batch

    def close(self) -> None:
        """Discard everything and fail pending ``push_wait`` calls."""
        self.closed = True
        self.frames.clear()
        self.nbytes = 0
        _wake_all(self._space)


class _Inbox:
    """Frames received from all peers, bounded by count and bytes (the same single-frame
    exception as :class:`_SendQueue`). Producers wait when it is full."""

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.items: deque[tuple[str, bytes]] = deque()
        self.nbytes = 0
        self.closed = False
        self._getters: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()

    def _fits(self, n: int) -> bool:
        return not self.items or (
            len(self.items) < self.max_frames and self.nbytes + n <= self.max_bytes
        )

    async def put(self, peer_id: str, payload: bytes) -> None:
        while not self.closed and not self._fits(len(payload)):
            await _wait_on(self._putters)
        if self.closed:
            raise TransportClosedError("transport stopped")
        self.items.append((peer_id, payload))
        self.nbytes += len(payload)
        _wake_all(self._getters)

    def _pop(self) -> tuple[str, bytes]:
        item = self.items.popleft()
        self.nbytes -= len(item[1])
        _wake_all(self._putters)
        return item

    async def get(self) -> tuple[str, bytes]:
        while not self.items:
            if self.closed:
                raise TransportClosedError("transport stopped")
            await _wait_on(self._getters)
        return self._pop()

    def get_nowait(self) -> tuple[str, bytes] | None:
        return self._pop() if self.items else None

    def close(self) -> None:
        self.closed = True
        _wake_all(self._getters)
        _wake_all(self._putters)


class _Peer:
    """Everything the transport keeps about one peer."""

    def __init__(self, peer_id: str, address: Address | None, limits: TransportLimits,
                 backoff: Backoff) -> None:
        self.id = peer_id
        self.address = address
        self.queue = _SendQueue(limits.queue_frames, limits.queue_bytes)
        self.c = _Counters()
        self.backoff = backoff
        self.dialer: asyncio.Task[None] | None = None
        self.outbound: asyncio.BaseTransport | None = None  # the dialled connection, when up
        self.inbound: asyncio.BaseTransport | None = None  # the newest accepted connection
        self.failing = False  # a connect failure was logged at INFO; quieter until success
        # Set when the peer connects to us while we back off from dialling it: it is up again.
        self.heard = asyncio.Event()

    def snapshot(self) -> PeerStats:
        c = self.c
        return PeerStats(
            peer_id=self.id,
            connected=self.outbound is not None,
            inbound=self.inbound is not None,
            queued=len(self.queue.frames),
            queued_bytes=self.queue.nbytes,
            sent=c.sent,
            sent_bytes=c.sent_bytes,
            dropped=c.dropped,
            dropped_bytes=c.dropped_bytes,
            received=c.received,
            received_bytes=c.received_bytes,
            connects=c.connects,
            reconnects=c.reconnects,
            connect_failures=c.connect_failures,
            frame_errors=c.frame_errors,
            last_error=c.last_error,
        )


def _keepalive(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        except OSError:  # pragma: no cover - best effort
            pass


class _ReaderProtocol(asyncio.StreamReaderProtocol):
    """An accepted connection's protocol, with the reader its frames are read from."""

    def __init__(self) -> None:
        self.reader = asyncio.StreamReader(limit=_READ_LIMIT)
        super().__init__(self.reader)


def _abort(transport: asyncio.BaseTransport | None) -> None:
    """Close at once, discarding unsent data (a graceful close could wait forever on a peer that
    does not read)."""
    if transport is None:
        return
    try:
        transport.abort()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001  # pragma: no cover - already gone
        pass


_NEW, _RUNNING, _STOPPED = "new", "running", "stopped"


class Transport:
    """Mutual-TLS frame transport between the nodes of one consortium.

    ``server_ssl`` / ``client_ssl`` come from :func:`ledgercore.net.pki.server_context` /
    :func:`~ledgercore.net.pki.client_context` (or :meth:`from_files`). ``peers`` maps each other
    node's id to its address, or to ``None`` when only inbound connections are expected for now
    (see :meth:`add_peer`). ``listen`` is ``(host, port)``: host ``""`` for all interfaces, port 0 for any free one.
    ``seed`` fixes the reconnect jitter."""

    def __init__(
        self,
        node_id: str,
        *,
        server_ssl: ssl.SSLContext,
        client_ssl: ssl.SSLContext,
        listen: Address = ("127.0.0.1", 0),
        peers: Mapping[str, Address | None] | None = None,
        limits: TransportLimits | None = None,
        backoff: BackoffPolicy | None = None,
        seed: int | None = None,
    ) -> None:
        self.node_id = validate_node_id(node_id)
        _check_contexts(server_ssl, client_ssl)
        self._server_ssl = server_ssl
        self._client_ssl = client_ssl
        self._listen = _check_address(listen, "listen address", listening=True)
        self.limits = limits or TransportLimits()
        self.backoff_policy = backoff or BackoffPolicy()
        self._seed = seed
        self._peers: dict[str, _Peer] = {}
        self._inbox = _Inbox(self.limits.inbox_frames, self.limits.inbox_bytes)
        self._state = _NEW
        self._sock: socket.socket | None = None  # the listening socket
        self._tasks: set[asyncio.Task[Any]] = set()
        self._rejected_handshakes = 0
        self._rejected_peers = 0
        self._last_rejection: TransportError | None = None
        for peer_id, address in (peers or {}).items():
            self.add_peer(peer_id, address)

    @classmethod
    def from_files(cls, node_id: str, tls: TLSFiles, **kwargs: Any) -> Transport:
        """A transport whose contexts are built from ``tls`` (other arguments as for ``__init__``)."""
        return cls(node_id, server_ssl=tls.server_context(), client_ssl=tls.client_context(),
                   **kwargs)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen, and start dialling every peer with a known address."""
        if self._state != _NEW:
            raise TransportClosedError(f"transport {self.node_id} already {self._state}")
        sock = await listen(*self._listen)
        self._sock = sock
        self._state = _RUNNING
        self._spawn(accept_tls(
            f"transport {self.node_id}", sock, self._server_ssl, _ReaderProtocol,
            handshake_timeout=self.limits.handshake_timeout, max_pending=self.limits.max_pending_handshakes,
            refuse=self._reject, spawn=self._spawn, connected=self._accepted,
        ), f"listen {self.node_id}")  # fmt: skip
        for peer in self._peers.values():
            self._start_dialer(peer)
        log.info("transport %s listening on %s:%d", self.node_id, *self.address)

    async def stop(self) -> None:
        """Close the listener and every connection, discard queued frames, end ``recv``.
        Idempotent; a stopped transport cannot be started again (make a new one)."""
        if self._state == _STOPPED:
            return
        self._state = _STOPPED
        for peer in self._peers.values():
            self._close_peer(peer)
        await cancel_all(self._tasks)
        if self._sock is not None:
            self._sock.close()
        self._inbox.close()

    async def __aenter__(self) -> Transport:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def address(self) -> Address:
        """The address listened on (the real port once started with port 0)."""
        if self._sock is not None and self._sock.fileno() != -1:
            host, port = self._sock.getsockname()[:2]
            return host, port
        return self._listen

    @property
    def running(self) -> bool:
        """Started and not stopped."""
        return self._state == _RUNNING

    # -- peers -------------------------------------------------------------------------------

    @property
    def peers(self) -> dict[str, Address | None]:
        """The peer set: node id -> address (``None`` if not dialled)."""
        return {p.id: p.address for p in self._peers.values()}

    def add_peer(self, peer_id: str, address: Address | None = None) -> None:
        """Add ``peer_id`` to the peer set, or change its address (redialling it). ``address`` is
        ``(host, port)`` with a port in 1..65535, or ``None`` (not dialled)."""
        validate_node_id(peer_id)
        if peer_id == self.node_id:
            raise InvalidInputError(f"node {peer_id!r} cannot be its own peer")
        if self._state == _STOPPED:
            raise TransportClosedError(f"transport {self.node_id} is stopped")
        addr = None if address is None else _check_address(address, f"address of peer {peer_id!r}")
        peer = self._peers.get(peer_id)
        if peer is None:
            rng = random.Random(
                None if self._seed is None else f"{self._seed}/{self.node_id}/{peer_id}"
            )
            peer = _Peer(peer_id, addr, self.limits, Backoff(self.backoff_policy, rng))
            self._peers[peer_id] = peer
        elif peer.address == addr:
            return
        else:
            peer.address = addr
            if peer.dialer is not None:
                peer.dialer.cancel()
                peer.dialer = None
        if self._state == _RUNNING:
            self._start_dialer(peer)

    def remove_peer(self, peer_id: str) -> None:
        """Remove ``peer_id``: close its connections and discard its queue."""
        peer = self._peers.pop(peer_id, None)
        if peer is None:
            raise UnknownPeerError(f"unknown peer {peer_id!r}")
        self._close_peer(peer)

    def _close_peer(self, peer: _Peer) -> None:
        if peer.dialer is not None:
            peer.dialer.cancel()
            peer.dialer = None
        _abort(peer.outbound)
        _abort(peer.inbound)
        peer.queue.close()

    # -- sending -----------------------------------------------------------------------------

    def _peer_for_send(self, peer_id: str, payload: bytes) -> _Peer:
        if self._state == _STOPPED:
            raise TransportClosedError(f"transport {self.node_id} is stopped")
        peer = self._peers.get(peer_id)
        if peer is None:
            raise UnknownPeerError(f"unknown peer {peer_id!r}")
        if not isinstance(payload, bytes):
            raise InvalidInputError(f"payload must be bytes, not {type(payload).__name__}")
        if len(payload) > self.limits.max_frame_size:
            raise FrameTooLargeError(len(payload), self.limits.max_frame_size)
        return peer

    def send(self, peer_id: str, payload: bytes) -> bool:
        """Queue ``payload`` for ``peer_id`` without blocking.

        If the peer's queue is full the oldest queued frames are dropped (and counted); returns
        ``False`` when that happened. Raises :class:`UnknownPeerError`,
        :class:`FrameTooLargeError`, or :class:`TransportClosedError` after ``stop``."""
        peer = self._peer_for_send(peer_id, payload)
        dropped, dropped_bytes = peer.queue.push(payload)
        if dropped:
            peer.c.dropped += dropped
            peer.c.dropped_bytes += dropped_bytes
        return dropped == 0

    async def send_wait(self, peer_id: str, payload: bytes) -> None:
        """Queue ``payload`` for ``peer_id``, waiting while its queue is full (drops nothing)."""
        peer = self._peer_for_send(peer_id, payload)
        await peer.queue.push_wait(payload)

    # -- receiving ---------------------------------------------------------------------------

    async def recv(self) -> tuple[str, bytes]:
        """The next ``(peer_id, payload)`` received; raises :class:`TransportClosedError` once
        stopped and drained."""
        return await self._inbox.get()

    def recv_nowait(self) -> tuple[str, bytes] | None:
        """The next received frame if one is waiting, else ``None``."""
        return self._inbox.get_nowait()

    def __aiter__(self) -> Transport:
        return self

    async def __anext__(self) -> tuple[str, bytes]:
        try:
            return await self._inbox.get()
        except TransportClosedError:
            raise StopAsyncIteration from None

    # -- stats -------------------------------------------------------------------------------

    def stats(self, peer_id: str) -> PeerStats:
        """A snapshot of ``peer_id``'s counters."""
        peer = self._peers.get(peer_id)
        if peer is None:
            raise UnknownPeerError(f"unknown peer {peer_id!r}")
        return peer.snapshot()

    def all_stats(self) -> dict[str, PeerStats]:
        """Snapshots for every peer."""
        return {pid: p.snapshot() for pid, p in self._peers.items()}

    @property
    def rejections(self) -> RejectionStats:
        """Inbound connections refused so far."""
        return RejectionStats(self._rejected_handshakes, self._rejected_peers,
                              self._last_rejection)

    @property
    def inbox_size(self) -> tuple[int, int]:
        """Frames and bytes received and not yet taken by ``recv``."""
        return len(self._inbox.items), self._inbox.nbytes

    # -- internals: tasks ----------------------------------------------------------------------

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Every task handles its own errors; this is the last line that keeps a bug in one
            # connection from going unnoticed (it never takes the node down).
            log.error("transport %s: task %s failed", self.node_id, task.get_name(),
                      exc_info=task.exception())

    def _reject(self, err: TransportError) -> None:
        if isinstance(err, HandshakeError):
            self._rejected_handshakes += 1
        else:
            self._rejected_peers += 1
        self._last_rejection = err
        log.warning("transport %s: refused connection: %s", self.node_id, describe(err))

    # -- internals: accepting ----------------------------------------------------------------

    async def _accepted(self, tls: asyncio.BaseTransport, protocol: _ReaderProtocol, peername: Any) -> None:
        """An inbound connection whose handshake succeeded: its frames, once its certificate names
        a peer of this node's."""
        try:
            peer_id = peer_node_id(tls.get_extra_info("ssl_object"))
        except (PeerIdentityError, ValueError) as e:
            _abort(tls)
            self._reject(PeerRejectedError(f"{peername}: {e}"))
            return
        peer = self._peers.get(peer_id)
        if peer is None or self._state != _RUNNING:
            _abort(tls)
            self._reject(PeerRejectedError(
                f"{peername} presented node id {peer_id!r}, which is not in the peer set"))
            return
        _keepalive(tls)
        # At most one inbound connection per peer: the newest wins (the older one is most likely
        # the half-dead remains of a connection the peer has already given up on).
        if peer.inbound is not None:
            _abort(peer.inbound)
        peer.inbound = tls
        if peer.outbound is None:  # a restarted peer: dial it now, not after the backoff (up to 5 s)
            peer.backoff.reset()
            peer.heard.set()
        try:
            await self._read_frames(peer, protocol.reader)
        except MalformedFrameError as e:
            peer.c.frame_errors += 1
            peer.c.last_error = e
            log.warning("transport %s: closing connection from %s: %s", self.node_id,
                        peer_id, describe(e))
        except TransportClosedError:
            pass
        except (OSError, EOFError) as e:  # resets, TLS alerts (ssl.SSLError is an OSError)
            if peer.inbound is tls:
                log.info("transport %s: connection from %s lost: %s", self.node_id, peer_id,
                         describe(e))
        finally:
            _abort(tls)
            if peer.inbound is tls:
                peer.inbound = None

    async def _read_frames(self, peer: _Peer, reader: asyncio.StreamReader) -> None:
        decoder = FrameDecoder(self.limits.max_frame_size)
        c = peer.c
        while True:
            data = await reader.read(_READ_CHUNK)
            if not data:
                if decoder.pending:
                    raise MalformedFrameError(
                        f"stream ended inside a frame ({decoder.pending} bytes pending)")
                return
            frames = decoder.feed(data)
            for frame in frames:
                # Waits while the inbox is full: we stop reading, so TCP pushes back on the peer.
                await self._inbox.put(peer.id, frame)
                c.received += 1
                c.received_bytes += len(frame)
            if decoder.error is not None:
                raise decoder.error

    # -- internals: dialling -----------------------------------------------------------------

    def _start_dialer(self, peer: _Peer) -> None:
        if peer.address is None or (peer.dialer is not None and not peer.dialer.done()):
            return
        peer.dialer = self._spawn(self._dial_loop(peer), f"dial {peer.id}")

    async def _connect(self, peer: _Peer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        assert peer.address is not None
        host, port = peer.address
        lim = self.limits
        try:
            connected = await at_most(
                asyncio.open_connection(
                    host, port, ssl=self._client_ssl, server_hostname=peer.id,
                    ssl_handshake_timeout=lim.handshake_timeout, limit=_READ_LIMIT),
                lim.connect_timeout + lim.handshake_timeout,
            )
        except ssl.SSLError as e:
            raise HandshakeError(f"TLS handshake with {peer.id} at {host}:{port} failed: {e}") \
                from e
        if connected is None:
            raise asyncio.TimeoutError()  # as wait_for raised: the dial loop backs off and dials again
        reader, writer = connected
        try:
            # Hostname verification already matched the SAN; the CN must agree as well.
            got = peer_node_id(writer.get_extra_info("ssl_object"))
            if got != peer.id:
                raise PeerRejectedError(f"{host}:{port} presented node id {got!r}, "
                                        f"expected {peer.id!r}")
        except (PeerIdentityError, ValueError) as e:
            _abort(writer.transport)
            raise PeerRejectedError(f"{host}:{port}: {e}") from e
        except BaseException:
            _abort(writer.transport)
            raise
        _keepalive(writer.transport)
        writer.transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER)
        return reader, writer

    async def _dial_loop(self, peer: _Peer) -> None:
        loop = asyncio.get_running_loop()
        c = peer.c
        while self._state == _RUNNING:
            try:
                reader, writer = await self._connect(peer)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - unreachable peers are routine
                c.connect_failures += 1
                c.last_error = e
                level = logging.DEBUG if peer.failing else logging.INFO
                peer.failing = True
                log.log(level, "transport %s: cannot reach %s at %s: %s", self.node_id,
                        peer.id, peer.address, describe(e))
                await self._back_off(peer)
                continue
            peer.failing = False
            c.connects += 1
            if c.connects > 1:
                c.reconnects += 1
            peer.outbound = writer.transport
            started = loop.time()
            log.debug("transport %s: connected to %s", self.node_id, peer.id)
            try:
                await self._run_outbound(peer, reader, writer)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - whatever broke the connection, redial
                c.last_error = e
                log.info("transport %s: connection to %s lost: %s", self.node_id, peer.id,
                         describe(e))
            finally:
                peer.outbound = None
                _abort(writer.transport)
            if loop.time() - started >= self.backoff_policy.stable_after:
                peer.backoff.reset()
            await self._back_off(peer)

    @staticmethod
    async def _back_off(peer: _Peer) -> None:
        """Waits the peer's next backoff delay, or less if it connects to us meanwhile."""
        peer.heard.clear()
        await at_most(peer.heard.wait(), peer.backoff.next())

    async def _run_outbound(self, peer: _Peer, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        pump = asyncio.ensure_future(self._pump(peer, writer))
        watch = asyncio.ensure_future(self._watch(reader))
        try:
            done, _ = await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            pump.cancel()
            watch.cancel()
            await asyncio.gather(pump, watch, return_exceptions=True)
        for task in done:
            task.result()  # re-raise what ended the connection, if anything

    async def _watch(self, reader: asyncio.StreamReader) -> None:
        """Return when the acceptor closes the connection (it never sends application data)."""
        if await reader.read(1):
            raise MalformedFrameError("unexpected data from the accepting side")
        raise ConnectionResetError("closed by the peer")

    async def _pump(self, peer: _Peer, writer: asyncio.StreamWriter) -> None:
        q, c = peer.queue, peer.c
        while True:
            batch = await q.take(self.limits.write_batch_bytes)
            parts: list[bytes] = []
            nbytes = 0
            for frame in batch:
                parts.append(HEADER.pack(len(frame)))
                parts.append(frame)
                nbytes += len(frame)
            writer.write(b"".join(parts))
            # Blocks while the peer does not read: the queue then fills and drops its oldest.
            await writer.drain()
            c.sent += len(batch)
            c.sent_bytes += nbytes


def _check_contexts(server_ssl: ssl.SSLContext, client_ssl: ssl.SSLContext) -> None:
    if not isinstance(server_ssl, ssl.SSLContext) or server_ssl.protocol != ssl.PROTOCOL_TLS_SERVER:
        raise InvalidInputError("server_ssl must be a PROTOCOL_TLS_SERVER context "
                                "(see ledgercore.net.pki.server_context)")
    if server_ssl.verify_mode != ssl.CERT_REQUIRED:
        raise InvalidInputError("server_ssl must require client certificates (CERT_REQUIRED)")
    if not isinstance(client_ssl, ssl.SSLContext) or client_ssl.protocol != ssl.PROTOCOL_TLS_CLIENT:
        raise InvalidInputError("client_ssl must be a PROTOCOL_TLS_CLIENT context "
                                "(see ledgercore.net.pki.client_context)")
    if client_ssl.verify_mode != ssl.CERT_REQUIRED or not client_ssl.check_hostname:
        raise InvalidInputError("client_ssl must verify the server (CERT_REQUIRED, check_hostname)")
