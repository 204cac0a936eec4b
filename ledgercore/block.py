"""Block headers and stored blocks (docs/FORMAT.md; a header with a receipts root is version 2).

The block hash is the suite hash of the header encoding. A stored block frames the header and the
raw transactions; :func:`decode_block` checks the framing and the header, and
``_native.decode_txs`` decodes the transactions themselves (in parallel, checked against the chain).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from . import _native, hashing
from .codec import utf8
from .errors import DecodeError, EncodeError
from .native_args import bytes_of
from .suites import get_suite

HEADER_FIELDS = (  # in encoding order (docs/FORMAT.md)
    "suite",
    "chain_id",
    "height",
    "prev_hash",
    "tx_root",
    "state_root",
    "history_root",
    "receipts_root",
    "timestamp",
    "proposer",
    "tx_count",
    "consensus",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockHeader:
    """An immutable block header. Construction checks every field (``EncodeError``,
    ``InvalidLengthError`` or ``UnknownNameError`` on bad ones) and keeps the encoding."""

    suite: str
    chain_id: str
    height: int
    prev_hash: bytes
    tx_root: bytes
    state_root: bytes
    history_root: bytes
    timestamp: int
    # The suite hash of the block's stored receipts record (docs/FORMAT.md section 5): what each
    # transaction's outcome was. Empty in a version 1 header (blocks written before it existed).
    receipts_root: bytes = b""
    proposer: bytes = b""
    tx_count: int = 0
    consensus: bytes = b""
    _encoding: bytes = field(init=False, repr=False, compare=False, default=b"")

    def __post_init__(self) -> None:
        for name in ("prev_hash", "tx_root", "state_root", "history_root", "receipts_root", "proposer", "consensus"):
            value = getattr(self, name)
            if not isinstance(value, (bytes, bytearray, memoryview)):  # bytes(32) would be 32 zeros
                raise EncodeError(f"header field {name} must be bytes, got {type(value).__name__}")
            if not isinstance(value, bytes):
                object.__setattr__(self, name, bytes(value))
        for name in ("height", "timestamp", "tx_count"):
            if isinstance(getattr(self, name), bool):  # an int to Python, a mistake here; the encoder checks ranges
                raise EncodeError(f"header field {name} must be an int, got bool")
        utf8(self.chain_id, "header field chain_id")  # the encoder checks its length
        suite = get_suite(self.suite)
        object.__setattr__(self, "suite", suite.name)
        object.__setattr__(
            self, "_encoding", _native.encode_header(*(getattr(self, name) for name in HEADER_FIELDS))
        )

    @classmethod
    def _from_decoded(cls, fields: tuple, encoding: bytes) -> BlockHeader:
        header = object.__new__(cls)
        for name, value in zip(HEADER_FIELDS, fields):
            object.__setattr__(header, name, value)
        object.__setattr__(header, "_encoding", encoding)
        return header

    @classmethod
    def decode(cls, raw: bytes) -> BlockHeader:
        """Decodes a whole header encoding; anything non-canonical raises ``DecodeError``."""
        raw = _bytes_to_decode(raw, "a header")
        return cls._from_decoded(_native.decode_header(raw), raw)

    def encode(self) -> bytes:
        return self._encoding

    @property
    def hash(self) -> bytes:
        """The block hash: the suite hash of the header encoding."""
        return hashing.digest(self._encoding, get_suite(self.suite).hash)

    def __reduce__(self) -> tuple:
        return (BlockHeader.decode, (self._encoding,))

    def __repr__(self) -> str:
        short = lambda b: b.hex()[:16] + "…" if b else "''"  # noqa: E731
        return (
            f"BlockHeader(suite={self.suite!r}, chain_id={self.chain_id!r}, height={self.height}, "
            f"hash={short(self.hash)}, prev_hash={short(self.prev_hash)}, tx_root={short(self.tx_root)}, "
            f"state_root={short(self.state_root)}, history_root={short(self.history_root)}, "
            f"receipts_root={short(self.receipts_root)}, "
            f"timestamp={self.timestamp}, proposer={short(self.proposer)}, tx_count={self.tx_count}, "
            f"consensus={len(self.consensus)} bytes)"
        )


def _bytes_to_decode(data: object, what: str) -> bytes:
    return bytes_of(data, f"{what} to decode", DecodeError)


def differing_fields(a: BlockHeader, b: BlockHeader) -> list[str]:
    """The header fields whose values differ, in encoding order."""
    return [f for f in HEADER_FIELDS if getattr(a, f) != getattr(b, f)]


def encode_block(header: BlockHeader, raws: Sequence[bytes]) -> bytes:
    """A stored block: the header and the raw transactions (as many as ``header.tx_count``)."""
    return _native.encode_block(header.encode(), raws)


def decode_block(data: bytes) -> tuple[BlockHeader, list[bytes]]:
    """The header and the raw transactions of a stored block. Checks framing and the header; the
    transactions are decoded by ``_native.decode_txs``."""
    fields, encoding, raws = _native.decode_block(_bytes_to_decode(data, "a block"))
    return BlockHeader._from_decoded(fields, encoding), raws
