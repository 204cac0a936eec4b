"""A client for a node's HTTP/JSON API (``ledgercore.node.http``): the standard library's HTTP,
and ledgercore's codec for batches. Connections are kept open between requests (one per thread
making requests at once), so that a TLS handshake is paid once, not per request.

Nodes serve the API over mutual TLS: the client trusts the consortium CA only and presents a
certificate it issued (``init-cluster`` writes one to ``D/client``):

>>> c = Client("https://127.0.0.1:7101", tls=TLSFiles.in_dir("D/client", stem="client"))
>>> c.submit(tx.encode())            # {"txid": hex, "height": h, "receipt": {"ok", "error"}} once committed
>>> c.submit_many([t.encode() for t in txs])   # {"txids", "rejected", "heights", "receipts"}: one request
>>> c.tx(txid)["proof"]
>>> rec = c.tx(txid); header = header_of(c.block(rec["height"]), rec["height"])  # fields hash to "hash"
>>> verify_receipt(bytes.fromhex(c.block_receipts(rec["height"])["record"]), rec["index"], header)

Answers are the node's JSON objects as they are (byte fields as hex). Arguments no node could
accept (a key no transaction could write, a txid that is not 64 hex digits) raise
:class:`~ledgercore.errors.InvalidInputError` before any request. Errors become
:class:`~ledgercore.errors.ClientError` subclasses carrying the node's message:

* 400, 405, 413 and other 4xx -> :class:`~ledgercore.errors.RequestRejectedError` (a ``ValueError``)
* 404 -> :class:`~ledgercore.errors.RemoteNotFoundError` (a ``KeyError``, like the ledger's)
* 503, or no connection -> :class:`~ledgercore.errors.UnavailableError` (retryable)
* a node certificate this client does not trust, or a TLS alert -> :class:`~ledgercore.errors.TLSRefusedError`
  (a node refusing the client's certificate closes the connection without an alert: asyncio sends
  none, so that reads as :class:`~ledgercore.errors.UnavailableError`; ``tls=TLSFiles`` is checked
  when the client is made, so that a bad certificate is named there)
* 504, or no answer within ``timeout`` -> :class:`~ledgercore.errors.CommitTimeoutError` (a ``TimeoutError``);
  ``timeout`` bounds each wait for the node's bytes and the whole answer's body
* other 5xx, or an answer that is not a JSON object or is over ``MAX_ANSWER_BYTES`` ->
  :class:`~ledgercore.errors.ServerError`
"""

from __future__ import annotations

import http.client
import json
import math
import select
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterable
from typing import Any, TypeGuard

from .block import HEADER_FIELDS, BlockHeader
from .codec import encode_value
from .contracts.base import key_bytes, state_key
from .errors import (
    ClientError,
    CommitTimeoutError,
    InvalidInputError,
    LedgerError,
    RemoteNotFoundError,
    RequestRejectedError,
    ServerError,
    TLSRefusedError,
    UnavailableError,
)
from .net.pki import TLSFiles
from .transaction import txid_from_hex

__all__ = ["DEFAULT_TIMEOUT", "Client", "check_url"]

DEFAULT_TIMEOUT = 60.0
"""Seconds to wait for an answer: longer than a node waits for a commit before answering 504 (30 s
after the transaction's block is due, ``block_ms`` after it arrives; with a ``block_ms`` of 30 s or
more, give a longer ``timeout``)."""
MAX_TIMEOUT = 86_400.0
"""The longest ``timeout`` taken (a day): sockets refuse far larger ones."""
KEEP_IDLE_S = 30.0
"""Seconds an idle connection is kept for the next request: less than the node keeps one
(``ledgercore.node.http.IDLE_S``, 60 s), so that the node seldom closes one just as a request is
sent on it."""
MAX_IDLE_CONNECTIONS = 8
"""Idle connections kept (one per thread that made requests at once, up to this many)."""
MAX_ANSWER_BYTES = 64 << 20
"""The largest answer body read: a block's ids fit many times over (a block is one transport
frame of at most 16 MiB), and a node speaking nonsense cannot fill the client's memory."""

