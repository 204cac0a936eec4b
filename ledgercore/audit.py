"""Audit a ledger: re-derive from what is stored everything a third party may doubt.

:func:`audit` (also :meth:`Ledger.audit`) reads one consistent snapshot of the store and checks,
height by height from the genesis block up:

* the header stored under the height equals the header framed inside the stored block body, and
  carries that height, the chain's suite and chain id;
* ``prev_hash`` is the hash of the block below (zeros for genesis); the stored hash leaf (the
  block-hash Merkle log) is the header's hash;
* the block's raw transactions decode (one native ``decode_txs`` batch per block); their number is
  ``tx_count``; ``tx_root`` is the RFC 9162 root over their ids and those ids are the stored ones;
* ``history_root`` is the RFC 9162 root over the hashes of every earlier block;
* ``receipts_root`` (a version 2 header: every block of a chain whose genesis has one) is the suite
  hash of the block's stored receipts record;
* the tx locator's stored runs hold exactly the (id prefix, height) records of the blocks they
  cover (their boundaries depend on how blocks were grouped into commits, so they are checked
  against the stored ids rather than against the replay);
* state: every block is replayed, with its stored timestamp and proposer, into a fresh ledger of the
  same suite, chain id, contracts and permission hook in a temporary directory. Signatures are
  verified again there, and every replayed header (hence ``state_root``) and receipt list must equal
  the stored one. At the end the derived tables and the chain metadata must equal the replay's,
  entry for entry: ``history``, ``nonces``, and ``state`` as the store means it (the table, with
  the entries of the changes not yet folded into it read from ``history`` over it); ``meta``
  less ``state_mark`` and ``state_sweep``, which depend on how blocks were grouped into commits
  and when the ledger was reopened. The entries of the ``state`` table that an unfolded change
  replaces (so the comparison does not see them) must each name an existing change of their key,
  no newer than the replacing one, with its live or deleted flag.

The first disagreement raises :class:`~ledgercore.errors.IntegrityError` naming the height and the
field. LMDB keeps no page checksums, and some damage (a page number or type it does not check) kills
the reading process with a signal: ``ledgercore audit`` therefore audits in a child process and
reports such a death, and LMDB's own corruption errors, as failures. Python works per block, never per transaction: decoding, hashing and Merkle roots are native
batch calls and table comparisons are list comparisons done in C.

Cost: the replay is O(chain) in time and temporary disk, and the final table comparison holds the
derived tables in memory (twice). That is right for tests, for the CLI on modest chains and for
spot checks; ``replay=False`` keeps only the structural checks (O(chain) time; memory for one
block, and for a map of the ids one locator run covers, the largest about half the chain's). The
audit holds one read snapshot of the live store while it runs, so a ledger that needs to grow its
LMDB map in the same process waits until the audit ends.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb

from . import _native, hashing, merkle
from .block import BlockHeader, decode_block, differing_fields
from .child_process import ChildDied, run_isolated
from .errors import IntegrityError, InvalidSignatureError, LedgerError
from .ledger import CHANGE_SIZE, Ledger, stored_text, unfolded_state
from .receipts import count_failures
from .store import Store, StoreError, height_key
from .user_code import UserCodeError, load_authorizer, load_contracts

# Tables written once per block under the block's height.
PER_BLOCK_TABLES = ("headers", "blocks", "txids", "receipts", "hashes")
# Tables derived from executing the blocks, compared whole against the replay (history first: the
# state the store means is read partly from it).
DERIVED_TABLES = ("history", "state", "nonces", "meta")


@dataclass(frozen=True)
class AuditReport:
    """What an audit that passed covered."""

    suite: str
    chain_id: str
    height: int  # last block audited
    transactions: int  # in blocks 1..height
    failed_transactions: int  # of those, how many have a failed receipt
    state_keys: int  # state entries, tombstones of deleted keys included
    history_entries: int
    replayed: bool  # whether state was re-derived by replay (False: structure only)
    seconds: float

    @property
    def blocks(self) -> int:
        return self.height + 1

    def __str__(self) -> str:
        what = "headers, links, tx roots, txids, history roots" + (
            ", signatures, state roots, receipts and state tables (by replay)" if self.replayed else ""
        )
        return (
            f"audit passed: {self.suite} chain {self.chain_id!r}, blocks 0..{self.height}, "
            f"{self.transactions} transactions ({self.failed_transactions} failed), "
            f"{self.state_keys} state keys, {self.history_entries} history entries; "
            f"checked {what} in {self.seconds:.2f} s"
        )


def audit(ledger: Ledger, *, replay: bool = True, workdir: str | os.PathLike[str] | None = None) -> AuditReport:
    """Checks the ledger's stored blocks, roots and state; raises ``IntegrityError`` on the first
    disagreement. ``workdir`` is where the replay ledger is made (default: /dev/shm when it has
    room, else the system temp dir)."""
    t0 = time.perf_counter()
    store: Store = ledger._store
    suite, chain_id = ledger.suite, ledger.chain_id
    with store.read() as txn:
        meta = {k: v for k, v in _table(txn, store, "meta")}
        if meta.get(b"suite") != suite.name.encode():
            raise IntegrityError(None, "meta.suite", f"stored {meta.get(b'suite')!r}, ledger opened as {suite.name!r}")
        if meta.get(b"chain_id") != chain_id.encode():
            raise IntegrityError(None, "meta.chain_id", f"stored {meta.get(b'chain_id')!r}, ledger is {chain_id!r}")
        raw_height = meta.get(b"height")
        if raw_height is None or len(raw_height) != 8:
            raise IntegrityError(None, "meta.height", f"stored {raw_height!r}, not a u64")
        top = int.from_bytes(raw_height, "big")

        with contextlib.ExitStack() as cleanup:
            replica = None
            if replay:
                tmp = tempfile.TemporaryDirectory(prefix="ledgercore-audit-", dir=workdir or _replay_dir(store))
                replica = _open_replica(ledger, Path(cleanup.enter_context(tmp)) / "replay")
                cleanup.callback(replica.close)
            log = merkle.MerkleLog(suite.hash)
            prev: BlockHeader | None = None
            transactions = failed = 0
            for h in range(top + 1):
                header, raws, receipts = _check_block(txn, store, ledger, h, prev, log)
                failed += count_failures(receipts, h, header.tx_count)  # what is wrong if they do not decode
                if header.receipts_root and hashing.digest(receipts, suite.hash) != header.receipts_root:
                    raise IntegrityError(h, "receipts_root", "not the hash of the block's stored receipts")
                transactions += header.tx_count
                if replica is not None:
                    _replay_block(replica, h, header, raws, receipts)
                log.append(header.hash)
                prev = header
            _check_table_extent(txn, store, top)
            _check_locator_runs(txn, store, top)
            newer = dict(unfolded_state(store, txn).items())
            replaced = store.get_many(txn, "state", list(newer))
            _check_replaced(txn, store, newer, replaced)
            folded = txn.stat(store.tables["state"])["entries"]
            state_keys = folded + len(newer) - len(replaced)
            history_entries = txn.stat(store.tables["history"])["entries"]
            if replica is not None:
                with replica._store.read() as rtxn:
                    for table in DERIVED_TABLES:
                        live = _derived(txn, store, table, newer)
                        _compare_table(table, live, _derived(rtxn, replica._store, table))
    return AuditReport(
        suite=suite.name, chain_id=chain_id, height=top, transactions=transactions, failed_transactions=failed,
        state_keys=state_keys, history_entries=history_entries, replayed=replay, seconds=time.perf_counter() - t0,
    )  # fmt: skip


def _replay_dir(store: Store) -> str | None:
    """Where to replay: the replica needs no durability, so a tmpfs (/dev/shm) when it has ample
    room for it (fsyncs cost nothing there), else the system temp dir."""
    shm = "/dev/shm"
    try:
        used = store.env.info()["last_pgno"] * store.env.stat()["psize"]
        st = os.statvfs(shm)
        if os.access(shm, os.W_OK) and st.f_bavail * st.f_frsize > 4 * used + (64 << 20):
            return shm
    except OSError:
        pass
    return None


def _table(txn: Any, store: Store, table: str) -> list[tuple[bytes, bytes]]:
    with txn.cursor(db=store.tables[table]) as cur:
        return list(cur.iternext())


def _derived(
    txn: Any, store: Store, table: str, unfolded: _native.StateOverlay | dict[bytes, bytes] | None = None
) -> list[tuple[bytes, bytes]]:
    """A derived table as the store means it: ``state`` with the entries of the changes not yet
    folded into it over it (``unfolded``, when already read); ``meta`` without the fold's
    progress (``state_mark``, ``state_sweep``), which depends on how blocks were grouped into
    commits and when the ledger was reopened."""
    if table == "state":
        return state_entries(txn, store, unfolded)
    entries = _table(txn, store, table)
    if table == "meta":
        return [(k, v) for k, v in entries if k not in (b"state_mark", b"state_sweep")]
    return entries


def state_entries(
    txn: Any, store: Store, unfolded: _native.StateOverlay | dict[bytes, bytes] | None = None
) -> list[tuple[bytes, bytes]]:
    """Every state entry the store means, in key order, as of ``txn``'s snapshot: those of the
    ``state`` table, with those of the changes not yet folded into it over them (``unfolded``,
    when already read with ``unfolded_state``, or its items)."""
    state = dict(_table(txn, store, "state"))
    state.update((unfolded_state(store, txn) if unfolded is None else unfolded).items())
    return sorted(state.items())


def _check_replaced(txn: Any, store: Store, newer: dict[bytes, bytes], replaced: list[tuple[bytes, bytes]]) -> None:
    """The ``state`` table's entries that a change not yet folded replaces are not what the store
    means, so the comparison with the replay never sees them: each must still name an existing
    change of its own key, no newer than the one replacing it, and say live or deleted as that
    change does (checked natively, ``writes::replaced_entry_fault``)."""
    if not replaced:
        return
    keys, stored = [k for k, _ in replaced], [v for _, v in replaced]
    changes = [v[:CHANGE_SIZE] for v in stored]
    found = dict(store.get_many(txn, "history", changes))
    fault = _native.replaced_entry_fault(keys, stored, [newer[k] for k in keys], [found.get(c) for c in changes])
    if fault is not None:
        i, what = fault
        height = int.from_bytes(stored[i][:8], "big") if len(stored[i]) >= 8 else None
        raise IntegrityError(height, "state", f"entry of {keys[i]!r} {what}")


def _check_table_extent(txn: Any, store: Store, top: int) -> None:
    """After heights 0..top were all found: no per-block table holds anything else."""
    for table in PER_BLOCK_TABLES:
        db = store.tables[table]
        with txn.cursor(db=db) as cur:
            last = cur.key() if cur.last() else None
        if last != height_key(top):
            at = int.from_bytes(last, "big") if last is not None and len(last) == 8 else None
            shown = at if at is not None else last
            raise IntegrityError(at, table, f"an entry for height {shown!r}, beyond meta.height {top}")
        entries = txn.stat(db)["entries"]
        if entries != top + 1:
            raise IntegrityError(None, table, f"{entries} entries for heights 0..{top}")


def _check_locator_runs(txn: Any, store: Store, top: int) -> None:
    """Each stored run holds exactly the records of the ids of the heights it covers: those after
    the previous run's key, up to its own."""
    with txn.cursor(db=store.tables["locator"]) as runs, txn.cursor(db=store.tables["txids"]) as blocks:
        start = 1
        for key, run in runs.iternext():
            covered = int.from_bytes(key, "big")
            if covered > top:
                detail = f"a run covers heights up to {covered}, beyond meta.height {top}"
                raise IntegrityError(covered, "locator", detail)
            expected = _native.TxLocator()
            if blocks.set_range(height_key(start)):
                for k, ids in blocks.iternext():
                    if int.from_bytes(k, "big") > covered:
                        break
                    expected.add_block(int.from_bytes(k, "big"), ids)
            if run != expected.to_run():
                try:  # say whether the run is not even a run, or holds other records
                    _native.merge_runs([run])
                except LedgerError as exc:
                    raise IntegrityError(covered, "locator", f"the run is malformed: {exc}") from exc
                detail = f"the run does not hold exactly the ids of blocks {start}..{covered}"
                raise IntegrityError(covered, "locator", detail)
            start = covered + 1


