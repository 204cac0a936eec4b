"""The HTTP client's own argument checks (made before any request, so no node is needed), and
what it makes of a server that does not answer as a node does."""

from __future__ import annotations

import http.server
import json
import re
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledgercore import Ledger
from ledgercore import client as client_module
from ledgercore.client import Client, header_of
from ledgercore.errors import (
    CommitTimeoutError,
    InvalidInputError,
    RequestRejectedError,
    ServerError,
    UnavailableError,
)
from ledgercore.net import pki
from ledgercore.net.errors import CertificateFileError
from ledgercore.net.pki import TLSFiles


@pytest.mark.parametrize(
    "url",
    ["nope", "ftp://x", "", "http://", 5, None, "http://127.0.0.1:7101?x=1", "http://127.0.0.1:7101#top",
     "http://127.0.0.1:7101\n/x", "http://127.0.0.1:99999", "http://127.0.0.1:0", "http://[::1"],
)  # fmt: skip
def test_a_url_that_names_no_node_is_refused(url: object) -> None:
    with pytest.raises(InvalidInputError, match="bad node URL .*expected https://host:port"):
        Client(url)  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), "5", True, None, float("inf"), 1e300, 10**400])
def test_a_timeout_that_is_not_a_positive_number_is_refused(timeout: object) -> None:
    with pytest.raises(InvalidInputError, match=re.escape("timeout must be a number of seconds in (0, 86400]")):
        Client("http://127.0.0.1:1", timeout=timeout)  # type: ignore[arg-type]


def test_a_good_url_keeps_its_form_without_a_trailing_slash(client_tls: TLSFiles) -> None:
    c = Client("https://node1.example:7101/", timeout=2.5, tls=client_tls)
    assert (c.url, c.timeout) == ("https://node1.example:7101", 2.5)
    assert Client("http://[::1]:7101").url == "http://[::1]:7101"


@pytest.fixture(scope="module")
def client_tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    ca = pki.create_ca()
    return pki.write_tls_files(tmp_path_factory.mktemp("client"), ca, pki.issue_client_certificate(ca, "c"), stem="client")


def test_tls_is_given_for_https_and_only_for_https(client_tls: TLSFiles, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="is https: give tls= the consortium CA and a client certificate"):
        Client("https://127.0.0.1:7101")
    with pytest.raises(InvalidInputError, match="is plain http: tls= would not be used"):
        Client("http://127.0.0.1:7101", tls=client_tls)
    with pytest.raises(InvalidInputError, match="tls must be TLSFiles or an ssl.SSLContext, not str"):
        Client("https://127.0.0.1:7101", tls="client.crt")  # type: ignore[arg-type]
    # The files are read when the client is made: a missing one is named there, not on a request.
    missing = TLSFiles(client_tls.ca_cert, tmp_path / "none.crt", client_tls.key)
    with pytest.raises(CertificateFileError, match="none.crt"):
        Client("https://127.0.0.1:7101", tls=missing)
    ctx = client_tls.client_context()  # one context serves many clients
    assert Client("https://127.0.0.1:7101", tls=ctx).url == Client("https://127.0.0.1:7101/", tls=ctx).url
    # A context that verifies nothing would take any server's answers, proofs included, as a node's.
    lax = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    lax.check_hostname = False
    for mode in (ssl.CERT_NONE, ssl.CERT_REQUIRED):
        lax.verify_mode = mode
        with pytest.raises(InvalidInputError, match="does not verify the node's certificate and name"):
            Client("https://127.0.0.1:7101", tls=lax)


