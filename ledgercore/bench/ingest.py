"""ledgercore bench ingest: blocks of signed transactions through ``Ledger.apply_block``, end to end.

Each block's transactions are generated (natively, in parallel) before its clock starts, so only the
``apply_block`` call is timed: decode, batch signature check (on its own threads, beside execution),
nonce check, execution and the durable (fsync'd) LMDB commit. Generation streams block by block, so
ten million transactions fit in memory. Every transaction must succeed (a failed one costs less and
would flatter the rate).

Measured in the same run, on the same machine, for comparison:

- ``verify_batch`` alone over the same blocks' transactions (the same keys, messages and signatures
  that ``apply_block`` checked; on long runs a sample of blocks spread over the run): the ceiling the
  ledger is held to, as the ratio end-to-end / verify-only;
- raw py-lmdb ``putmulti`` of as many state-like entries (one per transaction, up to
  ``--putmulti-entries``) into a fresh environment, one fsync'd write transaction per block-sized batch.

The rate of the first and last 10% of the blocks shows how ingest changes as state grows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _native, signing
from ..arg_types import FRACTION_BELOW_HALF, NON_NEGATIVE, POSITIVE, SECONDS_OR_NONE
from ..ledger import Ledger
from ..suites import SUITES, get_suite
from .common import BenchError, check, format_rate, machine, progress, scratch_dir, verify_thread_cpu
from .workload import KEY_PREFIX, WORKLOADS, Workload, scrambled_ids

HELP = "apply_block end to end on generated evidence/cert blocks, vs raw verify_batch and raw LMDB putmulti"
STAGES = ("decode", "verify", "execute", "commit")
GOAL_RATE = 40_000.0  # tx/s, evidence on ed25519-blake3 with 10k-transaction blocks
GOAL_RATIO = 0.7  # end-to-end / verify-only
GOAL_GROWTH = 0.7  # rate of the last 10% of blocks / rate of the first 10%
VERIFY_SAMPLE_BLOCKS = 100
CHAIN_ID = "bench"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--txs", type=POSITIVE, default=100_000, metavar="N", help="transactions in all (default 100000)")
    parser.add_argument("--block-size", type=POSITIVE, default=10_000, metavar="B", help="transactions per block (default 10000)")
    parser.add_argument("--suite", default="ed25519-blake3", choices=sorted(SUITES), help="crypto suite (default ed25519-blake3)")
    parser.add_argument("--workload", default="evidence", choices=WORKLOADS, help="evidence.put, or cert.issue with revocations")
    parser.add_argument(
        "--senders", type=POSITIVE, default=1000, metavar="K",
        help="distinct signing keys, used round robin (default 1000); batch verification is faster when keys repeat",
    )  # fmt: skip
    parser.add_argument("--revoke-fraction", type=FRACTION_BELOW_HALF, default=0.1, metavar="F", help="cert: share of each block that revokes earlier certificates (default 0.1)")
    parser.add_argument("--verify-sample", type=NON_NEGATIVE, default=VERIFY_SAMPLE_BLOCKS, metavar="BLOCKS", help=f"blocks re-verified alone for the verify-only rate, spread over the run (default {VERIFY_SAMPLE_BLOCKS}; 0: all)")
    parser.add_argument("--putmulti-entries", type=POSITIVE, default=1_000_000, metavar="N", help="most entries for the raw putmulti rate (default 1000000)")
    parser.add_argument(
        "--pipeline", type=NON_NEGATIVE, default=0, metavar="W",
        help="time Ledger.apply_blocks over windows of W blocks (the check of block k+1 overlaps the commit of k and its own execution) "
        "instead of apply_block one block at a time; rates of the first/last 10%% are then per window",
    )  # fmt: skip
    parser.add_argument(
        "--time-limit", type=SECONDS_OR_NONE, default=0, metavar="SECONDS",
        help="stop starting new blocks after this much wall time and report the blocks done (0: no limit)",
    )  # fmt: skip
    parser.add_argument("--dir", metavar="PATH", help="where to create the temporary ledger (default: the system temp dir); removed afterwards")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def run(args: argparse.Namespace) -> int:
    try:
        result = measure(args)
    except BenchError as err:
        progress(f"ledgercore bench ingest: {err}")
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(text(result))
    return 0


class Progress:
    """A one-line bar on stderr (redrawn in place on a terminal, a line per 10% otherwise)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.tty = sys.stderr.isatty()
        self.total, self.enabled = total, enabled and total >= (2 if self.tty else 10)
        self.start = time.perf_counter()
        self.last_draw = 0.0
        self.last_tenth = 0

    def update(self, done: int, txs: int, timed: float) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        rate = f"{format_rate(txs / timed)} tx/s" if timed > 0 else "-"
        elapsed = now - self.start
        eta = elapsed / done * (self.total - done) if done else 0
        if self.tty:
            if now - self.last_draw < 0.25 and done < self.total:
                return
            self.last_draw = now
            width = 30
            filled = width * done // self.total
            bar = "#" * filled + "." * (width - filled)
            print(f"\r[{bar}] {done}/{self.total} blocks  {rate}  ETA {eta:.0f}s ", end="", file=sys.stderr, flush=True)
            if done == self.total:
                print(file=sys.stderr, flush=True)
        else:
            tenth = 10 * done // self.total
            if tenth > self.last_tenth:
                self.last_tenth = tenth
                progress(f"[bench ingest] {done}/{self.total} blocks, {rate}, {elapsed:.0f}s elapsed, ETA {eta:.0f}s")