def _check_block(
    txn: Any, store: Store, ledger: Ledger, h: int, prev: BlockHeader | None, log: merkle.MerkleLog
) -> tuple[BlockHeader, list[bytes], bytes]:
    """Block ``h``'s rows checked against each other and the chain so far: its header, its
    transactions and its stored receipts."""
    key = height_key(h)
    stored = {table: txn.get(key, db=store.tables[table]) for table in PER_BLOCK_TABLES}
    for table, value in stored.items():
        if value is None:
            raise IntegrityError(h, table, "missing")
    try:
        header = BlockHeader.decode(stored["headers"])
    except LedgerError as exc:
        raise IntegrityError(h, "header", f"does not decode: {exc}") from exc
    try:
        body_header, raws = decode_block(stored["blocks"])
    except LedgerError as exc:
        raise IntegrityError(h, "block", f"does not decode: {exc}") from exc
    if body_header.encode() != header.encode():
        raise IntegrityError(h, "block.header", _differing_fields(header, body_header))
    if header.height != h:
        raise IntegrityError(h, "height", f"header says {header.height}")
    if header.suite != ledger.suite.name or header.chain_id != ledger.chain_id:
        raise IntegrityError(h, "chain", f"header is {header.suite}/{header.chain_id!r}")
    expected_prev = bytes(32) if prev is None else prev.hash
    if header.prev_hash != expected_prev:
        detail = f"{header.prev_hash.hex()} is not the hash {expected_prev.hex()} of block {h - 1}"
        raise IntegrityError(h, "prev_hash", detail)
    if stored["hashes"] != header.hash:
        detail = f"stored leaf {stored['hashes'].hex()} is not the header's hash {header.hash.hex()}"
        raise IntegrityError(h, "hash", detail)
    if header.history_root != log.root():
        raise IntegrityError(h, "history_root", f"not the root over the {log.size} earlier block hashes")
    if header.tx_count != len(raws):
        raise IntegrityError(h, "tx_count", f"header says {header.tx_count}, the block holds {len(raws)}")
    try:
        batch = _native.decode_txs(ledger.suite.name, ledger.chain_id, raws)
    except LedgerError as exc:
        raise IntegrityError(h, "transactions", str(exc)) from exc
    ids = batch.ids
    if merkle.root(ids, ledger.suite.hash) != header.tx_root:
        raise IntegrityError(h, "tx_root", "not the root over the block's transaction ids")
    if ids.tobytes() != stored["txids"]:
        raise IntegrityError(h, "txids", "the stored ids are not the ids of the block's transactions")
    if bool(header.receipts_root) != ledger._receipts_roots:  # the genesis decides for the chain
        has = "has" if header.receipts_root else "lacks"
        raise IntegrityError(h, "receipts_root", f"the header {has} one, and the genesis does not agree")
    return header, raws, stored["receipts"]


