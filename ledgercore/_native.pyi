"""Type stubs for the native extension module built from ``bindings/``."""

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar, final

import numpy as np

_Rows = Sequence[bytes] | np.ndarray

def thread_count() -> int: ...
def hash_digest(algo: str, data: bytes) -> bytes: ...
def hash_many(algo: str, items: _Rows) -> np.ndarray: ...
def verify(scheme: str, public_key: bytes, message: bytes, signature: bytes) -> bool: ...
def verify_batch(scheme: str, public_keys: _Rows, messages: _Rows, signatures: _Rows, seed: bytes) -> np.ndarray: ...
def merkle_root(algo: str, leaves: _Rows) -> bytes: ...
def merkle_verify_inclusion(
    algo: str, leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool: ...
def merkle_verify_consistency(
    algo: str, old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool: ...

@final
class SecretKey:
    def __new__(cls, scheme: str, private_bytes: bytes) -> SecretKey: ...
    @property
    def scheme(self) -> str: ...
    @property
    def public_key(self) -> bytes: ...
    def private_bytes(self) -> bytes: ...
    def sign(self, message: bytes) -> bytes: ...
    def sign_many(self, messages: _Rows) -> np.ndarray: ...

@final
class MerkleLog:
    def __new__(cls, algo: str) -> MerkleLog: ...
    @property
    def algo(self) -> str: ...
    @property
    def size(self) -> int: ...
    def append(self, leaf: bytes) -> int: ...
    def extend(self, leaves: _Rows) -> None: ...
    def root(self, size: int | None = None) -> bytes: ...
    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]: ...
    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(data: bytes) -> MerkleLog: ...

# ---- canonical codec (native/src/codec) ----

MAX_TX_SIZE: int
MAX_VALUE_DEPTH: int
MAX_NAME_LEN: int
MAX_CHAIN_ID_LEN: int
MAX_STATE_KEY_LEN: int  # contract "/" key, as the state table's LMDB key (at most 511 bytes)
CHECK_THREAD_NAME: str  # batch checks' native threads: this, '-', their number

def suites() -> list[tuple[str, str, str, int, int]]: ...
def encode_value(obj: object) -> bytes: ...
def decode_value(data: bytes) -> object: ...
def encode_tx_payload(
    suite: str, chain_id: str, sender: bytes, nonce: int, timestamp: int, contract: str, method: str, args: object
) -> bytes: ...
def decode_tx(raw: bytes) -> tuple[str, str, bytes, int, int, str, str, bytes, bytes, int, bytes]: ...
def encode_header(
    suite: str,
    chain_id: str,
    height: int,
    prev_hash: bytes,
    tx_root: bytes,
    state_root: bytes,
    history_root: bytes,
    receipts_root: bytes,  # empty: a version 1 header
    timestamp: int,
    proposer: bytes,
    tx_count: int,
    consensus: bytes,
) -> bytes: ...
def decode_header(raw: bytes) -> tuple[str, str, int, bytes, bytes, bytes, bytes, bytes, int, bytes, int, bytes]: ...
def encode_block(header: bytes, raws: _Rows) -> bytes: ...
def decode_block(
    data: bytes,
) -> tuple[tuple[str, str, int, bytes, bytes, bytes, bytes, bytes, int, bytes, int, bytes], bytes, list[bytes]]: ...
# Raft entry runs: entries are (term, index, type, data) named tuples of class ``cls``; ``types``
# maps each wire type code to its Python value.
_E = TypeVar("_E", bound=tuple[int, int, int, bytes])

def encode_entries(
    entries: Sequence[tuple[int, int, int, bytes]], follows: tuple[int, int, int] | None = None
) -> bytes: ...
def decode_entries(
    buf: bytes, pos: int, cls: type[_E], types: tuple[object, ...], follows: tuple[int, int, int] | None = None
) -> tuple[list[_E], int]: ...
def make_entries(
    cls: type[_E], types: tuple[object, ...], term: int, first: int, kind: int, datas: Iterable[bytes]
) -> list[_E]: ...
def entries_prefix(entries: Sequence[tuple[int, int, int, bytes]], max_bytes: int, overhead: int) -> tuple[int, int]: ...
def decode_txs(suite: str, chain_id: str, raws: _Rows) -> TxBatch: ...

# -- ledger store entries (docs/FORMAT.md section 6); a block's writes come as three columns: state
# keys, values (None: deleted) and the index of the transaction that wrote each, a uint32 array.
def check_contract_name(name: str) -> None: ...  # MalformedInputError unless [a-z0-9_], a letter first, 1..64 bytes
def first_outside_namespace(contract: str, keys: _Rows) -> int | None: ...  # first key not contract "/" ...
def state_key(contract: str, key: bytes) -> bytes: ...  # contract "/" key; the name checked as above
def nonce_heads(senders: _Rows) -> list[bytes]: ...  # the distinct senders' head-run keys, sorted
def nonce_lookups(
    senders: _Rows, nonces: np.ndarray, heads: Sequence[tuple[bytes, bytes]]
) -> list[bytes]: ...  # where to read up to two older runs from, per nonce below its sender's head run
def nonce_update(
    senders: _Rows, nonces: np.ndarray, rows: Sequence[tuple[bytes, bytes]]
) -> tuple[np.ndarray, list[tuple[bytes, bytes]], list[bytes]]: ...  # (fresh, rows to put, keys to delete)
def nonce_runs_of_used(
    keys: _Rows, sender_len: int, open: tuple[bytes, int, int] | None, last: bool
) -> tuple[list[tuple[bytes, bytes]], tuple[bytes, int, int] | None]: ...  # one-row-per-nonce rows as runs
def state_root(algo: str, prev_root: bytes, keys: _Rows, values: Sequence[bytes | None], txs: np.ndarray) -> bytes: ...
def stage_block_entries(
    overlay: StateOverlay, height: int, keys: _Rows, values: Sequence[bytes | None], txs: np.ndarray, txids: _Rows,
    current: list[tuple[bytes, bytes]],
) -> KeyValues: ...  # stages the state entries in overlay; returns history's, for putmulti
def run_builtin(
    name: str, batch: TxBatch, indices: np.ndarray, read: Callable[[list[bytes]], list[tuple[bytes, bytes]]]
) -> tuple[np.ndarray, list[tuple[int, str]], list[bytes], list[bytes | None], np.ndarray]: ...  # ok, errors, keys, values, txs
def sorted_keys(keys: _Rows) -> list[bytes]: ...  # distinct, in byte order
def history_values(
    keys: _Rows, entries: Sequence[bytes | None]
) -> tuple[list[bytes | None], int]: ...  # (value or None for a delete, per entry; first bad index or -1)
def replaced_entry_fault(
    keys: _Rows, stored: Sequence[bytes], newer: Sequence[bytes], entries: Sequence[bytes | None]
) -> tuple[int, str] | None: ...  # the first unsound state entry that an unfolded change replaces

@final
class SignatureCheck:
    """A batch signature check running on native threads; ``wait`` releases the GIL until it is done."""
    def wait(self) -> np.ndarray: ...  # (N,) bool, True where valid
    @property
    def seconds(self) -> float: ...  # how long the check took on its threads

@final
class TxLocator:
    """Committed tx ids -> the heights of the blocks that may hold them (confirm against the block)."""
    def __new__(cls) -> TxLocator: ...
    def __len__(self) -> int: ...
    def add_block(self, height: int, ids: bytes) -> None: ...  # heights ascending; ids 32 bytes each
    def candidates(self, ids: _Rows, runs: Sequence[np.ndarray] = ...) -> tuple[np.ndarray, np.ndarray]: ...  # (positions, heights), uint64; runs: uint8 arrays
    def to_run(self) -> bytes: ...  # sorted 12-byte records: id prefix (8) || u32 height, big-endian

@final
class KeyValues:
    """(key, value) pairs held natively, made into tuples one at a time as they are iterated."""
    def __len__(self) -> int: ...
    def __getitem__(self, index: int, /) -> tuple[bytes, bytes]: ...
    def __iter__(self) -> Iterator[tuple[bytes, bytes]]: ...

@final
class StateOverlay:
    """State entries (key -> change id || flag) not yet folded into the store's `state` table."""
    def __new__(cls, cursor: bytes | None = None) -> StateOverlay: ...  # the sweep goes on after cursor
    def __len__(self) -> int: ...  # committed entries
    @property
    def cursor(self) -> bytes | None: ...  # the last key folded: the next fold starts after it
    def get(self, key: bytes, staged: bool = False) -> bytes | None: ...
    def split(self, keys: list[bytes], staged: bool = False) -> tuple[list[tuple[bytes, bytes]], list[bytes]]: ...  # (found, missing)
    def load(self, entries: Sequence[tuple[bytes, bytes]]) -> None: ...  # (change id, history entry), change-id order
    def fold(self, n: int) -> KeyValues: ...  # the next n entries in key order, for state
    def lowest_height(self) -> int | None: ...  # of a change left unfolded once the write commits
    def publish(self) -> None: ...  # the write is durable: committed for get and split at once; merged by the next change
    def forget_below(self, height: int) -> None: ...  # entries another process's folds put in state
    def discard(self) -> None: ...  # the write failed (a published one is merged first, and stays)
    def items(self) -> list[tuple[bytes, bytes]]: ...  # committed, in key order

def merge_runs(runs: Sequence[bytes]) -> bytes: ...  # one run of every record; each run checked

def id_positions(ids: bytes, wanted: _Rows) -> np.ndarray: ...  # int64 first position in ids, -1 if absent
def make_txs(
    suite: str,
    chain_id: str,
    private_keys: _Rows,
    contract: str,
    methods: str | Sequence[str],
    args: _Rows,
    nonces: np.ndarray,  # (N,) uint64
    timestamps: np.ndarray,  # (N,) uint64
    signers: np.ndarray | None = None,  # (N,) uint32 index into private_keys
) -> list[bytes]: ...

@final
class TxBatch:
    """Transactions of one chain decoded in parallel; each column property builds a new object."""

    def __len__(self) -> int: ...
    @property
    def count(self) -> int: ...
    @property
    def suite(self) -> str: ...
    @property
    def chain_id(self) -> str: ...
    @property
    def ids(self) -> np.ndarray: ...  # (N, 32) uint8
    @property
    def public_keys(self) -> np.ndarray: ...  # (N, public key size) uint8
    @property
    def signatures(self) -> np.ndarray: ...  # (N, 64) uint8
    @property
    def messages(self) -> list[bytes]: ...  # the payloads: exactly what was signed
    @property
    def nonces(self) -> np.ndarray: ...  # (N,) uint64
    @property
    def timestamps(self) -> np.ndarray: ...  # (N,) uint64
    @property
    def contracts(self) -> list[str]: ...
    @property
    def methods(self) -> list[str]: ...
    @property
    def args(self) -> list[bytes]: ...  # canonical encodings of the args maps
    @property
    def raws(self) -> list[bytes]: ...
    def verify_signatures(self, seed: bytes) -> np.ndarray: ...  # (N,) bool
    # The same check, returning at once; with one_thread it runs on one of the checks' threads as
    # one batch equation (less CPU per signature, for callers keeping one check per thread).
    def start_signature_check(self, seed: bytes, one_thread: bool = False) -> SignatureCheck: ...
