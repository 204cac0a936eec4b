"""Contracts: deterministic code registered by name that turns transactions into state changes.

A contract sees only its own slice of a block (the transactions that name it, in block order) and
writes only its own namespace, so slices never interfere and the block's result does not depend on
the order slices run in. Reads of another contract's state see the state as of the block's start.

Deterministic means the same on every node, in every process: the same writes in the same order
(the state root depends on it), the same events and errors. Nothing of the clock, the host or
randomness; no iteration in hash order (a ``set`` of str, or what is built from one), which differs
between processes unless ``PYTHONHASHSEED`` is fixed; sort instead.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .. import _native
from ..codec import decode_value, utf8
from ..errors import InvalidInputError, LedgerError

log = logging.getLogger(__name__)

# A key in a contract's namespace: long enough that `contract "/" key` fits the store's largest
# state key whatever the contract's name (LMDB keys are at most 511 bytes).
MAX_KEY_SIZE = _native.MAX_STATE_KEY_LEN - _native.MAX_NAME_LEN - 1
MAX_VALUE_SIZE = 1 << 20
MAX_EVENT_NAME = 256


class ContractError(LedgerError):
    """Raised by a contract method to fail its transaction; the message goes into the receipt.
    Any other exception fails it too, but unless it is ledgercore's own (a ``LedgerError``) its
    receipt names only the exception's type and the method: the interpreter's messages differ
    between Python versions, and every node, whatever its Python, must store the same receipt."""


class ContractInputError(ContractError, InvalidInputError):
    """A key, query name or query arguments that cannot be used: inside a transaction it fails
    that transaction like any ContractError; from a caller reading state it is a ValueError."""


def method(fn: Callable[..., None]) -> Callable[..., None]:
    """Marks a contract method that transactions may call: ``fn(self, ctx, **args)``."""
    fn.__ledger_method__ = True  # type: ignore[attr-defined]
    return fn


def query(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Marks a read-only query: ``fn(self, state, **args)`` where ``state.get(key)`` reads this contract."""
    fn.__ledger_query__ = True  # type: ignore[attr-defined]
    return fn


def key_bytes(key: str | bytes) -> bytes:
    if isinstance(key, str):
        raw = utf8(key, "key", ContractInputError)
    elif isinstance(key, (bytes, bytearray, memoryview)):
        raw = bytes(key)
    else:  # bytes(5) would quietly make the key b"\0" * 5 (and bytes(10**12) try to allocate it)
        raise ContractInputError(f"key must be str or bytes, got {type(key).__name__}")
    if not raw or len(raw) > MAX_KEY_SIZE:
        raise ContractInputError(f"key must be 1..{MAX_KEY_SIZE} bytes, got {len(raw)}")
    return raw


def state_key(contract: str, key: str | bytes) -> bytes:
    """The state table's key of ``contract/key``. A contract name no transaction can carry, or a
    bad key, raises a ``ValueError`` (``MalformedInputError``, ``ContractInputError``)."""
    utf8(contract, "contract", ContractInputError)
    return _native.state_key(contract, key_bytes(key))


class StateReader:
    """Reads committed state as of one snapshot (the block's start, or now for queries)."""

    def __init__(self, get_many: Callable[[list[bytes]], dict[bytes, bytes]]) -> None:
        self._get_many = get_many

    def get(self, contract: str, key: str | bytes) -> bytes | None:
        k = state_key(contract, key)
        return self.get_many([k]).get(k)

    def get_many(self, state_keys: list[bytes]) -> dict[bytes, bytes]:
        """Values (without their versions) of those ``contract/key`` entries that exist."""
        return self._get_many(state_keys)


class ContractState:
    """One contract's view for queries: ``get(key)`` in its own namespace."""

    def __init__(self, reader: StateReader, contract: str) -> None:
        self._reader, self.contract = reader, contract

    def get(self, key: str | bytes) -> bytes | None:
        return self._reader.get(self.contract, key)

    def read(self, contract: str, key: str | bytes) -> bytes | None:
        return self._reader.get(contract, key)


