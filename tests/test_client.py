"""The HTTP client's own argument checks: made before any request, so no node is needed."""

from __future__ import annotations

import pytest

from ledgercore.client import Client
from ledgercore.errors import InvalidInputError


@pytest.mark.parametrize("url", ["nope", "ftp://x", "", "http://", 5, None])
def test_a_url_that_names_no_node_is_refused(url: object) -> None:
    with pytest.raises(InvalidInputError, match="bad node URL .*expected http://host:port"):
        Client(url)  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), "5", True, None])
def test_a_timeout_that_is_not_a_positive_number_is_refused(timeout: object) -> None:
    with pytest.raises(InvalidInputError, match="timeout must be a positive number of seconds"):
        Client("http://127.0.0.1:1", timeout=timeout)  # type: ignore[arg-type]


def test_a_good_url_keeps_its_form_without_a_trailing_slash() -> None:
    c = Client("https://node1.example:7101/", timeout=2.5)
    assert (c.url, c.timeout) == ("https://node1.example:7101", 2.5)
