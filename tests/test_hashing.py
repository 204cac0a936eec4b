"""hashing.digest / digest_many against independent implementations: hashlib (SHA-256), the `blake3`
package and gmssl's pure-Python SM3, plus the GB/T 32905 examples."""

from __future__ import annotations

import hashlib

import blake3
import numpy as np
import pytest
from conftest import assert_typed_argument_error, load_vectors
from gmssl import func, sm3
from hypothesis import given
from hypothesis import strategies as st

from ledgercore import hashing
from ledgercore.errors import InvalidInputError, MalformedInputError, UnknownNameError


def reference(algo: str, data: bytes) -> bytes:
    if algo == "sha256":
        return hashlib.sha256(data).digest()
    if algo == "blake3":
        return blake3.blake3(data).digest()
    if algo == "sm3":
        return bytes.fromhex(sm3.sm3_hash(func.bytes_to_list(data)))
    raise AssertionError(algo)


ALGOS = ["blake3", "sha256", "sm3"]
# Around every block boundary of the three functions (64-byte blocks; BLAKE3 1 KiB chunks).
LENGTHS = [0, 1, 3, 31, 32, 55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 1023, 1024, 1025, 2049]


def test_algorithm_names():
    assert tuple(hashing.ALGORITHMS) == ("blake3", "sha256", "sm3")
    assert hashing.DIGEST_SIZE == 32


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("length", LENGTHS)
def test_digest_matches_reference_at_block_boundaries(algo, length):
    data = bytes((i * 7 + length) % 256 for i in range(length))
    got = hashing.digest(data, algo)
    assert isinstance(got, bytes)
    assert got == reference(algo, data)


@pytest.mark.parametrize("algo", ALGOS)
@given(data=st.binary(max_size=300))
def test_digest_matches_reference_on_random_input(algo, data):
    assert hashing.digest(data, algo) == reference(algo, data)


def test_default_algorithm_is_blake3():
    assert hashing.digest(b"ledgercore") == blake3.blake3(b"ledgercore").digest()
    assert hashing.digest_many([b"ledgercore"])[0].tobytes() == blake3.blake3(b"ledgercore").digest()


def test_empty_input_digests_are_the_well_known_values():
    assert hashing.digest(b"", "sha256").hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert hashing.digest(b"", "blake3").hex() == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    assert hashing.digest(b"", "sm3").hex() == "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b"


def test_sm3_gbt32905_examples():
    vectors = load_vectors("sm3.json")["vectors"]
    assert len(vectors) == 2
    for v in vectors:
        data = v["message_ascii"].encode("ascii")
        # The data file itself agrees with gmssl, and ledgercore agrees with both.
        assert sm3.sm3_hash(func.bytes_to_list(data)) == v["digest"]
        assert hashing.digest(data, "sm3").hex() == v["digest"]
        assert hashing.digest_many([data], "sm3")[0].tobytes().hex() == v["digest"]


# ---------------------------------------------------------------------------------------- digest_many


def as_rows(out: np.ndarray) -> list[bytes]:
    return [row.tobytes() for row in out]


def check_shape(out: np.ndarray, n: int) -> None:
    assert isinstance(out, np.ndarray)
    assert out.shape == (n, 32)
    assert out.dtype == np.uint8


@pytest.mark.parametrize("algo", ALGOS)
@given(items=st.lists(st.binary(max_size=200), max_size=20))
def test_digest_many_equals_digest_per_item(algo, items):
    out = hashing.digest_many(items, algo)
    check_shape(out, len(items))
    assert as_rows(out) == [reference(algo, x) for x in items]