class _NotANode(http.server.BaseHTTPRequestHandler):
    """Answers /block/{h} the ways a proxy, a broken node or a cut connection might."""

    ANSWERS = {
        "/block/1": (200, {}, b"not json"),
        "/block/2": (200, {}, b"[1, 2]"),
        "/block/3": (200, {"Content-Length": "100"}, b"{"),  # the connection closes 99 bytes short
        "/block/4": (502, {}, b"<html>bad gateway</html>"),
        # JSON nested past the parser's recursion limit: a RecursionError escaped the client.
        "/block/5": (200, {}, b"[" * 200_000),
        "/block/6": (400, {}, b"[" * 200_000),
        # Retry-After is a number of seconds; these would have made a caller sleep for ever, or raise.
        "/block/7": (503, {"Retry-After": "inf"}, b'{"error": "busy"}'),
        "/block/8": (503, {"Retry-After": "nan"}, b'{"error": "busy"}'),
        "/block/9": (503, {"Retry-After": "-5"}, b'{"error": "busy"}'),
        "/block/10": (503, {"Retry-After": "2.5"}, b'{"error": "busy"}'),
        "/block/11": (200, {}, b"x" * (3 << 20)),  # over the (lowered) answer limit
        "/block/12": (200, {"Content-Length": "20"}, b"."),  # then one byte every 0.2 s
    }

    def do_GET(self) -> None:
        status, headers, body = self.ANSWERS[self.path]
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        if self.path == "/block/12":
            for _ in range(19):
                time.sleep(0.2)
                self.wfile.write(b".")
                self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def not_a_node() -> Iterator[Client]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotANode)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Client(f"http://127.0.0.1:{server.server_address[1]}", timeout=5)
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("height", "cls", "words"),
    [
        (1, ServerError, "GET /block/1: the node answered something that is not JSON"),
        (2, ServerError, "GET /block/2: the node answered a JSON list, not an object"),
        (3, UnavailableError, "GET /block/3: connection to http://127.0.0.1:"),
        (4, ServerError, "<html>bad gateway</html>"),
    ],
)
def test_an_answer_that_is_not_a_nodes_is_a_typed_error(not_a_node: Client, height: int, cls: type, words: str) -> None:
    with pytest.raises(cls, match=re.escape(words)):
        not_a_node.block(height)


def test_an_answer_nested_too_deeply_too_large_or_too_slow_is_a_typed_error(
    not_a_node: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ServerError, match="not JSON"):
        not_a_node.block(5)
    with pytest.raises(RequestRejectedError, match=r"^\[+$") as rejected:
        not_a_node.block(6)
    assert len(str(rejected.value)) == 1000  # the body, cut short: not 200 kB of it in a message
    for height, wait in [(7, None), (8, None), (9, None), (10, 2.5)]:
        with pytest.raises(UnavailableError, match="busy") as busy:
            not_a_node.block(height)
        assert busy.value.retry_after == wait, height
    monkeypatch.setattr(client_module, "MAX_ANSWER_BYTES", 2 << 20)
    with pytest.raises(ServerError, match=f"GET /block/11: the node's answer is over {2 << 20} bytes"):
        not_a_node.block(11)
    # A node trickling its answer byte by byte: each byte came within the timeout, so the client
    # waited 4 s for a 1 s timeout (and for ever for an endless trickle).
    slow = Client(not_a_node.url, timeout=1)
    start = time.monotonic()
    with pytest.raises(CommitTimeoutError, match="no answer from .* within 1s"):
        slow.block(12)
    assert time.monotonic() - start < 2.5


def test_arguments_of_the_wrong_kind_are_refused_before_any_request() -> None:
    c = Client("http://127.0.0.1:1")  # nothing listens: a request would be UnavailableError
    for call, words in [
        (lambda: c.submit_many(None), "submit_many wants an iterable of encoded transactions, not NoneType"),
        (lambda: c.submit_many(5), "not int"),
        (lambda: c.submit(b"tx", wait="no"), "wait must be a bool, not str"),
        (lambda: c.submit_many([b"tx"], wait=None), "wait must be a bool, not NoneType"),
        (lambda: c.block(10**5000), "height must be in 0..2**64 - 1, got a larger int"),
        (lambda: c.block(-1), "height must be in 0..2**64 - 1, got a negative int"),
    ]:
        with pytest.raises(InvalidInputError, match=re.escape(words)):
            call()


@pytest.mark.parametrize("call, words", [
    # Sent, an empty key or contract would be answered 404 "no route": a KeyError, read as "no such key".
    (lambda c: c.get("evidence", ""), "key must be 1..446 bytes, got 0"),
    (lambda c: c.get("evidence", b""), "key must be 1..446 bytes, got 0"),
    (lambda c: c.get("", "k"), "contract name: must be 1 to 64 bytes, got 0"),
    # A lone surrogate has no UTF-8: quote() would raise a bare UnicodeEncodeError.
    (lambda c: c.get("evidence", "\ud800"), "key '\\ud800' is not valid UTF-8"),
    (lambda c: c.get("\ud800", "k"), "contract '\\ud800' is not valid UTF-8"),
    (lambda c: c.get("evidence", "k" * 447), "key must be 1..446 bytes, got 447"),
    (lambda c: c.get("Evidence", "k"), "must start with a lowercase ASCII letter"),
    (lambda c: c.get("a/b", "k"), "outside [a-z0-9_]"),
    (lambda c: c.get(None, "k"), "contract must be a str, got NoneType"),
    (lambda c: c.get("evidence", 5), "key must be str or bytes, got int"),
    # Not 64 hex digits: "" would be answered 404 "no route", the rest 400.
    (lambda c: c.tx(""), "bad txid '': expected 64 hex digits"),
    (lambda c: c.tx(b"\x01" * 31), "expected 64 hex digits"),
    (lambda c: c.tx(" " + "ab" * 32), "expected 64 hex digits"),
    (lambda c: c.tx("\ud800"), "expected 64 hex digits"),
])  # fmt: skip
def test_a_read_no_node_could_answer_is_refused_before_any_request(call: Any, words: str) -> None:
    c = Client("http://127.0.0.1:1")  # nothing listens: a request would be UnavailableError
    with pytest.raises(InvalidInputError, match=re.escape(words)) as refused:
        call(c)
    assert isinstance(refused.value, ValueError) and not isinstance(refused.value, KeyError)