# What a request on a kept connection meets when the node closed it while it was idle.
_CLOSED_WHILE_IDLE = (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, ssl.SSLZeroReturnError)


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a finite number of at least 0, else none (a node speaking nonsense
    must not make a caller sleep for ever, or raise)."""
    try:
        seconds = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _error_for(status: int, message: str, retry_after: float | None) -> ClientError:
    cls: type[ClientError]
    if status == 404:
        cls = RemoteNotFoundError
    elif status == 503:
        cls = UnavailableError
    elif status == 504:
        cls = CommitTimeoutError
    elif 400 <= status < 500:
        cls = RequestRejectedError
    else:
        cls = ServerError
    return cls(message, status=status, retry_after=retry_after)


def check_url(url: object) -> str:
    """``url`` if it is an http(s) URL a request path can be appended to, else InvalidInputError."""
    if isinstance(url, str) and _usable_url(url):
        return url
    raise InvalidInputError(f"bad node URL {url!r}: expected https://host:port (no query or fragment)")


def _usable_url(url: str) -> bool:
    """A host, a valid port if any, no query or fragment, no whitespace or control characters."""
    if any(c.isspace() or not c.isprintable() for c in url):
        return False
    try:
        parsed = urllib.parse.urlsplit(url)
        port = parsed.port
    except ValueError:  # a bad port or IPv6 literal
        return False
    return (parsed.scheme in ("http", "https") and bool(parsed.hostname) and port != 0
            and not parsed.query and not parsed.fragment and "?" not in url and "#" not in url)  # fmt: skip


def _tls_refusal(exc: object) -> TypeGuard[ssl.SSLError]:
    """Whether ``exc`` is a TLS alert or verification failure, not a connection cut short."""
    return isinstance(exc, ssl.SSLError) and not isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError))


def _tls_refused(method: str, path: str, url: str, exc: ssl.SSLError) -> TLSRefusedError:
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = f"certificate verify failed: {exc.verify_message}"
        if "mismatch" in str(exc.verify_message):
            what = f"the node's certificate does not name the host in {url}"
        else:
            what = "the node's certificate is not issued by the CA this client trusts"
    else:
        why = exc.reason or str(exc)
        what = "is that port TLS?" if why == "WRONG_VERSION_NUMBER" else "the node refused this client's certificate"
    return TLSRefusedError(f"{method} {path}: TLS with {url} failed ({why}): {what}")


def _closed_by_peer(conn: http.client.HTTPConnection) -> bool:
    """Whether a kept connection was closed by the node: an idle HTTP connection has nothing to
    read, so one that is readable holds the close (or bytes no request asked for)."""
    if conn.sock is None:
        return True
    poller = select.poll()
    poller.register(conn.sock, select.POLLIN)
    return bool(poller.poll(0))


def header_of(block: dict[str, Any], height: int | None = None) -> BlockHeader:
    """The :class:`~ledgercore.block.BlockHeader` of a ``block()`` answer, whose encoding must
    hash to the answer's ``hash`` and, if given, be at ``height`` (``ServerError`` if not, or if a
    field is missing or malformed). That binds the fields to the hash only: proofs checked against
    the header prove something once the hash itself is trusted (a block proof against a history
    root you hold, or the same hash from nodes you trust)."""
    try:
        h = block["header"]
        byte_fields = ("prev_hash", "tx_root", "state_root", "history_root", "receipts_root", "proposer", "consensus")
        fields: dict[str, Any] = {name: bytes.fromhex(h[name]) if name in byte_fields else h[name] for name in HEADER_FIELDS}
        header = BlockHeader(**fields)
        claimed = bytes.fromhex(h["hash"])
    except (LedgerError, KeyError, TypeError, ValueError) as exc:
        raise ServerError(f"the answer holds no block header: {type(exc).__name__}: {exc}") from None
    if header.hash != claimed:
        raise ServerError(f"the header's fields hash to {header.hash.hex()}, not the {claimed.hex()} the answer claims")
    if height is not None and header.height != height:
        raise ServerError(f"the answer holds the header of block {header.height}, not of block {height}")
    return header


def _check_height(height: object) -> None:
    if isinstance(height, bool) or not isinstance(height, int):
        raise InvalidInputError(f"height must be an int, not {type(height).__name__}")
    if not 0 <= height < 2**64:
        raise InvalidInputError(f"height must be in 0..2**64 - 1, got {'a negative int' if height < 0 else 'a larger int'}")


def _hex_txid(txid: bytes | str) -> str:
    """``txid`` as the 64 hex digits the node's ``/tx/{txid}`` takes: anything else would be
    answered 400, or 404 "no route" (a ``KeyError``, read as "no such transaction") when empty."""
    if isinstance(txid, (bytes, bytearray, memoryview)):
        txid = bytes(txid).hex()
    if not isinstance(txid, str):
        raise InvalidInputError(f"txid must be bytes or a hex str, not {type(txid).__name__}")
    txid_from_hex(txid)
    return txid


class Client:
    """Talks to one node's client API at ``url`` (e.g. ``https://127.0.0.1:7101``).

    ``tls`` is needed for an ``https`` URL and refused for an ``http`` one: the consortium CA's
    certificate with this client's certificate and key (:class:`~ledgercore.net.pki.TLSFiles`), or
    a ready ``ssl.SSLContext`` (one context serves many clients and threads), which must verify
    the node's certificate and name.

    Threads may share a client. It keeps up to :data:`MAX_IDLE_CONNECTIONS` connections open
    between requests; ``close()`` (or ``with Client(...) as c:``) closes them."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT, *, tls: TLSFiles | ssl.SSLContext | None = None) -> None:
        check_url(url)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_TIMEOUT:
            raise InvalidInputError(f"timeout must be a number of seconds in (0, {MAX_TIMEOUT:g}], got {timeout!r}")
        if not isinstance(tls, (TLSFiles, ssl.SSLContext, type(None))):
            raise InvalidInputError(f"tls must be TLSFiles or an ssl.SSLContext, not {type(tls).__name__}")
        https = url.lower().startswith("https:")
        if https and tls is None:
            raise InvalidInputError(
                f"{url} is https: give tls= the consortium CA and a client certificate "
                "(TLSFiles.in_dir('<cluster dir>/client', stem='client'))"
            )
        if not https and tls is not None:
            raise InvalidInputError(f"{url} is plain http: tls= would not be used (an https URL takes it)")
        if isinstance(tls, ssl.SSLContext) and (tls.verify_mode != ssl.CERT_REQUIRED or not tls.check_hostname):
            # Any server would then pass for a node: its answers, proofs included, for the truth.
            raise InvalidInputError(
                "tls= is an SSLContext that does not verify the node's certificate and name "
                "(verify_mode CERT_REQUIRED and check_hostname are needed)"
            )
        self.url = url.rstrip("/")
        self.timeout = timeout
        parts = urllib.parse.urlsplit(self.url)
        self._host, self._port, self._path = parts.hostname or "", parts.port, parts.path  # check_url: a host
        self._idle: list[tuple[http.client.HTTPConnection, float]] = []  # kept open, with when each went idle
        self._lock = threading.Lock()
        if isinstance(tls, TLSFiles):
            # Checked here, as a node refuses a bad certificate without saying why (CertificateFileError
            # names the file and what is wrong); the files are read once.
            tls.check_client()
            tls = tls.client_context()
        self._ssl = tls

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def close(self) -> None:
        """Closes the connections kept open for later requests (a request after this opens a new one)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """A kept connection the node has not closed (and whether it is one), or a new one."""
        now = time.monotonic()
        with self._lock:
            while self._idle:
                conn, since = self._idle.pop()
                if now - since < KEEP_IDLE_S and not _closed_by_peer(conn):
                    return conn, True
                conn.close()
        if self._ssl is None:
            return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout), False
        return http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout, context=self._ssl), False

    def _keep(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE_CONNECTIONS:
                self._idle.append((conn, time.monotonic()))
                return
        conn.close()

    def _exchange(self, method: str, path: str, body: bytes | None) -> tuple[int, Any, bytes]:
        """Sends one request on a kept connection, or a new one; the answer's status, headers and
        body. A kept connection the node closed meanwhile (idle, or the node restarted) is
        replaced once: the node had not read the request, and submitting is idempotent anyway."""
        headers = {"Content-Type": "application/octet-stream"} if body is not None else {}
        while True:
            conn, kept = self._connection()
            if not kept:
                try:
                    conn.connect()
                except TimeoutError as exc:
                    raise self._timed_out(method, path) from exc
                except OSError as exc:
                    if _tls_refusal(exc):
                        raise _tls_refused(method, path, self.url, exc) from exc
                    raise UnavailableError(f"{method} {path}: cannot reach {self.url}: {exc}{self._hint(exc)}") from exc
            try:
                conn.request(method, self._path + path, body=body, headers=headers)
                resp = conn.getresponse()
                data = self._body(resp, conn, method, path)
            except TimeoutError as exc:
                conn.close()
                raise self._timed_out(method, path) from exc
            except (OSError, http.client.HTTPException) as exc:  # reset, cut short, not HTTP
                conn.close()
                if kept and isinstance(exc, _CLOSED_WHILE_IDLE):
                    continue
                if _tls_refusal(exc):  # TLS 1.3: a node's refusal of this certificate arrives on the first read
                    raise _tls_refused(method, path, self.url, exc) from exc
                raise UnavailableError(f"{method} {path}: connection to {self.url} failed: {exc}{self._hint(exc)}") from exc
            if resp.will_close:
                conn.close()
            else:
                self._keep(conn)
            return resp.status, resp.headers, data

    def _body(self, resp: http.client.HTTPResponse, conn: http.client.HTTPConnection, method: str, path: str) -> bytes:
        """The answer's body, read within ``timeout`` in all (a node trickling bytes would reset
        a per-read timeout for ever) and up to ``MAX_ANSWER_BYTES``."""
        deadline = time.monotonic() + self.timeout
        parts, size = [], 0
        while resp.length is None or resp.length > 0:  # None: chunked, or until the node closes
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if conn.sock is not None:
                conn.sock.settimeout(left)
            part = resp.read1(1 << 20)
            if not part:
                break
            size += len(part)
            if size > MAX_ANSWER_BYTES:
                conn.close()
                raise ServerError(f"{method} {path}: the node's answer is over {MAX_ANSWER_BYTES} bytes")
            parts.append(part)
        if resp.length:  # the connection closed short of the length the node announced
            raise http.client.IncompleteRead(b"".join(parts), resp.length)
        resp.read()  # nothing is left: this marks the answer read, so the connection can be kept
        if conn.sock is not None:
            conn.sock.settimeout(self.timeout)
        return b"".join(parts)

    def _timed_out(self, method: str, path: str) -> CommitTimeoutError:
        return CommitTimeoutError(f"{method} {path}: no answer from {self.url} within {self.timeout}s")

    def _request(self, method: str, path: str, body: bytes | None = None) -> Any:
        status, headers, data = self._exchange(method, path, body)
        if not 200 <= status < 300:
            try:
                message = str(json.loads(data)["error"])
            except (ValueError, KeyError, TypeError, RecursionError):
                message = data.decode("utf-8", "replace").strip()[:1000] or f"HTTP {status}"
            raise _error_for(status, message, _retry_after(headers.get("Retry-After")))
        try:
            answer = json.loads(data)
        except (ValueError, RecursionError):  # RecursionError: nested too deeply
            raise ServerError(f"{method} {path}: the node answered something that is not JSON") from None
        if not isinstance(answer, dict):
            raise ServerError(f"{method} {path}: the node answered a JSON {type(answer).__name__}, not an object")
        return answer

    @staticmethod
    def _check_wait(wait: object) -> None:
        if not isinstance(wait, bool):  # "no" would read as true, and wait for the commit
            raise InvalidInputError(f"wait must be a bool, not {type(wait).__name__}")

    def _hint(self, exc: object) -> str:
        """A node refusing this client's certificate closes the connection without a TLS alert
        (asyncio sends none): what the client sees then, it says may be that."""
        if not isinstance(exc, (ConnectionResetError, ssl.SSLEOFError)):  # RemoteDisconnected is one
            return ""
        if self._ssl is not None:
            return "; a node also does this when it refuses the client's certificate (another CA's, expired, none)"
        return "; a node does this to plain HTTP: its API is https"

    def submit(self, raw: bytes, wait: bool = True) -> dict[str, Any]:
        """Sends one encoded transaction. ``wait``: answer ``{"txid", "height", "receipt": {"ok",
        "error"}}`` once it is committed; otherwise ``{"txid"}`` once admitted. A committed
        transaction may have failed (a replayed nonce, an unknown contract or method, a key already
        anchored, a contract's error; the block commits it all the same): check ``receipt["ok"]``,
        and ``receipt["error"]`` says why. A transaction committed before is answered at once,
        with its receipt."""
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            raise InvalidInputError(f"submit wants the encoded transaction as bytes, not {type(raw).__name__}")
        self._check_wait(wait)
        result: dict[str, Any] = self._request("POST", "/tx?wait=commit" if wait else "/tx", bytes(raw))
        return result

    def submit_many(self, raws: Iterable[bytes], wait: bool = True) -> dict[str, Any]:
        """Sends a batch of encoded transactions in one request (``POST /txs``). Answers
        ``{"txids": [hex], "rejected": [{"index", "error"}]}``; when ``wait``, once all the
        admitted ones are committed, with ``"heights"`` and ``"receipts"`` (``{"ok", "error"}``
        each) aligned with ``"txids"`` (``None`` where rejected). A committed transaction may have
        failed: check each receipt's ``"ok"``."""
        if isinstance(raws, (bytes, bytearray, memoryview, str)):
            raise InvalidInputError("submit_many wants a sequence of encoded transactions (bytes), not one")
        self._check_wait(wait)
        try:
            raws = list(raws)  # an iterator is read once, here
        except TypeError:
            raise InvalidInputError(f"submit_many wants an iterable of encoded transactions, not {type(raws).__name__}") from None
        if not all(isinstance(r, (bytes, bytearray, memoryview)) for r in raws):
            raise InvalidInputError("submit_many wants a sequence of encoded transactions (bytes)")
        body = encode_value([bytes(r) for r in raws])
        result: dict[str, Any] = self._request("POST", "/txs?wait=commit" if wait else "/txs", body)
        return result

    def status(self) -> dict[str, Any]:
        """``{"node", "role", "term", "leader", "height", "block_hash", "state_root"}``."""
        result: dict[str, Any] = self._request("GET", "/status")
        return result

    def _read(self, path: str, linearizable: bool) -> dict[str, Any]:
        """GETs one of the reads: from what the node has applied, or, ``linearizable``, once it has
        applied everything the cluster had committed (``UnavailableError`` if no leader answers)."""
        if not isinstance(linearizable, bool):
            raise InvalidInputError(f"linearizable must be a bool, not {type(linearizable).__name__}")
        result: dict[str, Any] = self._request("GET", path + ("?read=linearizable" if linearizable else ""))
        return result

    def block(self, height: int, *, linearizable: bool = False) -> dict[str, Any]:
        """``{"header": {...}, "txids": [hex]}`` of the block at ``height``."""
        _check_height(height)
        return self._read(f"/block/{height}", linearizable)

    def block_receipts(self, height: int, *, linearizable: bool = False) -> dict[str, Any]:
        """``{"height", "receipts_root", "record"}`` of the block at ``height`` (hex): its stored
        receipts, for :func:`ledgercore.receipts.verify_receipt`."""
        _check_height(height)
        return self._read(f"/block/{height}/receipts", linearizable)

    def tx(self, txid: bytes | str, *, linearizable: bool = False) -> dict[str, Any]:
        """A committed transaction: ``{"height", "index", "tx_count", "receipt", "proof", "tx_root", ...}``."""
        return self._read("/tx/" + _hex_txid(txid), linearizable)

    def get(self, contract: str, key: str | bytes, *, linearizable: bool = False) -> dict[str, Any]:
        """``{"value": hex | None, "version": {"height", "index"} | None}`` of ``contract/key``.
        A contract name or key that no transaction could write raises InvalidInputError unsent."""
        # The node's own check (a ValueError): a contract name no transaction can carry, or a key
        # that is empty, over MAX_KEY_SIZE bytes or not UTF-8, can never be read. Sent, an empty
        # one would be answered 404 "no route" (a KeyError, read as "no such key"), and a lone
        # surrogate would fail in quote() with a bare UnicodeEncodeError.
        state_key(contract, key)
        # A checked name is [a-z0-9_]: nothing to escape.
        return self._read(f"/state/{contract}/{urllib.parse.quote(key_bytes(key), safe='/')}", linearizable)