@pytest.mark.parametrize("algo", ALGOS)
def test_digest_many_accepts_bytearray_memoryview_and_tuples(algo):
    items = [b"abc", bytearray(b"defg"), memoryview(b"hijkl"), b""]
    expected = [hashing.digest(bytes(x), algo) for x in items]
    assert as_rows(hashing.digest_many(items, algo)) == expected
    assert as_rows(hashing.digest_many(tuple(items), algo)) == expected
    assert as_rows(hashing.digest_many(iter(items), algo)) == expected


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("shape", [(0, 0), (0, 16), (5, 0), (1, 1), (7, 64), (3, 1025)])
def test_digest_many_on_2d_uint8_arrays(algo, shape):
    rng = np.random.default_rng(sum(shape))
    array = rng.integers(0, 256, size=shape, dtype=np.uint8)
    out = hashing.digest_many(array, algo)
    check_shape(out, shape[0])
    expected = [hashing.digest(row.tobytes(), algo) for row in array]
    assert as_rows(out) == expected
    # Each row hashes like the same bytes given as a list.
    assert as_rows(hashing.digest_many([row.tobytes() for row in array], algo)) == expected


def test_zero_width_rows_hash_as_empty_strings():
    for algo in ALGOS:
        out = hashing.digest_many(np.zeros((4, 0), dtype=np.uint8), algo)
        assert as_rows(out) == [reference(algo, b"")] * 4


def test_zero_width_rows_are_bounded_in_number_and_a_single_buffer_is_no_column():
    # Regression: zero-width rows take no memory, so an array of 10**12 of them (0 bytes) reached
    # an allocation of 16 TB that aborted the process; a released memoryview raised a bare ValueError.
    with pytest.raises(MalformedInputError, match=f"{2**24 + 1} rows of zero width; at most {2**24}"):
        hashing.digest_many(np.empty((2**24 + 1, 0), dtype=np.uint8))
    with pytest.raises(MalformedInputError, match="rows of zero width"):
        hashing.digest_many(np.empty((10**12, 0), dtype=np.uint8))
    released = memoryview(b"abc")
    released.release()
    for single in (memoryview(b"abc"), released):
        with pytest.raises(MalformedInputError, match="got a single byte string"):
            hashing.digest_many(single)


@pytest.mark.parametrize("algo", ALGOS)
def test_digest_many_of_nothing_is_an_empty_n_by_32_array(algo):
    for empty in ([], (), np.zeros((0, 32), dtype=np.uint8)):
        check_shape(hashing.digest_many(empty, algo), 0)


@pytest.mark.parametrize("algo", ALGOS)
def test_large_batches_take_the_parallel_path_and_agree(algo):
    """Thousands of items (beyond the size where the native side goes parallel), list and array."""
    rng = np.random.default_rng(7)
    array = rng.integers(0, 256, size=(5000, 64), dtype=np.uint8)
    items = [row.tobytes() for row in array]
    out_list = hashing.digest_many(items, algo)
    out_array = hashing.digest_many(array, algo)
    check_shape(out_list, 5000)
    assert np.array_equal(out_list, out_array)
    if algo == "sm3":  # gmssl is pure Python: spot-check a sample of rows against it
        for i in range(0, 5000, 500):
            assert out_list[i].tobytes() == reference(algo, items[i])
    else:
        assert as_rows(out_list) == [reference(algo, x) for x in items]


def test_digest_many_rows_are_independent_of_neighbours():
    """Variable-length items: no row bleeds into the next (a classic offset bug)."""
    items = [bytes([i % 256]) * i for i in range(300)]
    for algo in ALGOS:
        out = as_rows(hashing.digest_many(items, algo))
        assert out == [hashing.digest(x, algo) for x in items]
        assert len(set(out)) == len(items)


# --------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("name", ["md5", "SHA256", "sha-256", "", "blake3 ", "sm2"])
def test_unknown_algorithm_raises_unknown_name_error_naming_it(name):
    for call in (lambda: hashing.digest(b"x", name), lambda: hashing.digest_many([b"x"], name)):
        with pytest.raises(UnknownNameError) as info:
            call()
        assert isinstance(info.value, ValueError)
        assert repr(name) in str(info.value) or f'"{name}"' in str(info.value)
        for known in ALGOS:
            assert known in str(info.value)