def test_a_read_a_node_could_answer_is_sent() -> None:
    c = Client("http://127.0.0.1:1")  # nothing listens: UnavailableError shows the request went out
    for call in [lambda: c.get("evidence", "k/1"), lambda: c.get("evidence", b"\xff" * 446),
                 lambda: c.tx(b"\x01" * 32), lambda: c.tx("AB" * 32)]:
        with pytest.raises(UnavailableError):
            call()


class _KeepAliveNode(http.server.BaseHTTPRequestHandler):
    """Answers ``GET /status`` over HTTP/1.1 keep-alive, counting connections; on the connection's
    ``drop_on``-th request it closes without answering, as a node does that closed it meanwhile."""

    protocol_version = "HTTP/1.1"
    connections = 0
    drop_on = 0

    def setup(self) -> None:
        super().setup()
        type(self).connections += 1
        self.served = 0

    def do_GET(self) -> None:
        self.served += 1
        if self.served == self.drop_on:
            self.close_connection = True
            return
        body = json.dumps({"node": "n1", "connection": type(self).connections}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def keep_alive_node() -> Iterator[tuple[type[_KeepAliveNode], str]]:
    handler = type("Handler", (_KeepAliveNode,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_requests_share_one_connection_until_the_client_is_closed(keep_alive_node: tuple[type[_KeepAliveNode], str]) -> None:
    handler, url = keep_alive_node
    with Client(url, timeout=5) as c:
        assert [c.status()["connection"] for _ in range(5)] == [1] * 5
    assert handler.connections == 1
    with Client(url, timeout=5) as c:  # closed before: a new client, a new connection
        assert c.status()["connection"] == 2
        c.close()
        assert c.status()["connection"] == 3  # and a closed client opens one again when used


def test_a_kept_connection_the_node_closed_is_replaced_once(keep_alive_node: tuple[type[_KeepAliveNode], str]) -> None:
    handler, url = keep_alive_node
    handler.drop_on = 3  # the third request on each connection finds it closed
    with Client(url, timeout=5) as c:
        assert [c.status()["connection"] for _ in range(5)] == [1, 1, 2, 2, 3]
    # A new connection that the node closes is not tried again: that is no stale connection.
    handler.drop_on = 1
    with Client(url, timeout=5) as c, pytest.raises(UnavailableError, match="GET /status: connection to .* failed"):
        c.status()
    assert handler.connections == 4


def test_threads_share_a_client(keep_alive_node: tuple[type[_KeepAliveNode], str]) -> None:
    handler, url = keep_alive_node
    answers: list[str] = []
    with Client(url, timeout=5) as c:

        def work() -> None:
            answers.extend(c.status()["node"] for _ in range(20))

        threads = [threading.Thread(target=work) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert answers == ["n1"] * 240
    assert handler.connections <= 12  # one per thread at most, and kept between requests


@pytest.mark.parametrize("receipts_roots", [True, False], ids=["version 2", "version 1"])
def test_a_block_answers_header_is_rebuilt_and_its_hash_checked(tmp_path: Path, receipts_roots: bool) -> None:
    from ledgercore.node.http import _header_json  # what a node answers

    with Ledger.open(tmp_path / "l", receipts_roots=receipts_roots) as led:
        header = led.header(0)
    answer = {"header": _header_json(header), "txids": []}
    assert header_of(answer) == header
    forged = {"header": {**answer["header"], "state_root": "11" * 32}}
    with pytest.raises(ServerError, match=f"hash to .*, not the {header.hash.hex()} the answer claims"):
        header_of(forged)
    with pytest.raises(ServerError, match="holds the header of block 0, not of block 7"):
        header_of(answer, 7)
    with pytest.raises(ServerError, match="holds no block header: KeyError: 'tx_root'"):
        header_of({"header": {k: v for k, v in answer["header"].items() if k != "tx_root"}})
