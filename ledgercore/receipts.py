"""Transaction receipts. A block stores only its failures and events; every other receipt is ``ok``."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from . import hashing
from .block import BlockHeader
from .codec import decode_value, encode_value
from .errors import IntegrityError, InvalidInputError, LedgerError
from .suites import get_suite


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


def _stored(data: bytes, height: int, tx_count: int) -> tuple[dict[int, str], Any]:
    """The failures of block ``height``'s stored receipts, checked against its header, and their
    events as stored: bytes of any other shape are store damage (IntegrityError), never a bare
    error or a failure moved onto another transaction."""
    try:
        decoded: Any = decode_value(data)
        count, failures, events = decoded
        failed = {i: error for i, error in failures}
    except (LedgerError, TypeError, ValueError) as exc:
        raise IntegrityError(height, "receipts", f"do not decode: {exc}") from exc
    if count != tx_count:
        raise IntegrityError(height, "receipts", f"cover {count} transactions, the block has {tx_count}")
    _check_positions(height, failed.items(), count, "a failure")
    if len(failed) != len(failures):
        raise IntegrityError(height, "receipts", "hold two failures for one transaction")
    return failed, events


def _check_positions(height: int, items: Collection[tuple[Any, Any]], count: int, what: str) -> None:
    """Each ``(position, str)`` names one of the block's ``count`` transactions."""
    kinds = {(type(i), type(v)) for i, v in items}
    if kinds - {(int, str)} or (kinds and not all(0 <= i < count for i, _ in items)):
        raise IntegrityError(height, "receipts", f"hold {what} that is not for one of the block's transactions")


def count_failures(data: bytes, height: int, tx_count: int) -> int:
    """How many transactions of block ``height`` failed, its stored receipts checked whole (the
    audit's count: events too)."""
    return sum(not r.ok for r in decode_receipts(data, height, tx_count))


def decode_failures(data: bytes, height: int, tx_count: int) -> dict[int, str]:
    """The failed receipts of block ``height``'s stored receipts: position -> error (the others
    are ok). Only the failures are read: no receipt object per transaction."""
    return _stored(data, height, tx_count)[0]


def verify_receipt(record: bytes, index: int, header: BlockHeader) -> Receipt | None:
    """The receipt of the transaction at ``index`` of ``header``'s block, if ``record`` is the
    block's receipts record that the header commits to (``receipts_root``, its suite hash); None if
    it is not: what a node served is then not that block's. With the block's header (checked
    against the block-hash log, :meth:`Ledger.block_proof`) this proves a transaction's outcome.
    ``InvalidInputError`` for a header without a receipts root (version 1) or an index outside
    the block."""
    if not isinstance(header, BlockHeader) or not header.receipts_root:
        raise InvalidInputError("a receipt is proven by a version 2 header (one with a receipts root)")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < header.tx_count:
        raise InvalidInputError(f"index must be one of the block's {header.tx_count} positions, got {index!r:.40}")
    if not isinstance(record, (bytes, bytearray, memoryview)):
        raise InvalidInputError(f"the receipts record is bytes, got {type(record).__name__}")
    if hashing.digest(bytes(record), get_suite(header.suite).hash) != header.receipts_root:
        return None
    return decode_receipts(bytes(record), header.height, header.tx_count)[index]


def decode_receipts(data: bytes, height: int, tx_count: int) -> list[Receipt]:
    """Every receipt of block ``height``, from its stored receipts."""
    failed, stored_events = _stored(data, height, tx_count)
    try:
        events = [(i, name, payload) for i, name, payload in stored_events]
    except (TypeError, ValueError) as exc:
        raise IntegrityError(height, "receipts", f"do not decode: {exc}") from exc
    _check_positions(height, [(i, name) for i, name, _ in events], tx_count, "an event")
    if any(type(payload) is not bytes for _, _, payload in events):
        raise IntegrityError(height, "receipts", "hold an event whose data is not bytes")
    by_index: dict[int, list[tuple[str, bytes]]] = {}
    for i, name, payload in events:
        by_index.setdefault(i, []).append((name, payload))
    out = [OK] * tx_count
    for i in set(failed) | set(by_index):
        out[i] = Receipt(i not in failed, failed.get(i), tuple(by_index.get(i, ())))
    return out
