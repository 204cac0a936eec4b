"""Node.submit_many: a batch admitted with one decode, one signature-check batch and one waiter;
and what a node does with a committed block whose signatures fail."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from ledgercore import Transaction, signing
from ledgercore.bench.raft import make_configs
from ledgercore.codec import encode_value
from ledgercore.errors import DecodeError, InvalidInputError, InvalidSignatureError, MalformedInputError, NotFoundError
from ledgercore.node import Node
from ledgercore.node import node as node_module
from ledgercore.node.node import MAX_SUBMIT_BATCH


def signed(kp: signing.KeyPair, start: int, count: int) -> list[bytes]:
    return [
        Transaction.create(kp, "evidence", "put", {"key": f"k/{i}", "digest": bytes(32)}, i, chain_id="dev").encode()
        for i in range(start, start + count)
    ]


@asynccontextmanager
async def cluster(root: Path, **settings: Any) -> AsyncIterator[list[Node]]:
    """Three nodes in this process on loopback (mutual TLS, LMDB, fsync), once one of them leads."""
    cfgs = make_configs(
        root, 3, **{"tick_ms": 10, "block_ms": 10, "suite": "ed25519-blake3", "chain_id": "dev", **settings}
    )
    nodes = [Node(c) for c in cfgs]
    for n in nodes:
        await n.start()
    try:
        while not (any(n.is_leader for n in nodes) and all(n.raft.lead for n in nodes)):  # every node admits
            await asyncio.sleep(0.02)
        yield nodes
    finally:
        for n in nodes:
            await n.stop()


def test_submit_many_commits_a_batch_and_reports_each_height(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        async with cluster(tmp_path, block_txs=64) as nodes:
            kp = signing.generate("ed25519")
            raws = signed(kp, 1, 200)
            follower = next(n for n in nodes if not n.is_leader)
            out = await asyncio.wait_for(follower.submit_many(raws, wait=True), 30)
            assert out.rejected == {} and out.heights is not None
            assert out.txids == [Transaction.decode(r).id for r in raws]
            assert len({h for h in out.heights}) > 1  # blocks of 64: the batch spans several
            for txid, h in zip(out.txids, out.heights):  # the node that answered has applied them
                assert follower.ledger.tx(txid).height == h
            # Already committed: answered with the same heights, nothing proposed again.
            height = follower.ledger.height
            again = await asyncio.wait_for(follower.submit_many(raws[:3], wait=True), 30)
            assert again.heights == out.heights[:3] and follower.ledger.height == height
            # A bad signature is rejected by position; the rest of the batch commits.
            mixed = signed(kp, 201, 5)
            bad = bytearray(mixed[2])
            bad[-1] ^= 1
            mixed[2] = bytes(bad)
            part = await asyncio.wait_for(follower.submit_many(mixed, wait=True), 30)
            assert list(part.rejected) == [2] and "signature" in part.rejected[2]
            assert part.heights is not None and part.heights[2] is None
            assert all(h is not None and h > height for i, h in enumerate(part.heights) if i != 2)
            # Not waiting: admitted, no heights.
            quick = await follower.submit_many(signed(kp, 301, 3), wait=False)
            assert quick.heights is None and len(quick.txids) == 3
            # One submit is a batch of one, and says so when its signature fails.
            with pytest.raises(InvalidSignatureError):
                await follower.submit(bytes(bad), wait=True)
            # A batch in which one does not decode is refused whole, naming the position.
            with pytest.raises(DecodeError, match="transaction 1"):
                await follower.submit_many([raws[0], b"junk"], wait=True)
            with pytest.raises(InvalidInputError, match="no transactions"):
                await follower.submit_many([], wait=True)
            # Items that are not bytes-like are named (bytes(70) made 70 zero bytes, bytes("a") a
            # TypeError); one transaction for the batch is not read byte by byte; bytearrays are copied.
            for items, words in (([raws[0], "a"], "transaction 1 is str"), ([None], "transaction 0 is NoneType"),
                                 ([70], "transaction 0 is int"), (raws[0], "got a single bytes")):  # fmt: skip
                with pytest.raises(MalformedInputError, match=words):
                    await follower.submit_many(items, wait=False)  # type: ignore[arg-type]
            copied = await follower.submit_many([bytearray(r) for r in signed(kp, 311, 2)], wait=True)  # type: ignore[misc]
            assert copied.rejected == {} and copied.heights is not None and None not in copied.heights
            with pytest.raises(InvalidInputError, match=f"at most {MAX_SUBMIT_BATCH}"):
                await follower.submit_many([raws[0]] * (MAX_SUBMIT_BATCH + 1), wait=False)
            # Every node ends on the same chain.
            while len({n.ledger.head.hash for n in nodes}) != 1 or any(n.ledger.height < height + 1 for n in nodes):
                await asyncio.sleep(0.02)

    asyncio.run(main())


def _forged(kp: signing.KeyPair) -> list[dict[str, Any]]:
    """A block whose signature fails (a leader's bug, or a leader not to be trusted)."""
    raw = bytearray(signed(kp, 11, 1)[0])
    raw[-1] ^= 1
    return [{"ts": 1, "txs": [bytes(raw)]}]


def _badly_stamped(kp: signing.KeyPair) -> list[dict[str, Any]]:
    """Stamped -1 (a leader's clock before 1970): it stopped every node's apply, for good (a
    restart failed on the same entry). Without a timestamp: applied with each node's own clock,
    so the nodes' block hashes differed."""
    stray = signed(kp, 11, 2)
    return [{"ts": -1, "txs": stray[:1]}, {"ts": None, "txs": stray[1:]}]


@pytest.mark.parametrize("proposals", [_forged, _badly_stamped], ids=["forged signature", "bad timestamp"])
def test_a_committed_block_no_node_admitted_is_skipped_on_every_node(tmp_path, monkeypatch, proposals) -> None:  # type: ignore[no-untyped-def]
    """A leader proposes blocks it never admitted: the followers' checks ahead and the leader's
    check at apply refuse them alike, and the chain goes on; the leader stamps its next block
    within range whatever its clock says."""

    async def main() -> None:
        # The clock set before 1970 below is the nodes': their window then admits any timestamp.
        async with cluster(tmp_path, tx_time_window_ms=2**62) as nodes:
            leader = next(n for n in nodes if n.is_leader)
            kp = signing.generate("ed25519")
            first = await asyncio.wait_for(leader.submit_many(signed(kp, 1, 10), wait=True), 30)
            assert first.heights is not None
            height = max(h for h in first.heights if h is not None)
            stray = proposals(kp)
            async with leader._lock:  # what the cut loop does, minus admission
                for proposal in stray:
                    leader.raft.propose(encode_value(proposal))
                await leader._drain()
            monkeypatch.setattr(node_module, "now_ms", lambda: -5)  # every node is in this process
            after = await asyncio.wait_for(leader.submit_many(signed(kp, 21, 5), wait=True), 30)
            assert after.heights is not None and set(after.heights) == {height + 1}
            while len({n.ledger.head.hash for n in nodes}) != 1 or any(n.ledger.height != height + 1 for n in nodes):
                await asyncio.sleep(0.02)
            for n in nodes:
                assert not n.failed.is_set()
                assert n.ledger.header(height + 1).timestamp == n.ledger.header(height).timestamp  # never earlier
                for raw in (r for p in stray for r in p["txs"]):  # nothing of the skipped blocks anywhere
                    with pytest.raises(NotFoundError):
                        n.ledger.tx(Transaction.decode(raw).id)

    asyncio.run(main())


def test_a_commit_wait_counts_in_the_time_a_partial_block_waits_to_be_cut(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The wait gave up after a fixed 30 s, so with block_ms of 40 s (a setting the config takes)
    # a waited-for transaction of a partial block was a 504 on a healthy cluster. Here 1 s and 3 s.
    monkeypatch.setattr(node_module, "_WAIT_TIMEOUT_S", 1.0)

    async def main() -> None:
        async with cluster(tmp_path, block_ms=3000, block_txs=1000) as nodes:
            leader = next(n for n in nodes if n.is_leader)
            out = await asyncio.wait_for(leader.submit_many(signed(signing.generate("ed25519"), 1, 3), wait=True), 30)
            assert out.heights is not None and None not in out.heights

    asyncio.run(main())


def test_submit_many_waited_for_says_which_committed_transactions_failed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Regression, found by a bug hunt: a waited-for batch gave each one's height, and nothing said
    # that a committed one's receipt had failed (a block commits a replayed nonce, an unknown
    # contract, a key already anchored). Fresh (settled from the block's receipts) and committed
    # before (read from the ledger) alike.
    async def main() -> None:
        async with cluster(tmp_path) as nodes:
            kp = signing.generate("ed25519")
            follower = next(n for n in nodes if not n.is_leader)
            first = signed(kp, 1, 2)
            done = await asyncio.wait_for(follower.submit_many(first, wait=True), 30)
            assert done.failed == {}
            replay = Transaction.create(kp, "evidence", "put", {"key": "other", "digest": bytes(32)}, 1, chain_id="dev")
            anchored = Transaction.create(
                kp, "evidence", "put", {"key": "k/2", "digest": b"\1" * 32}, 3, chain_id="dev"
            )
            unknown = Transaction.create(kp, "nosuch", "put", {}, 4, chain_id="dev")
            bad = bytearray(signed(kp, 5, 1)[0])
            bad[-1] ^= 1
            mixed = [replay.encode(), signed(kp, 6, 1)[0], bytes(bad), anchored.encode(), unknown.encode(), first[0]]
            out = await asyncio.wait_for(follower.submit_many(mixed, wait=True), 30)
            assert list(out.rejected) == [2] and out.heights is not None and out.failed is not None
            assert sorted(out.failed) == [0, 3, 4], out.failed
            assert "replayed nonce 1" in out.failed[0] and "k/2" in out.failed[3] and "nosuch" in out.failed[4]
            for i, txid in enumerate(out.txids):
                if i != 2:
                    r = follower.ledger.tx(txid).receipt
                    assert (r.ok, r.error) == (i not in out.failed, out.failed.get(i))
            again = await asyncio.wait_for(follower.submit_many(mixed, wait=True), 30)  # all committed before
            assert (again.heights, again.failed, again.rejected) == (out.heights, out.failed, out.rejected)
            quick = await follower.submit_many(signed(kp, 7, 1), wait=False)
            assert quick.failed is None

    asyncio.run(main())


def test_a_block_holding_one_transaction_twice_gives_its_first_copys_receipt(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from ledgercore import Ledger
    from ledgercore.node.node import _failures

    kp = signing.generate("ed25519")
    a, b = signed(kp, 1, 2)
    with Ledger.open(tmp_path / "l", suite="ed25519-blake3", chain_id="dev") as led:
        blk = led.apply_block([a, a, b, b])
        ids = blk.txids
        assert sorted(blk.failures) == [1, 3]  # each second copy is a replay
        assert _failures(blk, ids, len(set(ids))) == {}  # as Ledger.tx answers: the first copy's
        assert led.tx(ids[0]).receipt.ok and led.tx(ids[2]).receipt.ok
        replay = Transaction.create(
            kp, "evidence", "put", {"key": "x", "digest": bytes(32)}, 1, chain_id="dev"
        ).encode()
        blk = led.apply_block([replay, replay, *signed(kp, 3, 1)])
        ids = blk.txids
        failed = _failures(blk, ids, len(set(ids)))
        assert list(failed) == [ids[0]] and "replayed nonce 1" in failed[ids[0]]
        assert failed[ids[0]] == led.tx(ids[0]).receipt.error
