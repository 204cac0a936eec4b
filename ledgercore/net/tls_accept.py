"""Accepting TLS connections with every refusal seen: the node-to-node transport and the client API
both listen this way.

asyncio's own TLS server (``create_server(ssl=...)``) drops a connection whose handshake fails
(no certificate, another CA's, an expired one) and logs it at debug level only. A consortium node
must let its operator see refused peers and clients, so each accepted socket completes its
handshake in its own task here, and a failure goes to the caller's ``refuse``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

from ledgercore.net.errors import HandshakeError

__all__ = ["ACCEPT_LOG_S", "LogThrottle", "accept_tls", "cancel_all", "describe", "listen"]

log = logging.getLogger(__name__)

P = TypeVar("P", bound=asyncio.BaseProtocol)

ACCEPT_LOG_S = 10.0
"""Seconds between two logs of a failed ``accept``: one that fails for want of file descriptors
fails again ten times a second until one is freed, and each line of a flood of them says nothing new."""


class LogThrottle:
    """When a log line that may repeat in a flood is due: the first at once, then at most one per
    ``interval`` seconds; the ones in between are counted, for the next logged one to say."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval, self._clock = interval, clock
        self._next = -math.inf
        self._held = 0

    def due(self) -> int | None:
        """How many were held back since the last one logged, if this one is to be logged now;
        ``None`` (and it is counted) if not."""
        now = self._clock()
        if now < self._next:
            self._held += 1
            return None
        held, self._held, self._next = self._held, 0, now + self._interval
        return held


def describe(e: BaseException) -> str:
    """``Type: message``, or just ``Type`` for exceptions without one (ConnectionResetError())."""
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


async def listen(host: str | None, port: int) -> socket.socket:
    """A non-blocking listening TCP socket on ``host:port`` (the first address ``host`` resolves
    to; all interfaces for ``None`` or ``""``; a free port for 0), with SO_REUSEADDR so that a
    restarted node takes its port back at once."""
    infos = await asyncio.get_running_loop().getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)
    family, _, _, _, sockaddr = infos[0]
    sock = socket.create_server(sockaddr, family=family, backlog=128)
    sock.setblocking(False)
    return sock


async def cancel_all(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancels ``tasks`` (a listener and its connections) and waits until every one has ended."""
    tasks = list(tasks)  # a set that the tasks' done callbacks shrink meanwhile
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def accept_tls(
    name: str,
    sock: socket.socket,
    ssl_context: ssl.SSLContext,
    protocol_factory: Callable[[], P],
    *,
    handshake_timeout: float,
    max_pending: int,
    refuse: Callable[[HandshakeError], None],
    spawn: Callable[[Coroutine[Any, Any, None], str], object],
    connected: Callable[[asyncio.BaseTransport, P, Any], Awaitable[None]] | None = None,
) -> None:
    """Accepts connections on the listening ``sock`` until cancelled.

    Each one's TLS handshake runs in a task of its own (made by ``spawn``, which owns and cancels
    it), at most ``max_pending`` at once; the protocol ``protocol_factory`` made then has the
    connection, and ``connected(transport, protocol, peername)``, if given, runs in that task. A
    failed handshake is closed and handed to ``refuse``. A connection over the limit makes room
    by dropping the one that has waited longest (also handed to ``refuse``): refusing the newest
    instead let anyone who can reach the port, certificate or not, hold every slot with idle
    connections and keep peers and clients out for as long as they liked. ``name`` prefixes the
    log of a failed ``accept`` (say, out of file descriptors), after which it backs off and goes
    on; that log says so at most once per :data:`ACCEPT_LOG_S`."""
    loop = asyncio.get_running_loop()
    waiting: dict[_Pending, None] = {}  # handshakes not done, oldest first
    accept_failures = LogThrottle(ACCEPT_LOG_S)

    async def handshake(slot: _Pending) -> None:
        conn, peername = slot.conn, slot.peername
        try:
            if slot.dropped:  # made room for a newer one before this task ran
                conn.close()
                return
            slot.task = asyncio.current_task()
            protocol = protocol_factory()
            # Returns once the peer's certificate is verified against the consortium CA, raises if
            # not; asyncio owns the socket from here and closes it on failure.
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol, conn, ssl=ssl_context, ssl_handshake_timeout=handshake_timeout)
        except asyncio.CancelledError:
            conn.close()
            if not slot.dropped:  # the listener is stopping
                raise
            return
        except Exception as e:  # noqa: BLE001 - any handshake failure refuses the connection
            conn.close()  # closed already, unless the protocol could not be made
            refuse(HandshakeError(f"TLS handshake with {peername} failed: {describe(e)}"))
            return
        finally:
            waiting.pop(slot, None)
        if connected is not None:
            await connected(transport, protocol, peername)

    while True:
        try:
            conn, peername = await loop.sock_accept(sock)
        except OSError as e:
            held = accept_failures.due()
            if held is not None:
                more = f" ({held} more failed since the last logged)" if held else ""
                log.error("%s: accept failed: %s%s", name, e, more)
            await asyncio.sleep(0.1)
            continue
        if len(waiting) >= max_pending:
            oldest = next(iter(waiting))
            del waiting[oldest]
            oldest.dropped = True
            if oldest.task is not None:
                oldest.task.cancel()
            refuse(HandshakeError(
                f"{oldest.peername}: too many pending handshakes; dropped, the longest waiting, for a newer connection"
            ))  # fmt: skip
        slot = _Pending(conn, peername)
        waiting[slot] = None
        spawn(handshake(slot), f"accept {peername}")


class _Pending:
    """One accepted connection whose handshake is not done."""

    __slots__ = ("conn", "dropped", "peername", "task")

    def __init__(self, conn: socket.socket, peername: Any) -> None:
        self.conn, self.peername = conn, peername
        self.task: asyncio.Task[Any] | None = None
        self.dropped = False
