"""ledgercore bench raft: consensus throughput on a loopback cluster, each node its own OS process.

(a) Consensus alone. Opaque 200-byte entries replicated and committed by ledgercore's Raft on N
nodes (default 3): the real mutual-TLS transport, the Raft log in LMDB with one fsync'd transaction
per Ready, a no-op state machine (``ledgercore.bench.raft_node.OpaqueNode``). The leader is its own
client and proposes a batch of entries per Raft step while a window of entries is unapplied.
Against it, in the same run, PySyncObj on N processes committing the same entries through a
``@replicated`` method, its leader keeping the same window of commands in flight; PySyncObj writes
nothing to disk. The rate is entries committed and applied by the leader per second (by the median
node if leadership moved in the window); latency is from proposal to apply on the leader.

(b) Signed transactions end to end. The real ``Node`` on N processes: its in-process client submits
pre-signed ``evidence.put`` transactions with ``Node.submit_many`` (what ``POST /txs`` calls, without
the HTTP hop), many at a time; the node admits them with batch signature checks, the leader cuts
blocks, Raft orders them and every node applies each block through its Ledger (followers check the
signatures again; the leader already did at admission). The rate is transactions in blocks per
second on the leader; latency is from submitting a batch to the commit of its last transaction. It
is held to the machine's batch signature verification rate over the same transactions (decoded
beforehand), divided by N (every node verifies every transaction once), measured in the same run
before and after the cluster, the faster taken.

Every measurement ends by checking all nodes applied the same entries (a digest of the opaque
entries; the head block hash for the ledger).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import socket
import statistics
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..arg_types import POSITIVE, SECONDS, SECONDS_OR_NONE, int_at_least
from ..child_process import module_process
from ..node.init_cluster import MAX_NODES
from .common import BenchError, Goal, Report, Result, check, format_rate, missing, optional, progress, scratch_dir

HELP = "Raft on a 3-process loopback cluster with fsync vs PySyncObj, and signed transactions end to end"
GOAL_VS_PYSYNCOBJ = 5.0
GOAL_VS_VERIFY = 0.6
ENTRY_SIZE = 200
CHAIN_ID = "bench"
SUITE = "ed25519-blake3"
REPLY_TIMEOUT_S = 60.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=SECONDS, default=10.0, metavar="S", help="measured seconds per cluster (default 10)")
    parser.add_argument("--warmup", type=SECONDS_OR_NONE, default=2.0, metavar="S", help="seconds under load before measuring (default 2)")
    # Bounded as init-cluster bounds a cluster: 1000 nodes never got going (a hang, not an error).
    parser.add_argument("--nodes", type=int_at_least(1, MAX_NODES), default=3, metavar="N", help=f"cluster size (default 3, at most {MAX_NODES})")
    parser.add_argument("--only", choices=("consensus", "ledger"), help="run only part (a) consensus or (b) ledger")
    parser.add_argument("--batch", type=POSITIVE, default=2000, metavar="K", help="(a) entries the leader proposes per Raft step (default 2000)")
    parser.add_argument("--window", type=POSITIVE, default=20000, metavar="W", help="(a) most entries proposed and not yet applied, both systems (default 20000)")
    parser.add_argument("--raft-mode", choices=("pipelined", "node"), default="pipelined", help="(a) pipelined: step while the log fsyncs, fsync only what must be durable, leader sends while it writes; node: Node's discipline (default pipelined)")
    parser.add_argument(
        "--block-txs", type=POSITIVE, default=10000, metavar="B", help="(b) transactions per block (default 10000, as in bench ingest)"
    )
    parser.add_argument("--submit-batch", type=POSITIVE, default=2000, metavar="B", help="(b) transactions a client submits at once (default 2000)")
    parser.add_argument("--clients", type=POSITIVE, default=8, metavar="C", help="(b) concurrent submitting batches per node (default 8: with the default batch, enough for the leader's 4 blocks in flight)")
    parser.add_argument("--submit-to", choices=("leader", "all"), default="leader", help="(b) submit on the leader only, or spread over every node (followers forward)")
    parser.add_argument("--dir", metavar="PATH", help="where to put the clusters' data (default: the system temp dir); removed afterwards")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    try:
        root = Path(scratch_dir(args.dir, "ledgercore-bench-raft-"))
        try:
            report = measure(args, root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    except BenchError as err:
        progress(f"ledgercore bench raft: {err}")
        return 1
    report.emit(args.json)
    return 0


# -- cluster plumbing -------------------------------------------------------------------------------


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def make_configs(root: Path, n: int, **overrides: Any) -> list[Any]:
    """N node configurations on loopback, with a fresh consortium CA and node certificates."""
    from ..net import pki
    from ..node.config import NodeConfig, Peer, client_url

    ca = pki.create_ca()
    ids = [f"node{i}" for i in range(1, n + 1)]
    ports = free_ports(2 * n)
    peers = [Peer(ids[i], i + 1, "127.0.0.1", ports[2 * i], client_url("127.0.0.1", ports[2 * i + 1])) for i in range(n)]
    cfgs = []
    for i, node_id in enumerate(ids):
        tls = pki.write_tls_files(root / node_id, ca, pki.issue_node_certificate(ca, node_id))
        cfg = NodeConfig(
            id=node_id, raft_id=i + 1, data_dir=root / node_id / "data", host="127.0.0.1", port=ports[2 * i],
            client_host="127.0.0.1", client_port=ports[2 * i + 1], peers=tuple(p for p in peers if p.id != node_id),
            tls=tls, suite=SUITE, chain_id=CHAIN_ID,
        )  # fmt: skip
        cfgs.append(replace(cfg, **overrides))
    return cfgs


class Member:
    """One node process and its command channel; its stderr goes to ``log_path``."""

    def __init__(self, kind: str, spec: dict[str, Any], log_path: Path) -> None:
        self.kind = kind
        self.log_path = log_path
        with open(log_path, "wb") as err:
            self.proc = module_process(
                "ledgercore.bench.raft_node", [kind, json.dumps(spec)], cwd=log_path.parent,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1,
            )  # fmt: skip
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def receive(self, timeout: float = REPLY_TIMEOUT_S) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise BenchError(f"{self.kind} node {self.proc.pid} did not answer within {timeout:.0f}s{self.log_tail()}") from None
        if line is None:
            raise BenchError(f"{self.kind} node {self.proc.pid} exited (status {self.proc.wait()}){self.log_tail()}")
        return json.loads(line)  # type: ignore[no-any-return]

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "".join(f"\n  | {t}" for t in text)

    def ask(self, cmd: str, **kw: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kw}) + "\n")
        self.proc.stdin.flush()
        return self.receive()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.ask("exit")
                self.proc.wait(timeout=20)
            except (BenchError, OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


class Cluster:
    def __init__(self, kind: str, specs: list[dict[str, Any]], logs: Path) -> None:
        self.kind = kind
        self.members: list[Member] = []
        logs.mkdir(parents=True, exist_ok=True)
        try:
            for i, spec in enumerate(specs):
                self.members.append(Member(kind, spec, logs / f"{kind}-{i + 1}.log"))
            for m in self.members:
                m.receive()  # started
        except BaseException:
            self.close()
            raise

    def ask_all(self, cmd: str, **kw: Any) -> list[dict[str, Any]]:
        return [m.ask(cmd, **kw) for m in self.members]

    def wait_for_leader(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leaders = [i for i, st in enumerate(self.ask_all("status")) if st["leader"]]
            if len(leaders) == 1:
                return leaders[0]
            time.sleep(0.1)
        raise BenchError(f"{self.kind}: no leader elected within {timeout:.0f}s")

    def close(self) -> None:
        for m in self.members:
            m.close()


def measure_cluster(cluster: Cluster, seconds: float, warmup: float, count: str) -> dict[str, Any]:
    """Load on, warm up, then count ``count`` on every node over ``seconds``."""
    leader = cluster.wait_for_leader()
    cluster.ask_all("load", on=True)
    time.sleep(warmup)
    cluster.ask_all("mark")
    before = cluster.ask_all("status")
    time.sleep(seconds)
    after = cluster.ask_all("status")
    lat = cluster.ask_all("mark")
    cluster.ask_all("load", on=False)
    now_leader = [i for i, st in enumerate(after) if st["leader"]]
    counts = [a[count] - b[count] for a, b in zip(after, before)]
    rates = [c / (a["t"] - b["t"]) for c, a, b in zip(counts, after, before)]
    # When leadership moved during the window no one node led it: the rate is then the median
    # node's, what a majority applied (only committed entries get that far). An ex-leader that
    # stalled (PySyncObj's nodes sometimes do) would otherwise report nothing committed.
    changed = now_leader != [leader]
    window = max(a["t"] - b["t"] for a, b in zip(after, before))
    # Latencies are recorded where entries are proposed: on the leader, or on the leaders in turn
    # when leadership moved during the window; report the node that recorded the most.
    timed = max(range(len(lat)), key=lambda i: (lat[i].get("samples") or 0, i == leader))
    return {
        "leader": leader,
        "leader_changed": changed,
        "rate": statistics.median(rates) if changed else rates[leader],
        "items": int(statistics.median(counts)) if changed else counts[leader],  # what the rate counted
        "node_rates": rates,
        "latency_p50": lat[timed].get("p50"),
        "latency_p99": lat[timed].get("p99"),
        "latency_samples": lat[timed].get("samples"),
        "cpu_seconds": [a["cpu"] - b["cpu"] for a, b in zip(after, before)],
        "window_seconds": window,
        "before": before,
        "after": after,
    }


def converge(cluster: Cluster, key: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Waits until every node reports the same ``key`` (entries applied, or height) and digest."""
    deadline = time.monotonic() + timeout
    while True:
        got = cluster.ask_all("digest")
        if len({g[key] for g in got}) == 1:
            check(len({g["digest"] for g in got}) == 1, f"{cluster.kind}: nodes applied different entries: {got}")
            return got
        if time.monotonic() > deadline:
            raise BenchError(f"{cluster.kind}: nodes did not converge within {timeout:.0f}s: {got}")
        time.sleep(0.2)