@pytest.mark.parametrize(
    "items, fragment",
    [
        ([b"ok", "text"], "item 1 is str"),
        ([None], "item 0 is NoneType"),
        ([b"a", b"b", 5], "item 2 is int"),
        ([b"a", [1, 2]], "item 1 is list"),
        (b"not a list", "single byte string"),
        (bytearray(b"not a list"), "single byte string"),
    ],
)
def test_digest_many_rejects_non_bytes_items_with_a_clear_message(items, fragment):
    with pytest.raises(MalformedInputError) as info:
        hashing.digest_many(items, "sha256")
    assert isinstance(info.value, ValueError)
    assert fragment in str(info.value)


@pytest.mark.parametrize("items", [5, None, 3.5, object()])
def test_digest_many_rejects_non_sequences(items):
    with pytest.raises(MalformedInputError) as info:
        hashing.digest_many(items, "sha256")
    assert f"items: expected a sequence of byte strings, got {type(items).__name__}" in str(info.value)


def test_digest_many_rejects_arrays_it_cannot_read_as_rows():
    with pytest.raises(MalformedInputError, match="contiguous"):
        hashing.digest_many(np.zeros((4, 6), dtype=np.uint8)[:, ::2], "sha256")
    for bad in (np.zeros((2, 3), dtype=np.int64), np.zeros(5, dtype=np.uint8), np.zeros((2, 3, 4), dtype=np.uint8)):
        with pytest.raises(ValueError):
            hashing.digest_many(bad, "sha256")


ALGO_NAMES = '"blake3", "sha256", "sm3"'


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: hashing.digest("licence scan"), MalformedInputError, "data must be bytes, got str"),
        (lambda: hashing.digest(None, "sha256"), MalformedInputError, "data must be bytes, got NoneType"),
        (lambda: hashing.digest(5, "sha256"), MalformedInputError, "data must be bytes, got int"),
        (lambda: hashing.digest([b"a"], "sm3"), MalformedInputError, "data must be bytes, got list"),
        (lambda: hashing.digest(b"x", None), UnknownNameError, f"algo must be a str, one of {ALGO_NAMES}; got NoneType"),
        (lambda: hashing.digest(b"x", b"sha256"), UnknownNameError, f"algo must be a str, one of {ALGO_NAMES}; got bytes"),
        # A bytearray is fine: the algorithm is what is wrong, and the error says so.
        (lambda: hashing.digest(bytearray(b"x"), 3), UnknownNameError, f"algo must be a str, one of {ALGO_NAMES}; got int"),
        (lambda: hashing.digest_many([b"x"], None), UnknownNameError, f"algo must be a str, one of {ALGO_NAMES}; got NoneType"),
    ],
    ids=["str", "None", "int", "list", "algo None", "algo bytes", "bytearray, algo int", "many, algo None"],
)  # fmt: skip
def test_wrong_argument_types_raise_typed_errors_naming_the_argument(call, error, message):
    assert_typed_argument_error(call, error, message)


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_digest_accepts_bytearray_and_memoryview(algo, kind):
    data = b"licence scan"
    assert hashing.digest(kind(data), algo) == hashing.digest(data, algo) == reference(algo, data)
    assert hashing.digest(kind(b""), algo) == reference(algo, b"")
    view = memoryview(b"xx" + data + b"yy")[2:-2]  # a slice of a larger buffer
    assert hashing.digest(view, algo) == reference(algo, data)


def test_a_type_error_no_check_can_place_is_still_a_typed_error(monkeypatch):
    """A TypeError from the native side whose cause the checks do not find (every argument looks
    right) is an InvalidInputError carrying the native message, not a bare TypeError."""

    def refuses(algo, data):
        raise TypeError("something else")

    monkeypatch.setattr(hashing._native, "hash_digest", refuses)
    with pytest.raises(InvalidInputError) as info:
        hashing.digest(b"x", "sha256")
    assert type(info.value) is InvalidInputError
    assert str(info.value) == "invalid arguments: something else"