@dataclass
class Timings:
    seconds: list[float] = field(default_factory=list)  # apply_block wall time per block
    cpu_seconds: float = 0.0  # CPU time of the whole process (every thread) in those calls
    verify_cpu_seconds: float | None = 0.0  # of which the signature-check threads' (None: unknown)
    counts: list[int] = field(default_factory=list)  # transactions per block
    stages: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    verify_seconds: float = 0.0
    verify_cpu_seconds_alone: float = 0.0  # process CPU time of the verify-only calls
    verify_txs: int = 0
    verify_blocks: int = 0
    # The same blocks checked the way apply_blocks checks them: one block per check thread as one
    # batch equation, as many blocks at once as there are threads (only with --pipeline).
    per_thread_seconds: float = 0.0
    per_thread_txs: int = 0

    def rate(self, lo: int = 0, hi: int | None = None) -> float:
        secs = sum(self.seconds[lo:hi])
        return sum(self.counts[lo:hi]) / secs if secs else 0.0


def _sample(blocks: int, wanted: int) -> set[int]:
    if wanted <= 0 or wanted >= blocks:
        return set(range(blocks))
    return {int(round(i * (blocks - 1) / (wanted - 1))) for i in range(wanted)} if wanted > 1 else {0}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    suite = get_suite(args.suite)
    workload = Workload(
        suite, args.workload, args.txs, args.block_size, args.senders, chain_id=CHAIN_ID,
        revoke_fraction=args.revoke_fraction,
    )  # fmt: skip
    blocks = workload.blocks
    sampled = _sample(blocks, args.verify_sample)
    workdir = scratch_dir(args.dir, "ledgercore-ingest-")
    t = Timings()
    stopped_at: int | None = None
    load_before = os.getloadavg()
    issued = revoked = 0
    bar = Progress(blocks, not args.no_progress)
    try:
        ledger = Ledger.open(os.path.join(workdir, "ledger"), suite=suite.name, chain_id=CHAIN_ID)
        try:
            window = max(1, args.pipeline)
            per_thread: list[_native.TxBatch] = []  # sampled blocks (decoded) waiting for a like-for-like check
            k = 0
            began = time.perf_counter()
            while k < blocks:
                if args.time_limit and time.perf_counter() - began > args.time_limit:
                    if not k:  # no block applied: no rate to report, nor a putmulti size to compare
                        raise BenchError(f"--time-limit {args.time_limit:g}s ran out before the first block was applied")
                    stopped_at = k
                    break
                group = [workload.block(j) for j in range(k, min(k + window, blocks))]
                if k == 0:
                    _check_sample(group[0].raws, suite.name)
                verify_start = verify_thread_cpu()
                start, cpu_start = time.perf_counter(), time.process_time()
                if args.pipeline:
                    applied = list(ledger.apply_blocks(b.raws for b in group))
                else:
                    applied = [ledger.apply_block(group[0].raws)]
                t.seconds.append(time.perf_counter() - start)
                t.cpu_seconds += time.process_time() - cpu_start
                verify_end = verify_thread_cpu()
                if t.verify_cpu_seconds is None or verify_start is None or verify_end is None:
                    t.verify_cpu_seconds = None
                else:
                    t.verify_cpu_seconds += verify_end - verify_start
                t.counts.append(sum(len(b.raws) for b in group))
                for j, (block, done) in enumerate(zip(group, applied)):
                    for stage in STAGES:
                        t.stages[stage] += done.timings.get(stage, 0.0)
                    failed = [(i, r.error) for i, r in enumerate(done.receipts) if not r.ok]
                    check(not failed, f"block {k + j}: {len(failed)} transactions failed, first {failed[:1]}")
                    issued += block.issued
                    revoked += block.revoked
                    if k + j in sampled:
                        batch = _native.decode_txs(suite.name, CHAIN_ID, block.raws)
                        _verify_only(t, suite.scheme, batch)
                        if args.pipeline:
                            per_thread.append(batch)
                            if len(per_thread) == _native.thread_count():
                                _verify_one_block_per_thread(t, per_thread)
                                per_thread.clear()
                k += len(group)
                bar.update(k, sum(t.counts), sum(t.seconds))
                del group, applied
            height = ledger.height
        finally:
            ledger.close()
        # Reopening reads the ids after the last locator run, and the state changes not yet folded
        # into the state table, back into memory: timed here.
        t_open = time.perf_counter()
        Ledger.open(os.path.join(workdir, "ledger"), suite=suite.name, chain_id=CHAIN_ID).close()
        reopen_seconds = time.perf_counter() - t_open
        ledger_bytes = _du(os.path.join(workdir, "ledger"))
        shutil.rmtree(os.path.join(workdir, "ledger"), ignore_errors=True)
        entries = min(sum(t.counts), args.putmulti_entries)
        if not args.no_progress:
            progress(f"[bench ingest] raw py-lmdb putmulti of {entries} entries ...")
        put_rate, put_commit_share = _putmulti_rate(os.path.join(workdir, "lmdb"), entries, args.block_size)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    check(height == (blocks if stopped_at is None else stopped_at), f"ledger height {height} after {blocks} blocks")
    result = _result(args, suite.name, workload, t, issued, revoked, put_rate, put_commit_share, entries, ledger_bytes)
    result["machine"]["loadavg_1min"] = {"start": load_before[0], "end": os.getloadavg()[0]}
    result["reopen_seconds"] = reopen_seconds
    result["workload"]["stopped_early"] = None if stopped_at is None else {
        "time_limit_s": args.time_limit, "blocks_applied": stopped_at, "blocks_planned": blocks,
    }  # fmt: skip
    return result


