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


def encode_receipts(count: int, errors: dict[int, str], events: list[tuple[int, str, bytes]]) -> bytes:
    return encode_value([count, [[i, errors[i]] for i in sorted(errors)], [list(e) for e in events]])


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