@dataclass
class Slice:
    """The transactions of one block that call one contract, with what they need to run."""

    contract: str
    height: int
    timestamp: int
    batch: _native.TxBatch  # the whole decoded block
    indices: np.ndarray  # positions in the block of this slice's transactions, ascending
    state: StateReader


@dataclass
class SliceResult:
    """What a slice did: per-transaction outcome (aligned with ``Slice.indices``) and its writes."""

    ok: np.ndarray
    errors: dict[int, str] = field(default_factory=dict)  # block index -> error
    events: list[tuple[int, str, bytes]] = field(default_factory=list)  # (block index, name, data)
    keys: list[bytes] = field(default_factory=list)  # state keys written, in order
    values: list[bytes | None] = field(default_factory=list)  # None deletes
    txs: Sequence[int] | np.ndarray = field(default_factory=list)  # block index of each write
    # True when every written key was read through ``Slice.state`` first (the built-in kernels
    # read each key they may write): the ledger then already has their stored entries.
    writes_read: bool = False


class Context:
    """What a Python contract method sees of its transaction and of state."""

    __slots__ = ("sender", "txid", "height", "index", "timestamp", "_contract", "_slice", "_overlay", "_writes", "_events")

    def __init__(self, sl: Slice, i: int, sender: bytes, txid: bytes, overlay: dict[bytes, bytes | None]) -> None:
        self.sender, self.txid = sender, txid
        self.height, self.index, self.timestamp = sl.height, i, sl.timestamp
        self._contract, self._slice, self._overlay = sl.contract, sl, overlay
        # Only put, delete and emit add to these: each checks what it adds against the limits.
        self._writes: dict[bytes, bytes | None] = {}
        self._events: list[tuple[str, bytes]] = []

    def _key(self, key: str | bytes) -> bytes:
        # Per call of a transaction: the contract's name was checked when it was registered.
        return _native.state_key(self._contract, key_bytes(key))

    def get(self, key: str | bytes) -> bytes | None:
        """This contract's value for ``key``, including earlier writes of this block."""
        k = self._key(key)
        for layer in (self._writes, self._overlay):
            if k in layer:
                return layer[k]
        return self._slice.state.get_many([k]).get(k)

    def read(self, contract: str, key: str | bytes) -> bytes | None:
        """Another contract's committed value, as of the start of this block."""
        return self._slice.state.get(contract, key)

    def put(self, key: str | bytes, value: bytes) -> None:
        if not isinstance(value, (bytes, bytearray)):
            raise ContractError(f"values are bytes, got {type(value).__name__}")
        if len(value) > MAX_VALUE_SIZE:
            raise ContractError(f"value of {len(value)} bytes exceeds the {MAX_VALUE_SIZE}-byte limit")
        self._writes[self._key(key)] = bytes(value)

    def delete(self, key: str | bytes) -> None:
        self._writes[self._key(key)] = None

    def emit(self, name: str, data: bytes = b"") -> None:
        """Records an event in this transaction's receipt (kept only if the transaction succeeds)."""
        try:
            size = len(name.encode()) if isinstance(name, str) else 0
        except UnicodeEncodeError:
            raise ContractError(f"event name {name!r:.80} is not valid UTF-8 (it holds a lone surrogate)") from None
        if not 1 <= size <= MAX_EVENT_NAME:
            raise ContractError(f"an event name is a str of 1..{MAX_EVENT_NAME} UTF-8 bytes, got {name!r:.80}")
        if not isinstance(data, (bytes, bytearray, memoryview)):  # bytes(5) would be five zero bytes
            raise ContractError(f"event data is bytes, got {type(data).__name__}")
        size = memoryview(data).nbytes  # len() of a memoryview counts its items, not bytes
        if size > MAX_VALUE_SIZE:
            raise ContractError(f"event data of {size} bytes exceeds the {MAX_VALUE_SIZE}-byte limit")
        self._events.append((name, bytes(data)))


