"""Transaction receipts. A block stores only its failures and events; every other receipt is ``ok``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .codec import decode_value, encode_value
from .errors import IntegrityError, LedgerError


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


def _stored(data: bytes, height: int, tx_count: int) -> tuple[dict[int, str], list[tuple[int, str, bytes]]]:
    """The failures and events of block ``height``'s stored receipts, checked against its header:
    stored bytes of any other shape are store damage (IntegrityError), never a bare error or a
    receipt moved onto another transaction."""
    try:
        decoded: Any = decode_value(data)
        count, failures, events = decoded
        failed = {i: error for i, error in failures}
        emitted = [(i, name, payload) for i, name, payload in events]
    except (LedgerError, TypeError, ValueError) as exc:
        raise IntegrityError(height, "receipts", f"do not decode: {exc}") from exc
    if count != tx_count:
        raise IntegrityError(height, "receipts", f"cover {count} transactions, the block has {tx_count}")
    kinds = {(type(i), type(e)) for i, e in failed.items()} | {(type(i), type(n)) for i, n, _ in emitted}
    positions = [*failed, *(i for i, _, _ in emitted)]
    if kinds - {(int, str)} or any(type(p) is not bytes for _, _, p in emitted) or (
        positions and not 0 <= min(positions) <= max(positions) < count
    ):
        raise IntegrityError(height, "receipts", "hold a failure or event that is not for one of the block's transactions")
    return failed, emitted


def count_failures(data: bytes, height: int, tx_count: int) -> int:
    """How many transactions of block ``height`` failed, its stored receipts checked."""
    return len(_stored(data, height, tx_count)[0])


def decode_failures(data: bytes, height: int, tx_count: int) -> dict[int, str]:
    """The failed receipts of block ``height``'s stored receipts: position -> error (the others
    are ok). Only the failures are read: no receipt object per transaction."""
    return _stored(data, height, tx_count)[0]


def decode_receipts(data: bytes, height: int, tx_count: int) -> list[Receipt]:
    """Every receipt of block ``height``, from its stored receipts."""
    failed, events = _stored(data, height, tx_count)
    by_index: dict[int, list[tuple[str, bytes]]] = {}
    for i, name, payload in events:
        by_index.setdefault(i, []).append((name, payload))
    out = [OK] * tx_count
    for i in set(failed) | set(by_index):
        out[i] = Receipt(i not in failed, failed.get(i), tuple(by_index.get(i, ())))
    return out
