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
import socket
import ssl
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

from ledgercore.net.errors import HandshakeError

__all__ = ["accept_tls", "cancel_all", "describe", "listen"]

log = logging.getLogger(__name__)

P = TypeVar("P", bound=asyncio.BaseProtocol)


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
    failed handshake, or one over the limit, is closed and handed to ``refuse``. ``name`` prefixes
    the log of a failed ``accept`` (say, out of file descriptors), after which it backs off and
    goes on."""
    loop = asyncio.get_running_loop()
    pending = 0

    async def handshake(conn: socket.socket, peername: Any) -> None:
        nonlocal pending
        try:
            protocol = protocol_factory()
            # Returns once the peer's certificate is verified against the consortium CA, raises if
            # not; asyncio owns the socket from here and closes it on failure.
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol, conn, ssl=ssl_context, ssl_handshake_timeout=handshake_timeout)
        except Exception as e:  # noqa: BLE001 - any handshake failure refuses the connection
            conn.close()  # closed already, unless the protocol could not be made
            refuse(HandshakeError(f"TLS handshake with {peername} failed: {describe(e)}"))
            return
        finally:
            pending -= 1
        if connected is not None:
            await connected(transport, protocol, peername)

    while True:
        try:
            conn, peername = await loop.sock_accept(sock)
        except OSError as e:
            log.error("%s: accept failed: %s", name, e)
            await asyncio.sleep(0.1)
            continue
        if pending >= max_pending:
            conn.close()
            refuse(HandshakeError(f"{peername}: too many pending handshakes"))
            continue
        pending += 1
        spawn(handshake(conn, peername), f"accept {peername}")