def _text(exc: BaseException) -> str:
    """``str(exc)``, or what it is where that fails (a contract's own ``__str__`` may raise)."""
    try:
        return str(exc)
    except BaseException:  # noqa: BLE001 - any failure of the contract's code is its transaction's
        return f"<{type(exc).__name__} whose message cannot be shown>"


def _argument_problem(fn: Callable[..., Any], args: dict[str, Any]) -> str | None:
    """Why ``args`` do not fit the parameters of ``fn`` after its first (the context or state);
    None if they do. In words that depend only on the contract's code, not on the interpreter's
    ``TypeError`` text (which differs between Python versions)."""
    signature = inspect.signature(fn)
    try:
        signature.bind(None, **args)
    except TypeError:
        pass
    else:
        return None
    marks: dict[inspect._ParameterKind, str] = {inspect.Parameter.VAR_POSITIONAL: "*{}", inspect.Parameter.VAR_KEYWORD: "**{}"}
    takes = [
        marks.get(p.kind, "{}" if p.default is p.empty else "{}=...").format(p.name)
        for p in list(signature.parameters.values())[1:]
    ]
    return f"it takes ({', '.join(takes)}), got ({', '.join(sorted(args))})"


class Contract:
    """Base class of contracts. Subclasses set ``name`` and mark methods with :func:`method`."""

    name: ClassVar[str]

    def methods(self) -> frozenset[str]:
        return frozenset(n for n in dir(type(self)) if getattr(getattr(type(self), n), "__ledger_method__", False))

    def queries(self) -> frozenset[str]:
        return frozenset(n for n in dir(type(self)) if getattr(getattr(type(self), n), "__ledger_query__", False))

    def execute(self, sl: Slice) -> SliceResult:
        """Runs the slice transaction by transaction; a failure discards only that transaction's writes."""
        txs: list[int] = []
        result = SliceResult(ok=np.zeros(len(sl.indices), dtype=bool), txs=txs)
        overlay: dict[bytes, bytes | None] = {}
        known = self.methods()
        methods, encoded_args, senders, txids = sl.batch.methods, sl.batch.args, sl.batch.public_keys, sl.batch.ids
        for j, i in enumerate(sl.indices.tolist()):
            name = methods[i]
            if name not in known:
                result.errors[i] = f"contract {self.name!r} has no method {name!r}"
                continue
            ctx = Context(sl, i, senders[i].tobytes(), txids[i].tobytes(), overlay)
            fn = getattr(self, name)
            args: Any = decode_value(encoded_args[i])  # a dict: the tx codec checked it
            try:
                fn(ctx, **args)
            # Any exception, KeyboardInterrupt included: contracts run on the ledger's write
            # thread, where no Ctrl-C is delivered, so the contract raised it. A contract bug
            # fails its transaction, never the block (which every node would refuse alike).
            except BaseException as exc:  # noqa: BLE001
                problem = _argument_problem(fn, args) if isinstance(exc, TypeError) else None
                if isinstance(exc, ContractError):
                    result.errors[i] = _text(exc)
                elif problem is not None:
                    result.errors[i] = f"bad arguments for {self.name}.{name}: {problem}"
                elif isinstance(exc, LedgerError):  # ledgercore's own message, the same on every node
                    result.errors[i] = f"{type(exc).__name__} in {self.name}.{name}: {_text(exc)}"
                else:
                    result.errors[i] = f"{type(exc).__name__} in {self.name}.{name}"
                    log.debug("%s.%s failed: %s", self.name, name, _text(exc))
                continue
            result.ok[j] = True
            overlay.update(ctx._writes)
            for k, v in ctx._writes.items():
                result.keys.append(k)
                result.values.append(v)
                txs.append(i)
            result.events.extend((i, n, d) for n, d in ctx._events)
        return result

    def query(self, state: ContractState, name: str, args: dict[str, Any]) -> Any:
        if not isinstance(name, str) or name not in self.queries():
            raise ContractInputError(f"contract {self.name!r} has no query {name!r}")
        fn = getattr(self, name)
        problem = _argument_problem(fn, args)
        if problem is not None:
            raise ContractInputError(f"bad arguments for {self.name}.{name}: {problem}")
        return fn(state, **args)
