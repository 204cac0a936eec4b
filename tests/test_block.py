"""Block headers and stored blocks (docs/FORMAT.md sections 4 and 5): vectors rebuilt with struct,
round trips, rejection of truncated, trailing and inconsistent encodings."""

from __future__ import annotations

import dataclasses
import hashlib
import pickle
import struct

import blake3
import pytest
from conftest import load_vectors
from gmssl import func, sm3
from hypothesis import given
from hypothesis import strategies as st

from ledgercore import BlockHeader, Transaction, _native, signing
from ledgercore.block import decode_block, encode_block
from ledgercore.errors import DecodeError, EncodeError, InvalidLengthError, UnknownNameError
from ledgercore.suites import SUITES, get_suite

VECTORS_V1 = load_vectors("header_v1.json")["vectors"]  # blocks written before receipts roots
VECTORS = VECTORS_V1 + load_vectors("header_v2.json")["vectors"]
SUITE_NAMES = list(SUITES)
BYTE_FIELDS = ("prev_hash", "tx_root", "state_root", "history_root", "receipts_root", "proposer", "consensus")


def suite_hash(suite: str, data: bytes) -> bytes:
    algo = get_suite(suite).hash
    if algo == "blake3":
        return blake3.blake3(data).digest()
    if algo == "sha256":
        return hashlib.sha256(data).digest()
    return bytes.fromhex(sm3.sm3_hash(func.bytes_to_list(data)))


def reference_header(f: dict) -> bytes:
    chain = f["chain_id"].encode()
    receipts_root = f.get("receipts_root", b"")  # version 2 exactly when there is one
    return (
        struct.pack(">BBB", 2 if receipts_root else 1, get_suite(f["suite"]).code, len(chain))
        + chain
        + struct.pack(">Q", f["height"])
        + f["prev_hash"] + f["tx_root"] + f["state_root"] + f["history_root"] + receipts_root
        + struct.pack(">QB", f["timestamp"], len(f["proposer"]))
        + f["proposer"]
        + struct.pack(">IH", f["tx_count"], len(f["consensus"]))
        + f["consensus"]
    )  # fmt: skip


def vector_fields(v: dict) -> dict:
    return {k: bytes.fromhex(v[k]) if k in BYTE_FIELDS else v[k] for k in v if k not in ("encoding", "hash")}


def header(suite: str = "ed25519-blake3", **kw) -> BlockHeader:
    fields = {
        "suite": suite, "chain_id": "dev", "height": 1, "prev_hash": b"\x01" * 32, "tx_root": b"\x02" * 32,
        "state_root": b"\x03" * 32, "history_root": b"\x04" * 32, "timestamp": 1_700_000_000_000,
    }  # fmt: skip
    fields.update(kw)
    return BlockHeader(**fields)


# ---- headers ----


def test_vector_files_cover_every_suite_in_both_versions():
    assert [v["suite"] for v in VECTORS] == SUITE_NAMES * 2
    assert [bytes.fromhex(v["encoding"])[0] for v in VECTORS] == [1] * len(SUITE_NAMES) + [2] * len(SUITE_NAMES)


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: f"{v['suite']}-v{bytes.fromhex(v['encoding'])[0]}")
def test_header_vectors(v):
    fields = vector_fields(v)
    h = BlockHeader(**fields)
    assert h.encode().hex() == v["encoding"] == reference_header(fields).hex()
    assert h.hash.hex() == v["hash"] == suite_hash(v["suite"], bytes.fromhex(v["encoding"])).hex()
    d = BlockHeader.decode(bytes.fromhex(v["encoding"]))
    assert d == h and d.hash == h.hash
    assert {k: getattr(d, k) for k in fields} == fields


digests = st.binary(min_size=32, max_size=32)


