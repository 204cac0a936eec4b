"""The node's client API: HTTP/JSON over aiohttp, served over mutual TLS.

The node presents its own certificate and takes only clients whose certificate the consortium CA
issued (a client certificate, OU ``client``, or a node's): a client without one, with another CA's
or with an expired one fails the handshake and gets no answer at all; the node logs a warning
naming the client's address and why.

Routes (byte fields are lowercase hex):

* ``POST /tx`` — body: one encoded transaction. 202 ``{"txid"}`` once admitted to the mempool; with
  ``?wait=commit``, 200 ``{"txid", "height", "receipt": {"ok", "error"}}`` once committed (also at once
  for one committed before). A block commits a transaction whose receipt failed (a replayed nonce, an
  unknown contract or method, a key already anchored, a contract's error): ``"ok": false`` and the
  ``"error"`` say so, as ``GET /tx/{txid}``'s receipt does. Any node accepts (followers forward).
  A bad signature, or a timestamp further than the node's ``tx_time_window_ms`` from its clock
  (600 s by default), is a 400 naming it.
* ``POST /txs`` — body: a batch of encoded transactions as one canonical value, a list of byte
  strings (``codec.encode_value([raw, ...])``, at most :data:`~ledgercore.node.node.MAX_SUBMIT_BATCH`).
  One decode and one signature-check batch for all of them. 202 ``{"txids": [hex], "rejected":
  [{"index", "error"}]}`` once admitted (a rejected one's signature failed, or its timestamp is out
  of the node's window; the rest are admitted);
  with ``?wait=commit``, 200 with ``"heights"`` and ``"receipts"`` (``{"ok", "error"}`` each) too,
  aligned with ``"txids"`` (``null`` where rejected), once all are committed.
  A batch in which one transaction does not decode is refused whole (400, naming its position).
* ``GET /status`` — ``{"node", "role", "term", "leader", "height", "block_hash", "state_root"}``.
* ``GET /block/{h}`` — ``{"header": {...}, "txids": [hex]}``.
* ``GET /block/{h}/receipts`` — ``{"height", "receipts_root", "record"}``: the block's receipts as
  stored (hex), which the header's ``receipts_root`` hashes; ``receipts.verify_receipt`` proves
  one transaction's outcome with it.
* ``GET /tx/{txid}`` — ``{"txid", "height", "index", "tx_count", "receipt": {"ok", "error", "events"},
  "proof": [hex], "tx_root", "raw"}``: ``proof`` places ``txid`` at leaf ``index`` of the
  ``tx_count``-leaf tree whose root is the block's ``tx_root`` (``merkle.verify_inclusion``).
* ``GET /state/{contract}/{key}`` — ``{"value": hex | null, "version": {"height", "index"} | null}``;
  ``key`` is the rest of the path (it may hold ``/``), percent-decoded to bytes (``%ff`` is the byte
  0xff; a ``%`` not followed by two hex digits is refused).

Each route takes only its own query parameter, once: ``wait`` on the two POSTs, ``read`` on the three
reads, none on ``/status``; a parameter given twice, or one the route does not know, is a 400 naming
it (the first of two ``wait=`` won silently, and a mistyped ``wiat=commit`` read as no wait).

The three reads (``/block``, ``/tx``, ``/state``) answer from what this node has applied. With
``?read=linearizable`` they first wait until it has applied everything the cluster had committed when
the request came (Raft read-index through the leader): a follower then answers as the leader would.

Every error is JSON ``{"error": message}``: 400 for bad input (bad hex, bad height, a transaction
that does not decode or whose signature fails, a contract name no transaction can carry, a key
over 446 bytes), 404 for what the ledger does not hold (and unknown
routes), 405 for a wrong method, 408 for a body not sent within :data:`BODY_S` (the
connection then closes), 413 for a body over its route's limit (:data:`MAX_BODY`, or
:data:`MAX_BATCH_BODY` for ``/txs``) as soon as that much of it has arrived, chunked or not (the
connection then closes), 415 for a compressed body (``Content-Encoding`` other than ``identity``:
bodies are never unpacked), 417 for an ``Expect`` other than ``100-continue``; an
``Expect: 100-continue`` whose head already shows a 400, 413 or 415 gets that answer instead of
``100 Continue``, and no body is read; 503 with ``Retry-After`` when
the node cannot admit now (no leader known, mempool full, or bodies of :data:`MAX_BODIES_BYTES`
being read already) or has no linearizable read point (no leader answered), 504 when a commit wait times out (30 s after the transaction's block is due:
after ``block_ms``). A request aiohttp's own parser refuses before any route sees it (a malformed
request line, header or chunk size) gets aiohttp's plain-text 400 instead.

Connections: at most :data:`MAX_PENDING_HANDSHAKES` in their TLS handshake and
:data:`MAX_CONNECTIONS` past it; one over either closes the oldest waiting handshake, or the
connection idle longest, never the new one. An idle one closes after :data:`IDLE_S`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
import urllib.parse
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, cast

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from aiohttp.web_urldispatcher import _default_expect_handler

from ..codec import decode_value, list_length
from ..errors import InvalidInputError, LedgerError, NotFoundError
from ..net.errors import HandshakeError
from ..net.tls_accept import LogThrottle, accept_tls, cancel_all, describe, listen
from ..transaction import MAX_TX_SIZE, txid_from_hex
from .node import check_batch_size

if TYPE_CHECKING:
    from ..block import BlockHeader
    from .node import Node, Submitted

__all__ = ["MAX_BATCH_BODY", "MAX_BODIES_BYTES", "MAX_BODY", "MAX_CONNECTIONS", "RETRY_AFTER_S", "make_app", "serve"]

log = logging.getLogger("ledgercore.node.http")

MAX_BODY = MAX_TX_SIZE + 64 * 1024
"""Largest ``POST /tx`` body accepted: the largest transaction plus a margin."""
MAX_BATCH_BODY = 32 << 20
"""Largest ``POST /txs`` body accepted."""
RETRY_AFTER_S = 1
"""Seconds a 503 answer asks the client to wait before trying again."""
SHUTDOWN_S = 1.0
"""Seconds a stopping node gives requests still in flight (a half-sent body waits no longer)."""
HANDSHAKE_TIMEOUT_S = 10.0
"""Seconds a client has to complete its TLS handshake."""
MAX_PENDING_HANDSHAKES = 64
"""Handshakes in progress at once; a connection over this drops the longest-waiting one (logged)."""
IDLE_S = 60.0
"""Seconds a connection may wait to send its first or next request before the node closes it."""
MAX_CONNECTIONS = 256
"""Client connections held at once, past their handshake (those waiting in it are
:data:`MAX_PENDING_HANDSHAKES` more): well under a typical limit of 1024 file descriptors, which
the node shares with its peers and its store. One more closes the connection idle longest (or,
with none idle, the one whose request has run longest), never the new one: else a client holding
every slot with idle connections kept all the others out, and past the descriptor limit the node
could accept no one at all."""
EVICTION_LOG_S = 10.0
"""Seconds between two warnings that :data:`MAX_CONNECTIONS` made the node close a connection."""
BODY_S = 30.0
"""Seconds a client has to send a request's whole body; then it gets a 408 and the connection closes."""
MAX_BODIES_BYTES = 256 << 20
"""Bytes of request bodies the node reads at once, over all connections: a body that would take it
past this gets a 503 with ``Retry-After``. Else every connection could hold a 32 MiB body it sends
slowly (24 of them held 800 MB), beside the mempool's own bound."""