def _check_sample(raws: list[bytes], suite: str) -> None:
    """A few generated transactions decode with ``Transaction.decode`` and verify on their own."""
    from ..transaction import Transaction

    for raw in raws[:2] + raws[-2:]:
        tx = Transaction.decode(raw)
        check(tx.suite == suite and tx.chain_id == CHAIN_ID, "generated transaction is of the run's chain")
        check(tx.verify(), "generated transaction verifies")


def _verify_only(t: Timings, scheme: str, batch: _native.TxBatch) -> None:
    """Times ``verify_batch`` over one decoded block: the goal's baseline."""
    keys, messages, sigs = batch.public_keys, batch.messages, batch.signatures
    start, cpu_start = time.perf_counter(), time.process_time()
    valid = signing.verify_batch(scheme, keys, messages, sigs)
    t.verify_seconds += time.perf_counter() - start
    t.verify_cpu_seconds_alone += time.process_time() - cpu_start
    check(bool(valid.all()), "every signature verifies")
    t.verify_txs += len(batch)
    t.verify_blocks += 1


def _verify_one_block_per_thread(t: Timings, batches: list[_native.TxBatch]) -> None:
    """Checks the decoded ``batches`` at once, each on one check thread as one batch equation:
    the shape of ``apply_blocks``' checks, which cost less CPU per signature than ``verify_batch``
    splitting each block across the threads (the issue's baseline, kept as the goal's denominator)."""
    start = time.perf_counter()
    checks = [b.start_signature_check(os.urandom(32), True) for b in batches]
    valid = [c.wait() for c in checks]
    t.per_thread_seconds += time.perf_counter() - start
    check(all(v.all() for v in valid), "every signature verifies")
    t.per_thread_txs += sum(map(len, batches))