@st.composite
def headers(draw):
    suite = draw(st.sampled_from(SUITE_NAMES))
    return {
        "suite": suite,
        "chain_id": draw(st.text(min_size=1, max_size=12).filter(lambda s: len(s.encode()) <= 64)),
        "height": draw(st.integers(0, 2**64 - 1)),
        "prev_hash": draw(digests), "tx_root": draw(digests), "state_root": draw(digests),
        "history_root": draw(digests), "receipts_root": draw(st.sampled_from([b""]) | digests),
        "timestamp": draw(st.integers(0, 2**64 - 1)),
        "proposer": draw(st.sampled_from([b"", bytes(get_suite(suite).public_key_size)])),
        "tx_count": draw(st.integers(0, 2**32 - 1)),
        "consensus": draw(st.binary(max_size=300)),
    }  # fmt: skip


@given(headers())
def test_headers_round_trip(fields):
    h = BlockHeader(**fields)
    enc = h.encode()
    assert enc == reference_header(fields)
    d = BlockHeader.decode(enc)
    assert d == h and hash(d) == hash(h) and d.encode() == enc
    assert h.hash == suite_hash(fields["suite"], enc)
    for cut in range(len(enc)):
        with pytest.raises(DecodeError, match="^block header: .*truncated"):
            BlockHeader.decode(enc[:cut])
    with pytest.raises(DecodeError, match="trailing"):
        BlockHeader.decode(enc + b"\x00")


def test_headers_are_immutable_and_replaceable():
    h = header()
    with pytest.raises(dataclasses.FrozenInstanceError):
        h.height = 2  # type: ignore[misc]
    h2 = dataclasses.replace(h, height=2)
    assert h2.height == 2 and h2.hash != h.hash and h2.encode() != h.encode()
    assert pickle.loads(pickle.dumps(h)) == h
    assert "height=1" in repr(h) and h.hash.hex()[:16] in repr(h)
    # Bytes-like fields are stored as bytes.
    assert header(prev_hash=bytearray(32)).prev_hash == bytes(32)


@pytest.mark.parametrize(
    ("kw", "error", "fragment"),
    [
        ({"prev_hash": bytes(31)}, InvalidLengthError, "prev_hash must be 32 bytes, got 31"),
        ({"history_root": bytes(33)}, InvalidLengthError, "history_root must be 32 bytes"),
        ({"proposer": bytes(65)}, EncodeError, "proposer: must be empty or a 32-byte ed25519-blake3 public key, got 65"),
        ({"consensus": bytes(65536)}, EncodeError, "consensus: at most 65535 bytes"),
        ({"chain_id": ""}, EncodeError, "chain id: must be 1 to 64 bytes"),
        ({"height": -1}, EncodeError, "height: must be an int in 0..=2**64 - 1, got -1"),
        ({"tx_count": 2**32}, EncodeError, "tx_count: must be an int in 0..=2**32 - 1"),
        ({"suite": "sm2"}, UnknownNameError, "unknown suite 'sm2'"),
    ],
)
def test_bad_header_fields(kw, error, fragment):
    with pytest.raises(error) as e:
        header(**kw)
    assert fragment in str(e.value)


def test_sm2_and_p256_proposers_are_65_bytes():
    assert len(header("sm2-sm3", proposer=bytes(65)).proposer) == 65
    with pytest.raises(EncodeError, match="65-byte"):
        header("p256-sha256", proposer=bytes(32))


@pytest.mark.parametrize(
    ("at", "value", "fragment"),
    [
        (0, 3, "block header: version at byte 0: unknown version 3 (this build reads 1 and 2)"),
        (1, 0, "suite at byte 1: unknown suite code 0"),
        (2, 0, "chain id length at byte 2: 0 is outside 1..=64"),
        (3, 0x80, "chain id at byte 3: not valid UTF-8"),
        (2 + 1 + 3 + 8 + 128 + 8, 31, "proposer length at byte 150: 31 is neither 0 nor the 32-byte"),
    ],
)
def test_forged_header_bytes(at, value, fragment):
    raw = bytearray(header().encode())
    raw[at] = value
    with pytest.raises(DecodeError) as e:
        BlockHeader.decode(bytes(raw))
    assert fragment in str(e.value)


# ---- blocks ----


