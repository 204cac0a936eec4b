"""The HTTP client's own argument checks (made before any request, so no node is needed), and
what it makes of a server that does not answer as a node does."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator

import pytest

from ledgercore.client import Client
from ledgercore.errors import InvalidInputError, ServerError, UnavailableError


@pytest.mark.parametrize(
    "url",
    ["nope", "ftp://x", "", "http://", 5, None, "http://127.0.0.1:7101?x=1", "http://127.0.0.1:7101#top",
     "http://127.0.0.1:7101\n/x", "http://127.0.0.1:99999", "http://127.0.0.1:0", "http://[::1"],
)  # fmt: skip
def test_a_url_that_names_no_node_is_refused(url: object) -> None:
    with pytest.raises(InvalidInputError, match="bad node URL .*expected http://host:port"):
        Client(url)  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), "5", True, None, float("inf"), 1e300, 10**400])
def test_a_timeout_that_is_not_a_positive_number_is_refused(timeout: object) -> None:
    with pytest.raises(InvalidInputError, match=re.escape("timeout must be a number of seconds in (0, 86400]")):
        Client("http://127.0.0.1:1", timeout=timeout)  # type: ignore[arg-type]


def test_a_good_url_keeps_its_form_without_a_trailing_slash() -> None:
    c = Client("https://node1.example:7101/", timeout=2.5)
    assert (c.url, c.timeout) == ("https://node1.example:7101", 2.5)
    assert Client("http://[::1]:7101").url == "http://[::1]:7101"


class _NotANode(http.server.BaseHTTPRequestHandler):
    """Answers /block/{h} the ways a proxy, a broken node or a cut connection might."""

    ANSWERS = {
        "/block/1": (200, {}, b"not json"),
        "/block/2": (200, {}, b"[1, 2]"),
        "/block/3": (200, {"Content-Length": "100"}, b"{"),  # the connection closes 99 bytes short
        "/block/4": (502, {}, b"<html>bad gateway</html>"),
    }

    def do_GET(self) -> None:
        status, headers, body = self.ANSWERS[self.path]
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
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