def _putmulti_rate(path: str, entries: int, batch: int) -> tuple[float, float]:
    """Entries/s of py-lmdb putmulti into one table, a fsync'd write transaction per batch, with
    state-like entries: scrambled ``evidence/lic/…`` keys and a 12-byte version plus a ~100-byte record."""
    import lmdb

    os.makedirs(path, exist_ok=True)
    env = lmdb.open(path, map_size=1 << 30, max_dbs=1, sync=True, metasync=True, readahead=False)
    db = env.open_db(b"state")
    record = os.urandom(112)
    total = commit = 0.0
    try:
        for start in range(0, entries, batch):
            n = min(batch, entries - start)
            keys = scrambled_ids(b"evidence/" + KEY_PREFIX["evidence"], np.arange(start, start + n, dtype=np.uint64))
            items = [(k.tobytes(), record) for k in keys]
            while True:
                try:
                    t0 = time.perf_counter()
                    txn = env.begin(write=True)
                    with txn.cursor(db=db) as cur:
                        cur.putmulti(items)
                    t1 = time.perf_counter()
                    txn.commit()
                    t2 = time.perf_counter()
                    break
                except lmdb.MapFullError:
                    txn.abort()
                    env.set_mapsize(env.info()["map_size"] * 2)
            total += t2 - t0
            commit += t2 - t1
    finally:
        env.close()
    return entries / total, commit / total if total else 0.0