def signed_txs(suite: str, n: int) -> list[bytes]:
    kp = signing.from_private_bytes(get_suite(suite).scheme, b"\x05" * 32)
    return [Transaction.create(kp, "evidence", "put", {"key": f"k{i}"}, i, timestamp=i).encode() for i in range(n)]


@pytest.mark.parametrize("suite", SUITE_NAMES)
def test_blocks_round_trip_and_feed_decode_txs(suite):
    raws = signed_txs(suite, 5)
    h = header(suite, tx_count=5)
    block = encode_block(h, raws)
    expected = struct.pack(">I", len(h.encode())) + h.encode() + struct.pack(">I", 5)
    expected += b"".join(struct.pack(">I", len(r)) + r for r in raws)
    assert block == expected
    h2, raws2 = decode_block(block)
    assert h2 == h and h2.hash == h.hash and raws2 == raws
    batch = _native.decode_txs(h2.suite, h2.chain_id, raws2)
    assert batch.raws == raws
    empty = encode_block(header(suite), [])
    assert decode_block(empty) == (header(suite), [])


@given(st.lists(st.binary(min_size=1, max_size=50), max_size=6))
def test_block_framing_round_trips_and_rejects_every_truncation(raws):
    h = header(tx_count=len(raws))
    block = encode_block(h, raws)
    assert decode_block(block) == (h, raws)
    for cut in range(len(block)):
        with pytest.raises(DecodeError, match="truncated"):
            decode_block(block[:cut])
    with pytest.raises(DecodeError, match="^block: 1 trailing bytes"):
        decode_block(block + b"\x00")


def test_block_errors():
    raws = signed_txs("ed25519-blake3", 3)
    with pytest.raises(EncodeError, match="the header's tx_count is 2, but 3 transactions were given"):
        encode_block(header(tx_count=2), raws)
    with pytest.raises(EncodeError, match="transaction 1: is 0 bytes"):
        encode_block(header(tx_count=2), [raws[0], b""])
    h = header(tx_count=3)
    block = bytearray(encode_block(h, raws))
    count_at = 4 + len(h.encode())
    block[count_at + 3] = 4
    with pytest.raises(DecodeError, match=f"tx count at byte {count_at}: 4 differs from the header's tx_count 3"):
        decode_block(bytes(block))
    block[count_at + 3] = 3
    block[4] = 7  # header version
    with pytest.raises(DecodeError, match="^block header: version at byte 4: unknown version 7"):
        decode_block(bytes(block))
    # A zero-length transaction in the framing.
    h1 = header(tx_count=1)
    zero = struct.pack(">I", len(h1.encode())) + h1.encode() + struct.pack(">II", 1, 0)
    with pytest.raises(DecodeError, match=r"transaction 0 length at byte \d+: 0 is outside 1..=1048576"):
        decode_block(zero)
    # An oversize length is refused from the length field, before any data is expected.
    big = struct.pack(">I", len(h1.encode())) + h1.encode() + struct.pack(">II", 1, (1 << 20) + 1)
    with pytest.raises(DecodeError, match="1048577 is outside"):
        decode_block(big)
    with pytest.raises(DecodeError, match="header length at byte 0: truncated"):
        decode_block(b"\x00\x00")


@pytest.mark.parametrize("field", ["prev_hash", "tx_root", "state_root", "history_root", "proposer", "consensus"])
@pytest.mark.parametrize("value", [32, None, "ab" * 16])
def test_a_header_byte_field_of_another_type_is_refused(field: str, value: object) -> None:
    # bytes(32) would quietly be 32 zero bytes: a header hashing to something no one meant.
    with pytest.raises(EncodeError, match=f"header field {field} must be bytes, got {type(value).__name__}"):
        header(**{field: value})


@pytest.mark.parametrize("data", [None, 10**10, "abc"])
def test_decoding_something_that_is_not_bytes_is_a_decode_error(data: object) -> None:
    with pytest.raises(DecodeError, match="a header to decode must be bytes"):
        BlockHeader.decode(data)  # type: ignore[arg-type]
    with pytest.raises(DecodeError, match="a block to decode must be bytes"):
        decode_block(data)  # type: ignore[arg-type]
