"""A ledger writer for the crash tests, run as its own process and killed with SIGKILL.

    python tests/crash_writer.py PATH SEED [--map-size BYTES] [--stop-at HEIGHT]

It opens (or creates) the ledger at PATH, prints ``open <height>``, then applies block after block
from the reopened height on. Block ``h`` is a pure function of ``(SEED, h)`` (see :func:`block_ops`),
so a writer that was killed and restarted writes exactly the blocks the killed one would have. It
prints ``begin <h> <tx count>`` just before ``apply_block``, ``commit-start <h>`` and ``commit-end <h>``
around its one LMDB write transaction, and ``committed <h>`` once ``apply_block`` returned (the block
is durable: the acknowledgement), flushing each line.

The same module tells the tests what the chain must hold: :func:`block_ops`, :func:`block_raws`,
:func:`expected_state`.
"""

from __future__ import annotations

import argparse
import functools
import random
import sys
from dataclasses import dataclass

SUITE = "ed25519-blake3"
CHAIN_ID = "dev"
SENDERS = 4
T0 = 1_700_000_000_000  # block h is stamped T0 + h seconds (ms)
MAX_PER_BLOCK = 10_000  # nonces are h * MAX_PER_BLOCK + position, unique per sender
LOCATOR_RUN_IDS = 200
STATE_SWEEP_COMMITS = 4


@dataclass(frozen=True)
class Op:
    """One transaction of a block: what it does and what it must leave behind."""

    kind: str  # "put" (evidence), "issue", "revoke" (cert), "dup" (a put that must fail)
    sender: int
    key: str  # evidence key or cert id
    digest: bytes
    nonce: int

    @property
    def contract(self) -> str:
        return "evidence" if self.kind in ("put", "dup") else "cert"


def _digest(seed: int, *parts: object) -> bytes:
    import hashlib

    return hashlib.blake2b(f"{seed}/{'/'.join(map(str, parts))}".encode(), digest_size=32).digest()


def _own_ops(seed: int, h: int) -> list[tuple[str, int, str, bytes]]:
    """The puts and issues block ``h`` makes of its own (no references to earlier blocks)."""
    rng = random.Random(f"{seed}/block/{h}")
    # Mostly small blocks (fsync-bound, many commits per second); now and then a big one, so kills
    # also land while a large write transaction is being built and flushed.
    r = rng.random()
    n = rng.randint(2000, 3000) if r < 0.03 else rng.randint(400, 1500) if r < 0.2 else rng.randint(1, 20)
    out = []
    for j in range(n):
        sender = rng.randrange(SENDERS)
        if rng.random() < 0.75:
            out.append(("put", sender, f"e/{h}/{j}", _digest(seed, "e", h, j)))
        else:
            out.append(("issue", sender, f"c/{h}/{j}", _digest(seed, "c", h, j)))
    return out


@functools.lru_cache(maxsize=4096)
def block_ops(seed: int, h: int) -> tuple[Op, ...]:
    """Every transaction of block ``h`` in block order.

    Besides its own puts and issues, block ``h`` revokes every third certificate block ``h-1``
    issued (signed by its issuer), and re-puts one of block ``h-1``'s evidence keys with another
    digest, which must fail ("already anchored") and write nothing.
    """
    ops = [(kind, s, key, d) for kind, s, key, d in _own_ops(seed, h)]
    if h > 1:
        prev = _own_ops(seed, h - 1)
        for j, (kind, s, key, _d) in enumerate(prev):
            if kind == "issue" and j % 3 == 0:
                ops.append(("revoke", s, key, b""))
        puts = [(s, key) for kind, s, key, _ in prev if kind == "put"]
        if puts:
            s, key = puts[h % len(puts)]
            ops.append(("dup", (s + 1) % SENDERS, key, _digest(seed, "dup", h)))
    assert len(ops) < MAX_PER_BLOCK
    return tuple(Op(kind, s, key, d, h * MAX_PER_BLOCK + i) for i, (kind, s, key, d) in enumerate(ops))


@functools.lru_cache(maxsize=1)
def keypairs(seed: int) -> tuple:
    from ledgercore import signing

    return tuple(signing.from_private_bytes("ed25519", _digest(seed, "key", k)) for k in range(SENDERS))


def proposer(seed: int) -> bytes:
    """The proposer every header names: the first sender's public key."""
    return keypairs(seed)[0].public_key