def _open_replica(ledger: Ledger, path: Path) -> Ledger:
    return Ledger.open(
        path, ledger.suite.name, chain_id=ledger.chain_id, contracts=list(ledger._contracts.values()),
        authorize=ledger._authorize, receipts_roots=bool(ledger.header(0).receipts_root),
    )  # fmt: skip


def _replay_block(replica: Ledger, h: int, header: BlockHeader, raws: list[bytes], receipts: bytes) -> None:
    if h == 0:
        got = replica.header(0)
    else:
        try:
            got = replica.apply_block(
                raws, timestamp=header.timestamp, proposer=header.proposer, consensus=header.consensus
            ).header
        except InvalidSignatureError as exc:
            raise IntegrityError(h, "signatures", str(exc)) from exc
        except StoreError:  # the replay's own store (say, its disk full): no verdict on the chain
            raise
        except LedgerError as exc:
            raise IntegrityError(h, "transactions", f"replay refused the block: {exc}") from exc
    if got.encode() != header.encode():
        detail = "differs from the replay: " + _differing_fields(header, got)
        raise IntegrityError(h, _first_differing_field(header, got), detail)
    replayed_receipts = replica._store.get("receipts", height_key(h))
    if replayed_receipts != receipts:
        raise IntegrityError(h, "receipts", "differ from the receipts the replay produced")