# -- (a) consensus alone -------------------------------------------------------------------------


def measure_opaque(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    cfgs = make_configs(root / "raft", args.nodes, tick_ms=20, election_ticks=50, heartbeat_ticks=5)
    specs = [
        {"config": json.loads(c.to_json()), "entry_size": ENTRY_SIZE, "batch": args.batch, "window": args.window,
         "pipelined": args.raft_mode == "pipelined"}
        for c in cfgs
    ]
    cluster = Cluster("opaque", specs, root / "logs")
    try:
        out = measure_cluster(cluster, args.seconds, args.warmup, "entries")
        final = converge(cluster, "entries")
        out["entries_applied"] = final[0]["entries"]
        out["fsyncs"] = [a["syncs"] - b["syncs"] for a, b in zip(out["after"], out["before"])]
    finally:
        cluster.close()
    return out


def measure_pysyncobj(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    ports = free_ports(args.nodes)
    addrs = [f"127.0.0.1:{p}" for p in ports]
    specs = [
        {"self": a, "partners": [b for b in addrs if b != a], "index": i, "entry_size": ENTRY_SIZE, "window": args.window}
        for i, a in enumerate(addrs)
    ]
    cluster = Cluster("pysyncobj", specs, root / "logs")
    try:
        out = measure_cluster(cluster, args.seconds, args.warmup, "entries")
        out["failed_commands"] = sum(a["failed"] for a in out["after"])
        # The peer's failures are findings to report, not reasons to drop the comparison.
        try:
            final = converge(cluster, "entries", timeout=30.0)
            out["entries_applied"] = final[0]["entries"]
            out["diverged"] = None
        except BenchError as err:
            out["entries_applied"] = max(d["entries"] for d in cluster.ask_all("digest"))
            out["diverged"] = str(err)
    finally:
        cluster.close()
    return out


# -- (b) signed transactions end to end --------------------------------------------------------------


MAX_TXS = 2_000_000
GEN_BLOCK = 20_000


def workload() -> Any:
    from ..suites import get_suite
    from ..transaction import now_ms
    from .workload import Workload

    return Workload(
        suite=get_suite(SUITE), kind="evidence", txs=MAX_TXS, block_size=GEN_BLOCK, senders=1000,
        chain_id=CHAIN_ID, timestamp=now_ms(),  # the nodes admit only timestamps near their clocks
    )  # fmt: skip


def measure_verify_rate(raws: list[bytes]) -> float:
    """Batch signature verification alone (decoded beforehand, as ``bench ingest`` measures it)
    over ``raws``, best of three, all native threads."""
    from .. import _native

    batch = _native.decode_txs(SUITE, CHAIN_ID, raws)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        valid = batch.verify_signatures(os.urandom(32))
        best = min(best, time.perf_counter() - t0)
        check(bool(valid.all()), "every generated signature verifies")
    return len(raws) / best


def measure_ledger(args: argparse.Namespace, root: Path, raws: list[bytes]) -> dict[str, Any]:
    from .raft_node import write_raws

    cfgs = make_configs(
        root / "ledger", args.nodes, tick_ms=20, election_ticks=50, heartbeat_ticks=5, block_txs=args.block_txs,
        block_ms=20, max_inflight_blocks=4, snapshot_every=256, mempool_limit=1_000_000,
    )  # fmt: skip
    # Submitting on the leader only: every node holds all of them, and whichever leads submits.
    if args.submit_to == "leader":
        write_raws(root / "txs.bin", raws)
        paths = [root / "txs.bin"] * args.nodes
    else:
        paths = [root / f"txs-{i}.bin" for i in range(args.nodes)]
        for i, path in enumerate(paths):
            write_raws(path, raws[i :: args.nodes])
    specs = []
    for c, path in zip(cfgs, paths):
        specs.append({
            "config": json.loads(c.to_json()), "txs_file": str(path), "batch": args.submit_batch,
            "clients": args.clients, "submit": args.submit_to,
        })  # fmt: skip
    cluster = Cluster("ledger", specs, root / "logs")
    try:
        out = measure_cluster(cluster, args.seconds, args.warmup, "ledger_txs")
        check(all(a["failed"] == 0 for a in out["after"]), f"ledger: submits failed: {out['after']}")
        out["ran_out"] = any(a["left"] == 0 for a in out["after"])
        final = converge(cluster, "height", timeout=120.0)
        out["height"] = final[0]["height"]
        # The rate counts every transaction in the blocks: each must have succeeded.
        check(all(f["failed_receipts"] == 0 for f in final), f"ledger: committed transactions failed: {final}")
    finally:
        cluster.close()
    return out


# -- the report ------------------------------------------------------------------------------------


def _ms(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 1e3:.1f} ms"


def measure(args: argparse.Namespace, root: Path) -> Report:
    report = Report(suite="raft", quick=False, packages=("pysyncobj", "lmdb", "cryptography"))
    report.info.update({"nodes": args.nodes, "seconds": args.seconds, "warmup": args.warmup,
                        "loadavg_at_start": os.getloadavg()})  # fmt: skip
    n = args.nodes
    if args.only in (None, "consensus"):
        if not optional("pysyncobj"):
            absent = missing("PySyncObj", "pysyncobj")
            raise BenchError(f"{absent}: part (a) is measured against it; --only ledger runs (b) alone")
        progress(f"[bench raft] (a) ledgercore Raft, {n} processes, fsync, mutual TLS ...")
        ours = measure_opaque(args, root)
        progress(f"[bench raft]     {format_rate(ours['rate'])} entries/s; (a) PySyncObj, {n} processes ...")
        peer = measure_pysyncobj(args, root)
        progress(f"[bench raft]     {format_rate(peer['rate'])} entries/s")
        report.results.append(Result(
            operation=f"commit {ENTRY_SIZE} B entries, {n} nodes", unit="entries/s",
            items=ours["items"], rate=ours["rate"], peer="pysyncobj (no fsync)",
            peer_items=peer["items"], peer_rate=peer["rate"],
            goal=Goal("ratio", GOAL_VS_PYSYNCOBJ),
            note=f"latency propose->apply p50 {_ms(ours['latency_p50'])} p99 {_ms(ours['latency_p99'])} "
            f"(pysyncobj p50 {_ms(peer['latency_p50'])} p99 {_ms(peer['latency_p99'])}); "
            f"{args.raft_mode}, batch {args.batch}, window {args.window}; CPU s per node {_cpus(ours)} (pysyncobj {_cpus(peer)})"
            + ("; PYSYNCOBJ NODES DIVERGED (see info)" if peer["diverged"] else "")
            + (f"; pysyncobj failed {peer['failed_commands']} commands" if peer["failed_commands"] else ""),
        ))  # fmt: skip
        report.info["consensus"] = {"ledgercore": _slim(ours), "pysyncobj": _slim(peer)}
    if args.only in (None, "ledger"):
        progress("[bench raft] (b) generating signed transactions, measuring batch verification ...")
        w = workload()
        raws = list(w.block(0).raws)
        verify_before = measure_verify_rate(raws)
        sample = len(raws)
        want = int(min(MAX_TXS, max(2 * GEN_BLOCK, verify_before / n * (args.seconds + args.warmup + 3) * 1.2)))
        while len(raws) < want:
            raws.extend(w.block(len(raws) // GEN_BLOCK).raws)
        progress(f"[bench raft]     verify {format_rate(verify_before)} tx/s; (b) {n} ledger nodes, {len(raws)} transactions ...")
        led = measure_ledger(args, root, raws)
        # Measured again once the cluster is gone, and the faster of the two taken: one measured
        # while a previous run's processes still write back, or in a slow minute, flatters the ratio.
        verify_after = measure_verify_rate(raws[:sample])
        verify = max(verify_before, verify_after)
        progress(f"[bench raft]     {format_rate(led['rate'])} tx/s; verify again {format_rate(verify_after)} tx/s")
        # The cluster's CPU per committed transaction, and what the goal's rate would leave it on the
        # same CPU: on a machine the nodes share, that difference is what the ratio misses by.
        cpu = sum(led["cpu_seconds"])
        cpu_us = 1e6 * cpu / max(1, led["items"])
        allowed_us = 1e6 * cpu / (GOAL_VS_VERIFY * verify / n * led["window_seconds"])
        report.results.append(Result(
            operation=f"signed tx end to end, {n} nodes", unit="tx/s", items=led["items"],
            rate=led["rate"], peer=f"batch verify / {n}", peer_items=sample, peer_rate=verify / n,
            goal=Goal("ratio", GOAL_VS_VERIFY),
            note=f"latency submit->commit p50 {_ms(led['latency_p50'])} p99 {_ms(led['latency_p99'])}; "
            f"batch verify {format_rate(verify)} tx/s (before/after the cluster {format_rate(verify_before)}/"
            f"{format_rate(verify_after)}); blocks of {args.block_txs}; clients submit "
            f"{args.clients} x {args.submit_batch} at a time in-process (Node.submit_many, as POST /txs) on "
            f"{'the leader' if args.submit_to == 'leader' else 'every node'}; CPU s per node {_cpus(led)}, "
            f"{cpu_us:.1f} us per committed tx over the cluster ({allowed_us:.1f} at the goal's rate)"
            + ("; RAN OUT of transactions during the window" if led["ran_out"] else ""),
        ))  # fmt: skip
        report.info["ledger"] = {
            "verify_rate": verify, "verify_rate_before": verify_before, "verify_rate_after": verify_after,
            "transactions": len(raws), "cpu_us_per_tx": cpu_us, "cpu_us_per_tx_at_goal": allowed_us, **_slim(led),
        }  # fmt: skip
    return report


def _cpus(m: dict[str, Any]) -> str:
    return "/".join(f"{c:.1f}" for c in m["cpu_seconds"])


def _slim(m: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in m.items() if k not in ("before", "after")}