_HEIGHT_RE = re.compile(r"[0-9]{1,20}")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_ServerHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class _RequestLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's log of requests it could not handle: HTTP that does not parse (an overlong URL,
    a bad Content-Length or chunk) is the client's fault, a warning without a traceback, so that
    a client cannot fill the node's log with tracebacks at ERROR. Anything else keeps its
    traceback."""

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):  # its message may span lines and quote the bytes
            why = " ".join(str(exc_info.message).split())[:200]
            self.warning("%s: %d %s", msg % args if args else msg, exc_info.code, why)  # type: ignore[operator]
        else:
            super().exception(msg, *args, exc_info=exc_info, **kwargs)


class _TLSSite(web.BaseSite):
    """aiohttp's TCP site, accepting through :func:`~ledgercore.net.tls_accept.accept_tls`:
    TCPSite's server drops a refused client's handshake silently, and the operator must see
    refused clients in the node's log."""

    __slots__ = ("_connections", "_host", "_port", "_sock", "_tasks")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, ssl_context: ssl.SSLContext) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host, self._port = host, port
        self._sock: socket.socket | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._connections = _Connections()

    @property
    def name(self) -> str:
        return f"https://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server, tls = self._runner.server, self._ssl_context
        assert server is not None and tls is not None  # set up by the runner, given by serve()
        # Each connection's protocol takes the server's request handler when it is made: before any.
        server.request_handler = self._connections.track(server.request_handler)
        self._sock = await listen(self._host, self._port)
        self._spawn(accept_tls(
            "client API", self._sock, tls, server, handshake_timeout=HANDSHAKE_TIMEOUT_S,
            max_pending=MAX_PENDING_HANDSHAKES, refuse=_refused, spawn=self._spawn,
            connected=self._connections.connected,
        ), "client API listener")  # fmt: skip

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Stops accepting; the runner then closes the connections the server holds."""
        await cancel_all(self._tasks)
        if self._sock is not None:
            self._sock.close()
        await super().stop()


class _Held:
    """One client connection past its handshake: since when it has been idle (or, while
    ``busy``, running its request)."""

    __slots__ = ("busy", "peername", "since", "sock", "transport")

    def __init__(self, transport: asyncio.Transport, peername: Any, now: float) -> None:
        self.transport, self.peername, self.since = transport, peername, now
        self.sock = transport.get_extra_info("socket")  # now: a closed TLS transport may no longer say
        self.busy = 0

    def gone(self) -> bool:
        """Whether its socket is closed: a connection closing gracefully (TLS close_notify) holds its
        file descriptor until the client answers, or for up to 30 s if it does not."""
        return self.sock is None or self.sock.fileno() == -1


class _Connections:
    """The client connections past their handshake, at most :data:`MAX_CONNECTIONS`: one more
    closes the one idle longest, or with none idle the one whose request has run longest, and
    never the newest, so that a client opening connections without end cannot hold every slot
    (nor use up the node's file descriptors) and keep other clients out. A connection counts as
    busy from the moment its request's head has arrived until its handler has answered."""

    def __init__(self) -> None:
        self._held: dict[asyncio.BaseProtocol, _Held] = {}
        self._closed_log = LogThrottle(EVICTION_LOG_S)

    def track(self, handler: _ServerHandler) -> _ServerHandler:
        """``handler`` (the server's request handler), marking each request's connection busy
        while it runs."""

        async def tracked(request: web.BaseRequest) -> web.StreamResponse:
            held = self._held.get(request.protocol)
            if held is None:  # closed to make room meanwhile
                return await handler(request)
            loop = asyncio.get_running_loop()
            held.busy += 1
            held.since = loop.time()
            try:
                return await handler(request)
            finally:
                held.busy -= 1
                held.since = loop.time()

        return tracked

    async def connected(self, transport: asyncio.BaseTransport, protocol: asyncio.BaseProtocol, peername: Any) -> None:
        """Holds a connection whose handshake is done, closing another to make room if need be."""
        now = asyncio.get_running_loop().time()
        for p in [p for p, h in self._held.items() if h.gone()]:
            del self._held[p]
        while self._held and len(self._held) >= MAX_CONNECTIONS:
            # Those already closing first (done with, their descriptor not yet free), then idle ones.
            p, victim = min(
                self._held.items(), key=lambda ph: (not ph[1].transport.is_closing(), ph[1].busy > 0, ph[1].since)
            )
            del self._held[p]
            closing = victim.transport.is_closing()
            victim.transport.abort()  # at once: a graceful TLS close keeps the descriptor until the client answers
            held = self._closed_log.due()
            if held is not None:
                log.warning(
                    "client API: %d connections open: closed %s, %s %.1f s, for a newer one%s", MAX_CONNECTIONS,
                    victim.peername, "closing" if closing else "in a request for" if victim.busy else "idle for",
                    now - victim.since, f" ({held} more closed since the last logged)" if held else "",
                )  # fmt: skip
        self._held[protocol] = _Held(cast(asyncio.Transport, transport), peername, now)


def _refused(err: HandshakeError) -> None:
    log.warning("client API: refused connection: %s", describe(err))


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _not_ready_error() -> type[Exception]:
    from .node import NotReadyError

    return NotReadyError


def _http_error(request: web.BaseRequest, exc: web.HTTPException) -> web.Response:
    """aiohttp's (or a route's) HTTP error as JSON."""
    reason = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
    if exc.status == 404:
        reason = f"no route {request.method} {request.path}"
    elif exc.status == 405:
        reason = f"method {request.method} not allowed on {request.path}"
    headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
    answer = _error(exc.status, reason, headers)
    if exc.status in (408, 413):  # the rest of the body may still come: it must not read as a request
        answer.force_close()
    return answer


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turns every failure into a JSON error with the right status."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_error(request, exc)
    except NotFoundError as exc:
        return _error(404, str(exc))
    except InvalidInputError as exc:
        return _error(400, str(exc) or type(exc).__name__)
    except (TimeoutError, asyncio.TimeoutError):
        return _error(504, "timed out waiting for the transaction to commit")
    except ConnectionResetError:  # the client went away mid-request: nothing to log, no one to answer
        log.debug("request %s %s: the client closed the connection", request.method, request.path)
        return _error(400, "connection closed by the client")
    except LedgerError as exc:
        if isinstance(exc, _not_ready_error()):
            return _error(503, str(exc) or "not ready", {"Retry-After": str(RETRY_AFTER_S)})
        log.exception("request %s %s failed", request.method, request.path)
        return _error(500, f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # an answer, not a dropped connection, for anything unforeseen
        log.exception("request %s %s failed", request.method, request.path)
        return _error(500, f"internal error: {type(exc).__name__}")


class _BodyBytes:
    """Bytes of request bodies being read, over all of an app's connections (``MAX_BODIES_BYTES``)."""

    __slots__ = ("held",)

    def __init__(self) -> None:
        self.held = 0

    def take(self, size: int) -> None:
        """Counts ``size`` more bytes read; 503 where they would pass the bound (nothing counted)."""
        if self.held + size > MAX_BODIES_BYTES:
            raise web.HTTPServiceUnavailable(
                text=f"the node is reading {self.held} bytes of request bodies, {size} more would pass its "
                f"bound of {MAX_BODIES_BYTES}: try again",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        self.held += size


class _Route:
    """What a route takes besides its path: the query parameters it knows, and the largest body
    (``None``: it reads none), counted against the app's ``bodies`` while it is read."""

    __slots__ = ("bodies", "limit", "params")

    def __init__(self, params: tuple[str, ...] = (), limit: int | None = None, bodies: _BodyBytes | None = None) -> None:
        self.params, self.limit, self.bodies = params, limit, bodies

    def check_query(self, request: web.BaseRequest) -> None:
        """A parameter given twice, or one this route does not know, is refused by name: the first
        of two ``wait=`` won silently, and a mistyped ``wiat=commit`` read as no wait at all."""
        seen: set[str] = set()
        for name, _ in request.query.items():  # keys() lists a name once however often it comes
            if name in seen:
                raise InvalidInputError(f"query parameter {name!r:.40} given more than once: give it once")
            seen.add(name)
            if name not in self.params:
                known = ", ".join(self.params) if self.params else "none"
                raise InvalidInputError(
                    f"unknown query parameter {name!r:.40} for {request.method} {request.path:.60} (it takes: {known})"
                )

    def checked(self, handler: Handler) -> Handler:
        """``handler``, run once the query is checked."""

        async def checked(request: web.Request) -> web.StreamResponse:
            self.check_query(request)
            return await handler(request)

        return checked

    async def body(self, request: web.Request, what: str) -> bytes:
        """The request's body (``what`` it should hold, for the error when empty), refused (413)
        as soon as more than this route's limit has arrived: a chunked one has no Content-Length
        to check first, and the app's own limit is the largest route's (a chunked ``POST /tx`` was
        read up to 32 MiB before its limit applied)."""
        limit, bodies = self.limit, self.bodies
        assert limit is not None and bodies is not None, "a route that reads a body has a limit and a count"
        _check_body_head(request, limit)
        # Counted as it arrives, not as the head announces it: eight heads announcing 32 MiB each,
        # their bodies never sent, would otherwise keep every other client's POST out.
        taken = 0

        async def read() -> bytes:
            nonlocal taken
            chunks = []
            while chunk := await request.content.readany():
                if taken + len(chunk) > limit:
                    raise _too_large(limit, taken + len(chunk))
                bodies.take(len(chunk))
                taken += len(chunk)
                chunks.append(chunk)
            return b"".join(chunks)

        try:
            # Else a client sending a byte now and then would hold the connection for ever.
            body = await asyncio.wait_for(read(), BODY_S)
        except RequestPayloadError as exc:  # a chunked body that does not parse
            raise InvalidInputError(f"bad request body: {exc}") from None
        except asyncio.TimeoutError:
            raise web.HTTPRequestTimeout(text=f"the request body did not arrive within {BODY_S:g} s") from None
        finally:
            bodies.held -= taken
        if not body:
            raise InvalidInputError(f"empty body: expected {what}")
        return body

    async def expect(self, request: web.Request) -> web.StreamResponse | None:
        """The answer to an ``Expect`` header, before the body is sent (and before the middleware
        runs): an error the head already shows instead of ``100 Continue``, which would have the
        client upload a body only to be refused; any expectation but ``100-continue`` is a 417."""
        try:
            self.check_query(request)
            if self.limit is not None:
                _check_body_head(request, self.limit)
            await _default_expect_handler(request)
        except web.HTTPExpectationFailed as exc:
            return _error(417, exc.text or "unknown Expect")
        except (web.HTTPException, InvalidInputError) as exc:
            if isinstance(exc, web.HTTPException):
                answer = _http_error(request, exc)
            else:
                answer = _error(400, str(exc))
            answer.force_close()  # no body follows; one sent anyway must not read as a request
            return answer
        return None


def _check_body_head(request: web.BaseRequest, limit: int) -> None:
    """What the headers already say is wrong with the body: a ``Content-Encoding`` (415) or a
    ``Content-Length`` over ``limit`` (413)."""
    encoding = request.headers.get("Content-Encoding", "identity")
    if encoding.strip().lower() != "identity":
        # Never unpacked (auto_decompress is off): a 1 MB gzip body unpacks to a gigabyte.
        raise web.HTTPUnsupportedMediaType(
            text=f"Content-Encoding {encoding!r:.40} is not accepted: send the body as is"
        )
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit, request.content_length)


def _too_large(limit: int, size: int) -> web.HTTPRequestEntityTooLarge:
    return web.HTTPRequestEntityTooLarge(
        max_size=limit, actual_size=size, text=f"request body too large (limit {limit} bytes)"
    )


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _state_key(raw: str) -> bytes:
    """A ``/state`` key from its raw path: percent-decoded to bytes (an escape that is not UTF-8
    names those bytes, not its own text), and a ``%`` not followed by two hex digits refused."""
    bad = _BAD_ESCAPE.search(raw)
    if bad is not None:
        raise InvalidInputError(
            f"bad percent-escape {raw[bad.start():bad.start() + 3]!r} in the key: '%' takes two hex digits (a '%' itself is %25)"
        )  # fmt: skip
    return urllib.parse.unquote_to_bytes(raw)


def _batch(body: bytes) -> list[bytes]:
    """A ``POST /txs`` body decoded: a list of byte strings."""
    raws = decode_value(body)
    if not isinstance(raws, list) or not all(isinstance(r, bytes) for r in raws):
        raise InvalidInputError("the body must encode a list of byte strings (codec.encode_value([raw, ...]))")
    return raws


_OK = {"ok": True, "error": None}


def _receipts(out: Submitted) -> list[dict[str, Any] | None]:
    """A waited-for batch's receipts as ``POST /txs?wait=commit`` answers them, aligned with its
    txids: ``null`` where rejected. One shared object for every ok one: no step per transaction."""
    receipts: list[dict[str, Any] | None] = [_OK] * len(out.txids)
    for i, error in (out.failed or {}).items():
        receipts[i] = {"ok": False, "error": error}
    for i in out.rejected:
        receipts[i] = None
    return receipts


def _header_json(h: BlockHeader) -> dict[str, Any]:
    return {
        "height": h.height, "hash": h.hash.hex(), "prev_hash": h.prev_hash.hex(), "tx_root": h.tx_root.hex(),
        "state_root": h.state_root.hex(), "history_root": h.history_root.hex(), "timestamp": h.timestamp,
        "receipts_root": h.receipts_root.hex(),
        "tx_count": h.tx_count, "proposer": h.proposer.hex(), "consensus": h.consensus.hex(),
        "suite": h.suite, "chain_id": h.chain_id,
    }  # fmt: skip


def _parse_height(text: str) -> int:
    if not _HEIGHT_RE.fullmatch(text):
        raise InvalidInputError(f"bad height {text!r}: expected a non-negative decimal integer")
    return int(text)


def make_app(node: Node) -> web.Application:
    """The client API application serving ``node`` (which must be started before requests arrive)."""
    bodies = _BodyBytes()
    tx_route, txs_route = _Route(("wait",), MAX_BODY, bodies), _Route(("wait",), MAX_BATCH_BODY, bodies)

    def _wait_param(request: web.Request) -> bool:
        wait = request.query.get("wait", "")
        if wait not in ("", "commit"):
            raise InvalidInputError(f"bad wait={wait!r}: expected 'commit' or nothing")
        return wait == "commit"

    async def _read_point(request: web.Request) -> None:
        read = request.query.get("read", "local")
        if read not in ("local", "linearizable"):
            raise InvalidInputError(f"bad read={read!r}: expected 'linearizable' or 'local'")
        if read == "linearizable":
            await node.read_barrier()

    async def post_tx(request: web.Request) -> web.Response:
        wait = _wait_param(request)
        raw = await tx_route.body(request, "one encoded transaction")
        out = await node.submit_one(raw, wait=wait)
        txid = out.txids[0].hex()
        if out.heights is None:
            return web.json_response({"txid": txid}, status=202)
        error = out.failed.get(0) if out.failed else None
        answer = {"txid": txid, "height": out.heights[0], "receipt": {"ok": error is None, "error": error}}
        return web.json_response(answer, status=200)

    async def post_txs(request: web.Request) -> web.Response:
        wait = _wait_param(request)
        body = await txs_route.body(request, "a list of encoded transactions (codec.encode_value)")
        # Counted before decoding: 32 MB holds millions of empty strings, whose decoding on the
        # event loop would hold up Raft long enough to lose the leadership.
        check_batch_size(list_length(body) or 0)
        raws = await asyncio.to_thread(_batch, body)
        del body  # not held beside its transactions while a commit is waited for
        out = await node.submit_many(raws, wait=wait)
        answer: dict[str, Any] = {
            "txids": [t.hex() for t in out.txids],
            "rejected": [{"index": i, "error": why} for i, why in sorted(out.rejected.items())],
        }
        if out.heights is None:
            return web.json_response(answer, status=202)
        return web.json_response({**answer, "heights": out.heights, "receipts": _receipts(out)}, status=200)

    async def get_status(request: web.Request) -> web.Response:
        return web.json_response(node.status())

    def _block(height: int) -> dict[str, Any]:
        block = node.ledger.block(height)
        return {"header": _header_json(block.header), "txids": [t.hex() for t in block.txids]}

    async def get_block(request: web.Request) -> web.Response:
        height = _parse_height(request.match_info["height"])
        await _read_point(request)
        return web.json_response(await asyncio.to_thread(_block, height))

    def _block_receipts(height: int) -> dict[str, Any]:
        block = node.ledger.block(height)
        return {"height": height, "receipts_root": block.header.receipts_root.hex(), "record": block.receipts_record.hex()}

    async def get_block_receipts(request: web.Request) -> web.Response:
        height = _parse_height(request.match_info["height"])
        await _read_point(request)
        return web.json_response(await asyncio.to_thread(_block_receipts, height))

    def _tx(txid: bytes) -> dict[str, Any]:
        ledger = node.ledger
        rec = ledger.tx(txid)
        r = rec.receipt
        return {
            "txid": txid.hex(), "height": rec.height, "index": rec.index, "tx_count": rec.tx_count,
            "receipt": {"ok": r.ok, "error": r.error, "events": [[name, data.hex()] for name, data in r.events]},
            "proof": [p.hex() for p in rec.proof], "tx_root": ledger.header(rec.height).tx_root.hex(),
            "raw": rec.tx.encode().hex(),
        }  # fmt: skip

    async def get_tx(request: web.Request) -> web.Response:
        txid = txid_from_hex(request.match_info["txid"])
        await _read_point(request)
        return web.json_response(await asyncio.to_thread(_tx, txid))

    async def get_state(request: web.Request) -> web.Response:
        # The key is percent-decoded from the raw path to bytes: any key a contract can write is
        # readable, and an escape that is not UTF-8 names those bytes, not its own text.
        contract, key = request.match_info["contract"], _state_key(request.rel_url.raw_path.split("/", 3)[3])
        await _read_point(request)
        found = node.ledger.get_versioned(contract, key)
        if found is None:
            return web.json_response({"value": None, "version": None})
        value, height, index = found
        return web.json_response({"value": value.hex(), "version": {"height": height, "index": index}})

    app = web.Application(client_max_size=MAX_BATCH_BODY, middlewares=[_json_errors])
    router = app.router
    read = _Route(("read",))
    for add, path, handler, route in [
        (router.add_post, "/tx", post_tx, tx_route), (router.add_post, "/txs", post_txs, txs_route),
        (router.add_get, "/status", get_status, _Route()), (router.add_get, "/block/{height}", get_block, read),
        (router.add_get, "/block/{height}/receipts", get_block_receipts, read),
        (router.add_get, "/tx/{txid}", get_tx, read), (router.add_get, "/state/{contract}/{key:.+}", get_state, read),
    ]:  # fmt: skip
        # Every route refuses an unknown Expect as JSON, and before 100 Continue what the head shows.
        add(path, route.checked(handler), expect_handler=route.expect)
    return app


async def serve(node: Node, host: str | None = None, port: int | None = None) -> web.AppRunner:
    """Starts the client API for ``node`` on ``config.client_host:client_port`` (or the given
    address; port 0 picks a free one), over mutual TLS with the node's certificate (``config.tls``).
    Stop it with ``await runner.cleanup()``."""
    tls = node.config.tls.server_context()  # before anything listens: bad files are a CertificateFileError
    runner = web.AppRunner(
        make_app(node), access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_S, auto_decompress=False,
        keepalive_timeout=IDLE_S,
        logger=_RequestLog(logging.getLogger("ledgercore.node.http.requests"), {}),
    )  # fmt: skip
    await runner.setup()
    site = _TLSSite(
        runner, node.config.client_host if host is None else host,
        node.config.client_port if port is None else port, tls,
    )  # fmt: skip
    await site.start()
    return runner