def _first_differing_field(a: BlockHeader, b: BlockHeader) -> str:
    return next(iter(differing_fields(a, b)), "header")


def _differing_fields(stored: BlockHeader, other: BlockHeader) -> str:
    diffs = differing_fields(stored, other)
    return "fields " + ", ".join(diffs) if diffs else "same fields, different encoding"


def _entry_height(table: str, key: bytes, value: bytes | None) -> int | None:
    """The block that wrote an entry of a derived table, as far as the entry says."""
    if table == "history" and len(key) >= 8:  # keyed by change id: u64 height first
        return int.from_bytes(key[:8], "big")
    if table == "state" and value is not None and len(value) >= 8:  # a change id: u64 height first
        return int.from_bytes(value[:8], "big")
    return None  # nonce runs do not say which blocks used their nonces


def _compare_table(table: str, live: list[tuple[bytes, bytes]], replayed: list[tuple[bytes, bytes]]) -> None:
    if live == replayed:
        return
    # Slow path, only on a mismatch: find the lowest height any differing entry belongs to.
    a, b = dict(live), dict(replayed)
    worst: tuple[float, str] | None = None
    for key in a.keys() | b.keys():
        va, vb = a.get(key), b.get(key)
        if va == vb:
            continue
        heights = [x for x in (_entry_height(table, key, va), _entry_height(table, key, vb)) if x is not None]
        rank = min(heights) if heights else float("inf")
        if va is None:
            what = f"key {key!r} is missing (the replay has it)"
        elif vb is None:
            what = f"key {key!r} should not exist (the replay does not have it)"
        else:
            what = f"key {key!r} has a value other than the replay's"
        if worst is None or (rank, what) < worst:
            worst = (rank, what)
    assert worst is not None
    rank, what = worst
    raise IntegrityError(None if rank == float("inf") else int(rank), table, what)


