"""Canonical values (docs/FORMAT.md section 2): the native codec against a pure-Python reference
encoder, round trips, and rejection of every truncated, trailing or non-canonical encoding."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgercore import codec
from ledgercore.codec import decode_value, encode_value
from ledgercore.errors import DecodeError, EncodeError, InvalidInputError, LedgerError, MalformedInputError

I64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
scalars = st.none() | st.booleans() | I64 | st.binary(max_size=40) | st.text(max_size=20)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)


def reference(v: object) -> bytes:
    """The format written out from docs/FORMAT.md, independently of the native code."""
    if v is None:
        return b"\x00"
    if v is False:
        return b"\x01"
    if v is True:
        return b"\x02"
    if isinstance(v, int):
        return b"\x03" + struct.pack(">q", v)
    if isinstance(v, bytes):
        return b"\x04" + struct.pack(">I", len(v)) + v
    if isinstance(v, str):
        data = v.encode("utf-8")
        return b"\x05" + struct.pack(">I", len(data)) + data
    if isinstance(v, list):
        return b"\x06" + struct.pack(">I", len(v)) + b"".join(map(reference, v))
    if isinstance(v, dict):
        keys = sorted((k.encode("utf-8"), k) for k in v)
        body = b"".join(struct.pack(">I", len(kb)) + kb + reference(v[k]) for kb, k in keys)
        return b"\x07" + struct.pack(">I", len(v)) + body
    raise AssertionError(type(v))


def nest(levels: int) -> object:
    v: object = None
    for _ in range(levels):
        v = [v]
    return v


# ---- round trips ----


@given(values)
def test_matches_the_reference_encoder_and_round_trips(v):
    enc = encode_value(v)
    assert enc == reference(v)
    assert decode_value(enc) == v


@given(values)
def test_every_truncation_and_any_trailing_byte_is_rejected(v):
    enc = encode_value(v)
    for cut in range(len(enc)):
        with pytest.raises(DecodeError, match="truncated"):
            decode_value(enc[:cut])
    with pytest.raises(DecodeError, match="trailing"):
        decode_value(enc + b"\x00")


@given(st.binary(max_size=64))
def test_any_bytes_that_decode_are_the_canonical_encoding_of_what_they_decode_to(data):
    try:
        v = decode_value(data)
    except DecodeError:
        return
    assert encode_value(v) == data


def test_known_encoding():
    v = {"n": -2, "b": b"\xab", "l": [None, True, "é"]}
    assert encode_value(v).hex() == (
        "0700000003" "0000000162" "0400000001ab" "000000016c" "0600000003" "00" "02" "0500000002c3a9"
        "000000016e" "03fffffffffffffffe"
    )
    assert encode_value(None) == b"\x00"
    assert encode_value(False) == b"\x01"
    assert encode_value(True) == b"\x02"  # a bool, not the int 1
    assert encode_value(1) == b"\x03" + bytes(7) + b"\x01"
    assert encode_value({}) == b"\x07" + bytes(4)
    assert encode_value([]) == b"\x06" + bytes(4)


def test_python_types_map_as_documented():
    assert decode_value(encode_value((1, (2,)))) == [1, [2]]
    assert encode_value(bytearray(b"ab")) == encode_value(b"ab") == encode_value(memoryview(b"ab"))
    assert decode_value(encode_value(memoryview(b"xyz")[1:])) == b"yz"
    assert encode_value(-(2**63)) == b"\x03\x80" + bytes(7)
    assert encode_value(2**63 - 1) == b"\x03\x7f" + b"\xff" * 7

    class Sub(dict):
        pass

    assert encode_value(Sub(b=1, a=2)) == encode_value({"a": 2, "b": 1})


def test_map_keys_sort_by_utf8_bytes():
    # "Z" (0x5a) < "a" (0x61) < "ab" < "é" (0xc3 0xa9) < "中" (0xe4 ...): byte order, prefixes first.
    enc = encode_value({"中": 0, "é": 0, "ab": 0, "a": 0, "Z": 0})
    assert list(decode_value(enc)) == ["Z", "a", "ab", "é", "中"]
    # U+FFFF sorts after U+10000 in UTF-16 but before it in UTF-8.
    assert list(decode_value(encode_value({"\U00010000": 1, "\uffff": 2}))) == ["\uffff", "\U00010000"]


# ---- encode errors ----


@pytest.mark.parametrize(
    ("obj", "fragment"),
    [
        (1.5, "value: float is not encodable"),
        ({"meta": [1, 2, 1.5]}, 'value["meta"][2]: float is not encodable'),
        ({"s": {1, 2}}, 'value["s"]: set is not encodable'),
        ([object()], "value[0]: object is not encodable"),
        ({1: "x"}, "map key 1 is int, not str"),
        ({"a": {b"k": 1}}, "value[\"a\"]: map key b'k' is bytes, not str"),
        (2**63, "outside the i64 range"),
        ([-(2**63) - 1], "value[0]: int -9223372036854775809 is outside the i64 range"),
        ("\ud800", "lone surrogate"),
        ({"\ud800": 1}, "lone surrogate"),
    ],
)
def test_unencodable_values_name_type_and_path(obj, fragment):
    with pytest.raises(EncodeError) as e:
        encode_value(obj)
    assert fragment in str(e.value)
    assert isinstance(e.value, InvalidInputError) and isinstance(e.value, ValueError)


def test_nesting_limit_holds_both_ways():
    assert codec.MAX_VALUE_DEPTH == 32
    ok = encode_value(nest(32))
    assert decode_value(ok) == nest(32)
    with pytest.raises(EncodeError, match="nest more than 32 deep"):
        encode_value(nest(33))
    with pytest.raises(DecodeError, match="nest more than 32 deep"):
        decode_value(b"\x06\x00\x00\x00\x01" + ok)
    deep_map: object = 0
    for _ in range(33):
        deep_map = {"k": deep_map}
    with pytest.raises(EncodeError, match="nest more than 32"):
        encode_value(deep_map)


def test_a_cycle_is_an_encode_error_not_a_crash():
    cycle: list = []
    cycle.append(cycle)
    with pytest.raises(EncodeError, match="nest more than 32"):
        encode_value(cycle)


# ---- decode errors ----


def test_unsorted_and_repeated_map_keys_are_rejected():
    unsorted = bytes.fromhex("0700000002" "0000000162" "00" "0000000161" "00")
    with pytest.raises(DecodeError) as e:
        decode_value(unsorted)
    msg = str(e.value)
    assert "map key #1" in msg and "at byte 11" in msg and '"a" sorts before the previous key "b"' in msg
    repeated = bytes.fromhex("0700000002" "0000000161" "00" "0000000161" "00")
    with pytest.raises(DecodeError, match='"a" repeats the previous key'):
        decode_value(repeated)
    # Nested: the path names where.
    nested = bytes.fromhex("0700000001" "0000000178") + unsorted
    with pytest.raises(DecodeError, match=r'value\["x"\] \(map key #1\) at byte 21'):
        decode_value(nested)


def test_bad_utf8_is_rejected_in_strings_and_keys():
    with pytest.raises(DecodeError, match=r"\(str\) at byte 6: not valid UTF-8"):
        decode_value(bytes.fromhex("0500000002" "61ff"))
    with pytest.raises(DecodeError, match="map key #0.*not valid UTF-8"):
        decode_value(bytes.fromhex("0700000001" "00000001" "c0" "00"))
    # Overlong encodings and surrogates are not UTF-8 either.
    for bad in ("c0af", "eda080"):
        data = bytes.fromhex(bad)
        with pytest.raises(DecodeError, match="not valid UTF-8"):
            decode_value(b"\x05" + struct.pack(">I", len(data)) + data)


def test_unknown_tags_and_empty_input_are_rejected():
    with pytest.raises(DecodeError, match="at byte 0: unknown tag 0x08"):
        decode_value(b"\x08")
    with pytest.raises(DecodeError, match=r"value\[1\] at byte 6: unknown tag 0xff"):
        decode_value(bytes.fromhex("0600000002" "00" "ff"))
    with pytest.raises(DecodeError, match="truncated"):
        decode_value(b"")


@pytest.mark.parametrize("tag", [0x04, 0x05, 0x06, 0x07])
def test_huge_announced_lengths_fail_fast_without_allocating(tag):
    with pytest.raises(DecodeError, match="truncated"):
        decode_value(bytes([tag]) + b"\xff\xff\xff\xff" + b"\x00" * 3)


def test_decode_errors_are_typed():
    with pytest.raises(DecodeError) as e:
        decode_value(b"\x09")
    assert isinstance(e.value, MalformedInputError) and isinstance(e.value, LedgerError)
    assert e.value.index is None