def _du(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def _result(
    args: argparse.Namespace, suite: str, w: Workload, t: Timings, issued: int, revoked: int,
    put_rate: float, put_commit_share: float, put_entries: int, ledger_bytes: int,
) -> dict[str, Any]:  # fmt: skip
    blocks = len(t.seconds)  # timed units: blocks, or windows of blocks with --pipeline
    tenth = max(1, blocks // 10)
    total = sum(t.seconds)
    txs = sum(t.counts)
    rate = txs / total
    verify_rate = t.verify_txs / t.verify_seconds if t.verify_seconds else 0.0
    per_thread_rate = t.per_thread_txs / t.per_thread_seconds if t.per_thread_seconds else 0.0
    first, last = t.rate(0, tenth), t.rate(blocks - tenth)
    # The rate goal is stated for full 10k-transaction blocks (a run shorter than one has none).
    standard = (
        args.workload == "evidence" and suite == "ed25519-blake3" and args.block_size == 10_000
        and txs >= args.block_size
    )  # fmt: skip
    goals = {
        "rate": {"text": f">= {format_rate(GOAL_RATE)} tx/s (evidence, ed25519-blake3, 10k-tx blocks)",
                 "met": rate >= GOAL_RATE if standard else None},
        "ratio": {"text": f"end-to-end / verify-only >= {GOAL_RATIO}", "met": rate / verify_rate >= GOAL_RATIO if verify_rate else None},
        "growth": {"text": f"last 10% / first 10% of blocks >= {GOAL_GROWTH} (meant for 10M keys vs 100k)",
                   "met": last / first >= GOAL_GROWTH if blocks >= 10 else None},
    }  # fmt: skip
    return {
        "suite": "ingest",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(["ledgercore", *sys.argv[1:]]),
        "machine": machine(),
        "workload": {
            "kind": args.workload, "suite": suite, "txs": txs, "block_size": args.block_size, "blocks": w.blocks,
            "senders": args.senders, "revoke_fraction": args.revoke_fraction if args.workload == "cert" else None,
            "issued": issued, "revoked": revoked, "state_keys": issued,
            "generation_seconds": w.generation_seconds, "ledger_bytes": ledger_bytes,
        },  # fmt: skip
        "end_to_end": {
            "seconds": total,
            "rate": rate,
            "us_per_tx": 1e6 / rate,
            "first_10pct_rate": first,
            "last_10pct_rate": last,
            "last_over_first": last / first if first else None,
            "mode": f"apply_blocks, windows of {args.pipeline} blocks" if args.pipeline else "apply_block",
            "timed_units_per_tenth": tenth,
            "block_seconds_max": max(t.seconds),
            "block_seconds_min": min(t.seconds),
            # CPU of every thread per transaction, and how many cores that kept busy on average:
            # the rest of the wall time waited (on fsync, or for a core).
            "cpu_us_per_tx": t.cpu_seconds / txs * 1e6,
            "cores_busy": t.cpu_seconds / total,
        },
        "cpu_split": _cpu_split(t, txs, total),
        "stages": {
            s: {"seconds": t.stages[s], "us_per_tx": t.stages[s] / txs * 1e6, "share": t.stages[s] / total}
            for s in STAGES
        },
        "verify_only": {
            "rate": verify_rate, "txs": t.verify_txs, "blocks": t.verify_blocks, "us_per_tx": 1e6 / verify_rate if verify_rate else None,
        },  # fmt: skip
        "ratio_end_to_end_over_verify": rate / verify_rate if verify_rate else None,
        # Like for like with --pipeline: verify-only in apply_blocks' own shape (None without it).
        "verify_only_one_block_per_thread": {"rate": per_thread_rate, "txs": t.per_thread_txs} if per_thread_rate else None,
        "ratio_end_to_end_over_verify_one_block_per_thread": rate / per_thread_rate if per_thread_rate else None,
        "putmulti": {
            "rate": put_rate, "entries": put_entries, "batch": args.block_size, "commit_share": put_commit_share,
            "entries_per_tx_in_ledger": "1 state + 1 history + 1 nonce, plus the block and its tx ids",
        },  # fmt: skip
        "goals": goals,
    }


def _cpu_split(t: Timings, txs: int, seconds: float) -> dict[str, float] | None:
    """The ratio end-to-end / verify-only as the product of two factors: the CPU verify-only spends
    per transaction over the CPU end to end spends (what the ratio would be if both kept the same
    cores busy), and the cores end to end kept busy over those verify-only kept busy. The first
    is split into the signature-check threads' CPU and everything else's."""
    if t.verify_cpu_seconds is None or not t.verify_txs or not t.verify_cpu_seconds_alone:
        return None
    alone = t.verify_cpu_seconds_alone / t.verify_txs
    return {
        "verify_us_per_tx": t.verify_cpu_seconds / txs * 1e6,
        "other_us_per_tx": (t.cpu_seconds - t.verify_cpu_seconds) / txs * 1e6,
        "verify_only_us_per_tx": alone * 1e6,
        "verify_only_cores_busy": t.verify_cpu_seconds_alone / t.verify_seconds,
        "cpu_factor": alone / (t.cpu_seconds / txs),
        "utilisation_factor": (t.cpu_seconds / seconds) / (t.verify_cpu_seconds_alone / t.verify_seconds),
    }


def text(r: dict[str, Any]) -> str:
    m, w, e = r["machine"], r["workload"], r["end_to_end"]
    yes = {True: "yes", False: "NO", None: "n/a"}
    ratio = r["ratio_end_to_end_over_verify"]
    lines = [
        f"ledgercore bench ingest  ({r['date']})",
        f"CPU: {m['cpu_model']}, {m['cpus']} CPUs ({m['usable_cpus']} usable); ledgercore threads: {m['ledgercore_threads']}; Python {m['python']}",
        f"workload: {w['kind']} on {w['suite']}, {w['txs']} txs in {w['blocks']} blocks of {w['block_size']}, "
        f"{w['senders']} senders" + (f", {w['revoked']} revocations" if w["kind"] == "cert" else "")
        + f"; {w['state_keys']} state keys at the end; generation {w['generation_seconds']:.1f}s (not timed)"
        + (f"\nSTOPPED EARLY by --time-limit {w['stopped_early']['time_limit_s']:g}s: {w['stopped_early']['blocks_applied']} of "
           f"{w['stopped_early']['blocks_planned']} blocks applied" if w.get("stopped_early") else ""),
        "",
        f"load average (1 min) at start/end: {m['loadavg_1min']['start']:.1f}/{m['loadavg_1min']['end']:.1f} on {m['usable_cpus']} CPUs",
        "",
        f"end to end ({e['mode']}, fsync per block): {format_rate(e['rate'])} tx/s  ({e['us_per_tx']:.1f} us/tx, {e['seconds']:.2f}s)",
        f"  first 10% of the run: {format_rate(e['first_10pct_rate'])} tx/s; last 10%: {format_rate(e['last_10pct_rate'])} tx/s"
        + (f"  (last/first {e['last_over_first']:.2f})" if e["last_over_first"] else ""),
        f"  CPU {e['cpu_us_per_tx']:.1f} us/tx over all threads, {e['cores_busy']:.2f} cores busy on average",
        "  stages: " + ", ".join(f"{s} {v['us_per_tx']:.2f} us/tx ({100 * v['share']:.0f}%)" for s, v in r["stages"].items())
        + "\n    (they overlap: the signature check runs beside execution and staging, and commit includes the wait for it)",
        f"verify_batch only (same transactions, {r['verify_only']['blocks']} blocks): {format_rate(r['verify_only']['rate'])} tx/s",
        f"  end-to-end / verify-only: {ratio:.2f}" if ratio else "  end-to-end / verify-only: n/a",
        *([] if not (c := r["cpu_split"]) else [
            f"  CPU per tx end to end: signature checks {c['verify_us_per_tx']:.1f} us, everything else "
            f"{c['other_us_per_tx']:.1f} us; verify-only {c['verify_only_us_per_tx']:.1f} us",
            f"  = CPU factor {c['cpu_factor']:.2f} x cores busy {e['cores_busy']:.2f} / {c['verify_only_cores_busy']:.2f} "
            f"(utilisation factor {c['utilisation_factor']:.2f})",
        ]),
        *([] if not (pt := r["verify_only_one_block_per_thread"]) else [
            f"verify-only as apply_blocks checks (one block per check thread, {m['ledgercore_threads']} at once; "
            f"{pt['txs']} txs): {format_rate(pt['rate'])} tx/s",
            f"  end-to-end / that: {r['ratio_end_to_end_over_verify_one_block_per_thread']:.2f}  "
            "(like for like; the goal's baseline is verify_batch above)",
        ]),
        f"reopen (Ledger.open, of {w['txs']} txs; reads back the ids after the last locator run and the "
        f"unfolded state): {r['reopen_seconds']:.2f}s",
        f"raw py-lmdb putmulti ({r['putmulti']['entries']} state-like entries, one table, fsync per {r['putmulti']['batch']}): "
        f"{format_rate(r['putmulti']['rate'])} entries/s ({100 * r['putmulti']['commit_share']:.0f}% in commit)",
        "",
        "goals:",
        *(f"  {g['text']}: {yes[g['met']]}" for g in r["goals"].values()),
    ]  # fmt: skip
    return "\n".join(lines)
