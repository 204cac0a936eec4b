"""The cluster part of ``ledgercore demo``: a local 3-node consortium, each node its own OS process
speaking mutual TLS to the others and to its clients, e-certificates issued through every node's
HTTP API, and a follower's proofs checked against the block headers every node agrees on."""

from __future__ import annotations

import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import merkle, signing
from .client import Client, header_of
from .codec import decode_value
from .node.cluster import load_cluster, start_node, stop_all, wait_ready
from .node.init_cluster import free_base_port, init_cluster
from .receipts import verify_receipt
from .suites import get_suite
from .transaction import Transaction

BUREAUS = ("Market Regulation Bureau", "Civil Affairs Bureau", "Education Bureau")
CHAIN_ID = "demo-cluster"


def _leader(clients: list[Client], timeout: float = 20.0) -> dict[str, Any]:
    """The leader's status, once every node names it (each then admits transactions)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sts = [c.status() for c in clients]
        leading = [st for st in sts if st["role"] == "leader"]
        if len(leading) == 1 and all(st["leader"] == leading[0]["node"] for st in sts):
            return leading[0]
        time.sleep(0.1)
    raise TimeoutError("no leader elected")


def _last_line(path: Path) -> str:
    lines = path.read_text(errors="replace").strip().splitlines()
    return lines[-1] if lines else "(nothing logged)"


def run_cluster_demo(checks: Any, suite_name: str, count: int) -> None:
    """Runs the demo's cluster part, reporting each check through ``checks.report(ok, text)``."""
    suite = get_suite(suite_name)
    with tempfile.TemporaryDirectory(prefix="ledgercore-cluster-") as tmp:
        layout = init_cluster(
            Path(tmp), 3, suite=suite.name, base_port=free_base_port(6), chain_id=CHAIN_ID,
            settings={"block_ms": 20, "block_txs": 500},
        )  # fmt: skip
        cluster = load_cluster(layout.dir)
        tls = cluster.client_context()
        nodes = [start_node(entry, tls) for entry in cluster.nodes]
        clients: list[Client] = []
        try:
            ready = wait_ready(nodes, [], 30.0)
            exited = [n for n in nodes if n.proc.poll() is not None]
            if not ready or exited:
                # The cluster's directory goes with the demo: say here what each exited node logged last.
                why = "; ".join(f"{n.id} exited: {_last_line(n.log_path)}" for n in exited)
                checks.report(False, "every node's client API answers" + (f" ({why})" if why else ""))
                return
            clients = [n.client() for n in nodes]
            leader = _leader(clients)
            print(f"  3 nodes up (mutual TLS between them and with clients), {leader['node']} leads term {leader['term']}")
            _issue_and_prove(clients, suite.scheme, suite.hash, count, checks)
        finally:
            for c in clients:
                c.close()
            stop_all(nodes, 10.0, announce=False)


def _issue_and_prove(clients: list[Client], scheme: str, algo: str, count: int, checks: Any) -> None:
    bureaus = [signing.generate(scheme) for _ in BUREAUS]
    txs = [
        Transaction.create(
            bureaus[i % len(bureaus)], "cert", "issue",
            {"cert_id": f"BL-{i:06d}", "digest": (i + 1).to_bytes(32, "big"), "meta": {"bureau": BUREAUS[i % 3]}},
            i // len(bureaus) + 1, chain_id=CHAIN_ID,
        )  # fmt: skip
        for i in range(count)
    ]

    def submit(i: int) -> tuple[str, int, float]:
        t0 = time.perf_counter()
        out = clients[i % 3].submit(txs[i].encode(), wait=True)  # round-robin: followers forward
        return out["txid"], out["height"], time.perf_counter() - t0

    started = time.perf_counter()
    with ThreadPoolExecutor(48) as pool:
        done = list(pool.map(submit, range(count)))
    took = time.perf_counter() - started
    latencies = sorted(d[2] for d in done)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    print(f"  {count} certificates issued through all 3 nodes in {took:.1f}s ({count / took:.0f} tx/s, "
          f"commit latency p50 {statistics.median(latencies) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms)")  # fmt: skip
    checks.report(all(d[1] >= 1 for d in done), "every submission answered once committed (wait=commit)")

    # Every node holds the same chain: same block hash and state root at every height.
    statuses = [c.status() for c in clients]
    height = min(s["height"] for s in statuses)
    same = all(len({c.block(h)["header"]["hash"] for c in clients}) == 1 for h in range(1, height + 1))
    checks.report(same, f"all 3 nodes agree on every block hash up to height {height}")

    # A follower proves a transaction to someone who trusts only the header.
    follower = next(c for c, s in zip(clients, statuses) if s["role"] != "leader")
    txid, h, _ = done[count // 2]
    rec = follower.tx(txid, linearizable=True)  # once the follower has applied all that was committed
    header = follower.block(rec["height"])["header"]
    proof = [bytes.fromhex(p) for p in rec["proof"]]
    ok = merkle.verify_inclusion(bytes.fromhex(txid), rec["index"], rec["tx_count"], proof,
                                 bytes.fromhex(header["tx_root"]), algo)  # fmt: skip
    checks.report(ok, f"a follower's inclusion proof of tx {txid[:16]}… verifies against block {rec['height']}'s tx_root")
    wrong = merkle.verify_inclusion(bytes.fromhex(txid), rec["index"] ^ 1, rec["tx_count"], proof,
                                    bytes.fromhex(header["tx_root"]), algo)  # fmt: skip
    checks.report(not wrong, "the same proof at another position is rejected")
    # Its outcome too: the block's receipts record, against the receipts root of the header
    # (whose hash the other nodes give too).
    record_hex = follower.block_receipts(rec["height"])["record"]
    proven = header_of(follower.block(rec["height"]), rec["height"])
    agreed = all(c.block(rec["height"])["header"]["hash"] == proven.hash.hex() for c in clients)
    receipt = verify_receipt(bytes.fromhex(record_hex), rec["index"], proven)
    checks.report(
        agreed and receipt is not None and receipt.ok,
        f"its receipt (ok) verifies against block {rec['height']}'s receipts_root, in the header every node gives",
    )
    record = decode_value(bytes.fromhex(follower.get("cert", f"BL-{count // 2:06d}")["value"]))
    checks.report(
        record["digest"] == (count // 2 + 1).to_bytes(32, "big") and not record["revoked"],  # type: ignore[index]
        "the follower's state shows the certificate registered, not revoked, digest matching",
    )
    print(f"  cluster: height {height}, head {statuses[0]['block_hash'][:16]}…, state root {statuses[0]['state_root'][:16]}…")
