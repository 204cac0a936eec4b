"""Transaction receipts. A block stores only its failures and events; every other receipt is ``ok``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .codec import decode_value, encode_value


@dataclass(frozen=True)
class Receipt:
    ok: bool
    error: str | None = None
    events: tuple[tuple[str, bytes], ...] = ()


OK = Receipt(True)

MAX_ERROR_CHARS = 1000
"""Longest failure message a receipt keeps (a contract's message may quote its arguments)."""


def receipt_error(message: str) -> str:
    """``message`` as a receipt stores it: a lone surrogate (not UTF-8) escaped, so that no
    contract's failure message keeps a block from committing, and at most
    :data:`MAX_ERROR_CHARS` characters, escapes counted (an escape is kept whole or not at all)."""
    head = message[:MAX_ERROR_CHARS]
    try:
        head.encode("utf-8")
    except UnicodeEncodeError:  # rare: only then is each character's escaped length counted
        kept, size = [], 0
        for c in head:
            piece = c.encode("utf-8", "backslashreplace").decode("utf-8")
            size += len(piece)
            if size > MAX_ERROR_CHARS:
                break
            kept.append(piece)
        return "".join(kept)
    return head


def encode_receipts(count: int, errors: dict[int, str], events: list[tuple[int, str, bytes]]) -> bytes:
    return encode_value([count, [[i, errors[i]] for i in sorted(errors)], [list(e) for e in events]])


def decode_failures(data: bytes) -> dict[int, str]:
    """The failed receipts of a block's encoded receipts: position -> error (the others are ok).
    Only the failures are read: no receipt object per transaction."""
    decoded: Any = decode_value(data)
    return dict(decoded[1])


def decode_receipts(data: bytes) -> list[Receipt]:
    decoded: Any = decode_value(data)
    count, failures, events = decoded
    by_index: dict[int, list[tuple[str, bytes]]] = {}
    for i, name, payload in events:
        by_index.setdefault(i, []).append((name, payload))
    failed = dict(failures)
    out = [OK] * count
    for i in set(failed) | set(by_index):
        out[i] = Receipt(i not in failed, failed.get(i), tuple(by_index.get(i, ())))
    return out