def block_raws(seed: int, h: int) -> list[bytes]:
    """The signed, encoded transactions of block ``h`` (signed in one batch per sender)."""
    from ledgercore import _native

    kps = keypairs(seed)
    ts = T0 + h * 1000
    payloads = []
    for op in block_ops(seed, h):
        if op.kind in ("put", "dup"):
            args = {"key": op.key, "digest": op.digest}
            if op.nonce % 7 == 0:
                args["meta"] = {"n": op.nonce}
            method = "put"
        elif op.kind == "issue":
            args, method = {"cert_id": op.key, "digest": op.digest, "meta": {"h": h}}, "issue"
        else:
            args, method = {"cert_id": op.key, "reason": f"revoked in block {h}"}, "revoke"
        sender = kps[op.sender].public_key
        payloads.append(_native.encode_tx_payload(SUITE, CHAIN_ID, sender, op.nonce, ts, op.contract, method, args))
    sigs: list[bytes] = [b""] * len(payloads)
    for k, kp in enumerate(kps):
        idx = [i for i, op in enumerate(block_ops(seed, h)) if op.sender == k]
        if idx:
            for i, sig in zip(idx, kp.sign_many([payloads[i] for i in idx])):
                sigs[i] = sig.tobytes()
    return [p + s for p, s in zip(payloads, sigs)]


def failed_indices(seed: int, h: int) -> list[int]:
    """Positions in block ``h`` of the transactions that must get a failed receipt."""
    return [i for i, op in enumerate(block_ops(seed, h)) if op.kind == "dup"]


def expected_state(seed: int, height: int) -> dict[bytes, tuple[int, bytes, int, bool]]:
    """The state a chain of blocks 1..height must hold: state key -> (version height, digest,
    sender index, revoked). Exactly these keys, no others."""
    out: dict[bytes, tuple[int, bytes, int, bool]] = {}
    for h in range(1, height + 1):
        for op in block_ops(seed, h):
            if op.kind == "put":
                out[f"evidence/{op.key}".encode()] = (h, op.digest, op.sender, False)
            elif op.kind == "issue":
                out[f"cert/{op.key}".encode()] = (h, op.digest, op.sender, False)
            elif op.kind == "revoke":
                key = f"cert/{op.key}".encode()
                _, digest, sender, _ = out[key]
                out[key] = (h, digest, sender, True)
    return out


def stored_value(key: bytes, history_entry: bytes) -> bytes:
    """The value a raw history entry of ``key`` holds (docs/FORMAT.md section 6: previous change
    (16), tx id (32), flag, u16 key length, key, value), read without ledgercore; a state entry is
    ``change id (16) || flag`` and its change id keys that history entry."""
    assert history_entry[48] == 1, "a put"
    assert history_entry[49:51] == len(key).to_bytes(2, "big") and history_entry[51 : 51 + len(key)] == key
    return history_entry[51 + len(key) :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("seed", type=int)
    parser.add_argument("--map-size", type=int, default=1 << 30)
    parser.add_argument("--stop-at", type=int, default=None)
    args = parser.parse_args(argv)

    from ledgercore import Ledger, ledger

    # Write the tx locator's map out as a run (merging older runs) every few blocks, so that kills
    # also land in commits that write and merge runs.
    ledger.LOCATOR_RUN_IDS = LOCATOR_RUN_IDS
    # Fold a quarter of the state overlay into the state table per commit, so that kills land in
    # commits that fold many entries, and reopening reads state back from both.
    ledger.STATE_SWEEP_COMMITS = STATE_SWEEP_COMMITS
    led = Ledger.open(args.path, SUITE, chain_id=CHAIN_ID, map_size=args.map_size)
    # Announce the LMDB write transaction itself, so the test can aim kills inside it. The real
    # commit runs unchanged in between.
    store = led._store
    transact = store.transact

    def traced_transact(fn, size_hint):  # type: ignore[no-untyped-def]
        print(f"commit-start {led.height + 1}", flush=True)
        out = transact(fn, size_hint)
        print(f"commit-end {led.height + 1}", flush=True)
        return out

    store.transact = traced_transact  # type: ignore[method-assign]
    print(f"open {led.height}", flush=True)
    h = led.height + 1
    while args.stop_at is None or h <= args.stop_at:
        raws = block_raws(args.seed, h)
        print(f"begin {h} {len(raws)}", flush=True)
        blk = led.apply_block(raws, timestamp=T0 + h * 1000, proposer=proposer(args.seed))
        if blk.height != h:
            raise SystemExit(f"applied block {h} but the ledger says {blk.height}")
        print(f"committed {h}", flush=True)
        h += 1
    led.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
