"""ledgercore demo: a temporary ledger, a burst of e-certificates (电子证照) from a few bureaus, some
revocations, and the proofs anyone can check without trusting the node.

1. Four bureaus sign a burst of ``cert.issue`` transactions (generated natively, in bulk) and, from
   the second block on, revoke some earlier certificates; the blocks are applied with
   ``Ledger.apply_blocks`` (the next block's signatures are checked while the current one commits).
2. A bureau trying to revoke another bureau's certificate, and a replayed transaction, are refused
   with failed receipts; the block still commits.
3. Proofs: a transaction's inclusion in its block's ``tx_root``, a block's inclusion in the log of
   block hashes (``history_root``), the consistency of an old history root with the current one, and
   certificate status queries (registered / revoked / digest match).
4. A local 3-node cluster (one process per node, Raft over mutual TLS): certificates issued through
   every node's HTTP API, identical blocks on all nodes, a follower's proofs checked.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

import numpy as np

from . import merkle, signing
from .arg_types import FRACTION_BELOW_HALF, POSITIVE
from .bench.common import format_rate
from .bench.workload import KEY_PREFIX, Workload, digests_of, scrambled_id
from .demo_cluster import run_cluster_demo
from .ledger import Ledger
from .suites import SUITES, get_suite
from .transaction import Transaction

BUREAUS = (
    "Market Regulation Bureau",
    "Civil Affairs Bureau",
    "Housing and Urban-Rural Development Bureau",
    "Education Bureau",
)
CHAIN_ID = "demo"


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "demo", help="a temporary ledger: e-certificate issuances and revocations, proofs verified, summary",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--txs", type=POSITIVE, default=20_000, metavar="N", help="issuance and revocation transactions (default 20000)")
    parser.add_argument("--block-size", type=POSITIVE, default=5_000, metavar="B", help="transactions per block (default 5000)")
    parser.add_argument("--suite", default="ed25519-blake3", choices=sorted(SUITES), help="crypto suite (default ed25519-blake3)")
    parser.add_argument("--revoke-fraction", type=FRACTION_BELOW_HALF, default=0.05, metavar="F", help="share of each later block that revokes (default 0.05)")
    parser.add_argument("--cluster-txs", type=POSITIVE, default=1500, metavar="N", help="certificates issued through the 3-node cluster (default 1500)")
    parser.add_argument("--no-cluster", action="store_true", help="skip the 3-node cluster part")
    parser.set_defaults(handler=run)


class Checks:
    def __init__(self) -> None:
        self.failed = 0

    def report(self, ok: bool, text: str) -> None:
        self.failed += not ok
        print(f"  [{'ok' if ok else 'FAILED'}] {text}")


def run(args: argparse.Namespace) -> int:
    suite = get_suite(args.suite)
    started = time.perf_counter()
    checks = Checks()
    with tempfile.TemporaryDirectory(prefix="ledgercore-demo-") as tmp:
        led = Ledger.open(os.path.join(tmp, "ledger"), suite=suite.name, chain_id=CHAIN_ID)
        try:
            _demo(led, suite.name, args, checks)
        finally:
            led.close()
    if not args.no_cluster:
        print("\n4. A 3-node consortium: Raft over mutual TLS, one OS process per node")
        run_cluster_demo(checks, suite.name, args.cluster_txs)
    print(f"\ndone in {time.perf_counter() - started:.1f}s; {'all checks passed' if not checks.failed else f'{checks.failed} checks FAILED'}")
    return 1 if checks.failed else 0


def _demo(led: Ledger, suite: str, args: argparse.Namespace, checks: Checks) -> None:
    hash_algo = led.suite.hash
    w = Workload(led.suite, "cert", args.txs, args.block_size, len(BUREAUS), chain_id=CHAIN_ID, revoke_fraction=args.revoke_fraction)
    print(f"ledgercore demo: a temporary {suite} ledger, chain {CHAIN_ID!r}")
    print(f"\n1. {len(BUREAUS)} bureaus issue e-certificates (电子证照) and revoke some, {args.txs} transactions")
    t0 = time.perf_counter()
    blocks = [w.block(k) for k in range(w.blocks)]
    gen_s = time.perf_counter() - t0
    print(f"  signed {args.txs} transactions in {gen_s:.2f}s (native bulk signing, {format_rate(args.txs / gen_s)} tx/s)")
    t0 = time.perf_counter()
    applied = list(led.apply_blocks(b.raws for b in blocks))
    ingest_s = time.perf_counter() - t0
    failed = sum(not r.ok for b in applied for r in b.receipts)
    issued, revoked = sum(b.issued for b in blocks), sum(b.revoked for b in blocks)
    print(f"  applied {len(applied)} blocks in {ingest_s:.2f}s: {format_rate(args.txs / ingest_s)} tx/s end to end "
          f"(decode, batch-verify, execute, fsync'd commit)")  # fmt: skip
    checks.report(failed == 0, f"{issued} certificates issued, {revoked} revoked, {failed} failed transactions")

    print("\n2. What the ledger refuses")
    keys = digests_of(np.arange(len(BUREAUS), dtype=np.uint64), w.seed + b"key")
    bureau = [signing.from_private_bytes(led.suite.scheme, k.tobytes()) for k in keys]
    nonce = [int(n) for n in w._sent]
    victim = issued - 1  # the last certificate issued: issued by bureau victim % 4, not revoked
    victim_id = scrambled_id(KEY_PREFIX["cert"], victim)
    thief = (victim + 1) % len(BUREAUS)
    forged = Transaction.create(
        bureau[thief], "cert", "revoke", {"cert_id": victim_id, "reason": "not mine to revoke"}, nonce[thief] + 1,
        chain_id=CHAIN_ID,
    )  # fmt: skip
    replay = Transaction.decode(blocks[0].raws[0])
    blk = led.apply_block([forged.encode(), replay.encode()])
    r_forged, r_replay = blk.receipts
    checks.report(not r_forged.ok and "only the issuer" in (r_forged.error or ""),
                  f"{BUREAUS[thief]} revoking {BUREAUS[victim % len(BUREAUS)]}'s {victim_id}: {r_forged.error}")  # fmt: skip
    checks.report(not r_replay.ok and "replayed nonce" in (r_replay.error or ""), f"a replayed transaction: {r_replay.error}")
    checks.report(blk.height == led.height, f"block {blk.height} still committed with both failed receipts")

    print("\n3. Proofs anyone can check against block headers")
    t0 = time.perf_counter()
    # Certificates are revoked oldest first, so if any was revoked certificate 0 was; its revocation
    # is the transaction proved. A run with none (one block, or a fraction too small to revoke any
    # of a block) proves certificate 0's issuance instead.
    cert_id = scrambled_id(KEY_PREFIX["cert"], 0)
    method = "revoke" if revoked else "issue"
    txs = (t for b in blocks for t in map(Transaction.decode, b.raws))
    tx = next(t for t in txs if t.method == method and t.args["cert_id"] == cert_id)
    rec = led.tx(tx.id)
    root = led.header(rec.height).tx_root
    checks.report(
        merkle.verify_inclusion(tx.id, rec.index, rec.tx_count, rec.proof, root, algo=hash_algo),
        f"tx inclusion proof: {tx.method} of {tx.args['cert_id']} is tx {rec.index} of {rec.tx_count} in block "
        f"{rec.height}, {len(rec.proof)} hashes up to its tx_root {root.hex()[:16]}…",
    )  # fmt: skip
    size = led.height + 1
    h = applied[0].height
    proof = led.block_proof(h, size)
    checks.report(
        merkle.verify_inclusion(led.header(h).hash, h, size, proof, led.history_root(size), algo=hash_algo),
        f"block inclusion proof: block {h} is in the log of all {size} block hashes ({len(proof)} hashes)",
    )
    old = 2
    old_root = led.header(old).history_root  # what a client saw in the header at height 2
    proof = led.consistency_proof(old, size)
    checks.report(
        merkle.verify_consistency(old, size, old_root, led.history_root(size), proof, algo=hash_algo),
        f"consistency proof: the {old}-block history in header {old} is a prefix of today's {size} blocks ({len(proof)} hashes)",
    )
    checks.report(
        not merkle.verify_inclusion(tx.id, rec.index + 1, rec.tx_count, rec.proof, root, algo=hash_algo),
        "the same tx proof at the wrong position is rejected",
    )
    doc_digest = lambda n: digests_of(np.array([n], dtype=np.uint64), w.seed + b"doc")[0].tobytes()  # noqa: E731
    cases = [
        (victim_id, doc_digest(victim), {"registered": True, "revoked": False, "digest_matches": True}, "valid certificate"),
        (victim_id, b"\x00" * 32, {"registered": True, "revoked": False, "digest_matches": False}, "tampered copy"),
        ("cert/not-a-certificate", doc_digest(0), {"registered": False, "revoked": False, "digest_matches": False}, "unknown id"),
    ]
    if revoked:
        cases.insert(1, (cert_id, doc_digest(0), {"registered": True, "revoked": True, "digest_matches": True}, "revoked certificate"))
    else:
        print("  (no certificate revoked in this run: revocations start in the second block, "
              "int(block size × --revoke-fraction) of each)")  # fmt: skip
    for cid, digest, want, what in cases:
        status = led.query("cert", "status", cert_id=cid, digest=digest)
        got = {k: status[k] for k in want}
        reason = f", reason {status['reason']!r}" if status.get("reason") else ""
        checks.report(got == want, f"certificate status, {what} {cid}: registered={got['registered']} "
                                   f"revoked={got['revoked']} digest_matches={got['digest_matches']}{reason}")  # fmt: skip
    proofs_s = time.perf_counter() - t0

    print("\nsummary")
    print(f"  blocks: {led.height} (+ genesis); transactions: {args.txs + 2}; certificates: {issued} issued, {revoked} revoked")
    print(f"  ingest: {format_rate(args.txs / ingest_s)} tx/s end to end; signing (not in ingest): {format_rate(args.txs / gen_s)} tx/s; "
          f"proofs and queries: {proofs_s * 1000:.0f} ms")  # fmt: skip
    print(f"  head: height {led.head.height}, hash {led.head.hash.hex()[:16]}…, history root {led.history_root().hex()[:16]}…")