# -- command line ------------------------------------------------------------------------------


def register(commands: Any) -> None:
    """Adds ``ledgercore audit PATH`` to the top-level sub-parsers."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "audit",
        help="re-derive a ledger's headers, roots and state from its stored blocks",
        description="Audit the ledger stored at PATH: every block's header, links, tx root, txids and "
        "history root, then (unless --no-replay) signatures, state roots, receipts and the state "
        "tables by replaying every block into a temporary ledger. Exits 1 on the first disagreement.",
    )
    parser.add_argument("path", metavar="PATH", help="the ledger's directory")
    parser.add_argument(
        "--contract", action="append", default=[], metavar="MODULE:NAME",
        help="a Python contract the chain uses: a Contract subclass or instance (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--authorize", metavar="MODULE:NAME",
        help="the chain's permission hook (an Authorizer), so that the replay refuses what the chain refused",
    )  # fmt: skip
    parser.add_argument("--no-replay", action="store_true", help="structural checks only (no state replay)")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if not (path / "data.mdb").is_file():
        print(f"ledgercore audit: no ledger at {str(path)!r} (no data.mdb there)", file=sys.stderr)
        return 2
    # In a child process: LMDB keeps no page checksums, and a damaged page can kill its reader
    # with a signal, which an audit must report as damage rather than die of.
    answer = run_isolated(_audit_path, path, list(args.contract), not args.no_replay, args.authorize)
    if isinstance(answer, ChildDied):
        if answer.crashed:
            answer = 1, (
                f"audit FAILED: reading the store killed the auditing process ({answer}): data.mdb is "
                "damaged where LMDB followed a page or size it does not check"
            )
        else:
            answer = 2, f"ledgercore audit: the auditing process was stopped ({answer}) before it finished"
    code, text = answer
    print(text, file=sys.stderr if code == 2 else sys.stdout)  # 2: a usage error, not a verdict
    return code


def _audit_path(path: Path, contract_specs: list[str], replay: bool, authorize_spec: str | None) -> tuple[int, str]:
    """The audit command's exit status and what it prints."""
    try:  # the user's code: what importing or constructing it raises is a usage error, not damage
        contracts = load_contracts(contract_specs, "--contract")
        authorize = load_authorizer(authorize_spec, "--authorize")
    except UserCodeError as exc:
        return 2, f"ledgercore audit: {exc}"
    try:
        store = Store(path, create=False)  # an audit writes nothing, least of all tables into another environment
        try:
            chain_id = store.get("meta", b"chain_id")
            suite = store.get("meta", b"suite")
        finally:
            store.close()
        if suite is None:
            return 2, f"ledgercore audit: {str(path)!r} holds no ledger metadata"
        chain = stored_text(chain_id, "meta/chain_id")  # the suite: the store's, checked as it opens
        with Ledger.open(path, chain_id=chain, contracts=contracts, authorize=authorize) as led:
            report = audit(led, replay=replay)
    except (LedgerError, ValueError) as exc:
        # Damage found while opening (the ledger refuses to open on it) fails the audit too.
        damage = exc if isinstance(exc, IntegrityError) else exc.__cause__
        if isinstance(damage, IntegrityError):
            hint = ""
            if authorize is None and "replay" in damage.detail:
                hint = " (the replay ran with no permission hook: give the chain's with --authorize MODULE:NAME)"
            return 1, f"audit FAILED: {damage}{hint}"
        if isinstance(damage, (lmdb.CorruptedError, lmdb.PageNotFoundError)):  # LMDB's own checks
            return 1, f"audit FAILED: the store is damaged: {exc}"
        return 2, f"ledgercore audit: cannot audit {str(path)!r}: {exc}"
    except Exception as exc:  # noqa: BLE001 - reading a damaged store can raise anything: fail, in one line
        return 1, f"audit FAILED: reading the store raised {type(exc).__name__}: {exc}"
    return 0, str(report)
