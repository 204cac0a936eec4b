"""Consensus nodes in one process: real mutual-TLS sockets on loopback, real LMDB, real fsync."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import os
import re
import resource
import shutil
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ledgercore import Ledger, Transaction, merkle, signing
from ledgercore.block import decode_block, encode_block
from ledgercore.codec import decode_value, encode_value
from ledgercore.consensus.messages import (
    ConfState,
    Entry,
    EntryType,
    MsgHeartbeat,
    MsgProp,
    MsgSnap,
    Snapshot,
    encode_message,
)
from ledgercore.contracts import Contract, ContractError, method
from ledgercore.errors import ChainMismatchError, InvalidSignatureError
from ledgercore.ledger import Block
from ledgercore.net import tls_accept
from ledgercore.node import Node, NodeConfig, http
from ledgercore.node import node as node_module
from ledgercore.node.init_cluster import free_base_port, init_cluster
from ledgercore.node.node import (
    FRAME_RAFT,
    FRAME_SYNC_BLOCKS,
    FRAME_SYNC_REQUEST,
    DataDirInUseError,
    DivergedError,
    NotReadyError,
    TimestampOutOfWindowError,
    applied_index,
    consensus_data,
    snapshot_point,
    sync_peer,
)
from ledgercore.node.peer_warnings import PeerWarnings
from ledgercore.node.raft_store import DurableStorage


def make_configs(root: Path, n: int, **settings: object) -> list[NodeConfig]:
    layout = init_cluster(root, n, base_port=free_base_port(2 * n), settings={"block_ms": 10, "tick_ms": 10, **settings})
    return list(layout.configs)


async def wait_until(cond, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def txs(kp: signing.KeyPair, start: int, count: int) -> list[bytes]:
    return [
        Transaction.create(kp, "evidence", "put", {"key": f"k/{i}", "digest": i.to_bytes(32, "big")}, i).encode()
        for i in range(start, start + count)
    ]


@contextlib.asynccontextmanager
async def running(cfg: NodeConfig) -> AsyncIterator[Node]:
    """A started node, stopped on the way out."""
    node = Node(cfg)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


@contextlib.asynccontextmanager
async def running_all(cfgs: list[NodeConfig]) -> AsyncIterator[list[Node]]:
    """Started nodes, all stopped on the way out."""
    nodes = [Node(c) for c in cfgs]
    try:
        for n in nodes:
            await n.start()
        yield nodes
    finally:
        for n in nodes:
            await n.stop()


def leader_known(nodes: list[Node]) -> bool:
    """One node leads and every node knows it: each then admits transactions (a node that knows no
    leader answers NotReadyError)."""
    leaders = [n.config.raft_id for n in nodes if n.is_leader]
    return len(leaders) == 1 and all(n.raft.lead == leaders[0] for n in nodes)


def same_chain(nodes: list[Node]) -> bool:
    heights = {n.ledger.height for n in nodes}
    if len(heights) != 1:
        return False
    h = heights.pop()
    return all(n.ledger.header(k) == nodes[0].ledger.header(k) for n in nodes for k in range(h + 1))


def test_three_nodes_commit_the_same_blocks_and_survive_restart(tmp_path):
    async def main() -> None:
        cfgs = make_configs(tmp_path, 3)
        nodes = [Node(c) for c in cfgs]
        for n in nodes:
            await n.start()
        await wait_until(lambda: leader_known(nodes))
        kp = signing.generate("ed25519")
        raws = txs(kp, 1, 300)
        done = await asyncio.gather(*[nodes[i % 3].submit(r, wait=True) for i, r in enumerate(raws)])
        assert all(h is not None and h >= 1 for _, h in done)
        await wait_until(lambda: same_chain(nodes))
        # A follower serves proofs for what the leader committed.
        follower = next(n for n in nodes if not n.is_leader)
        txid, height = done[7]
        rec = follower.ledger.tx(txid)
        header = follower.ledger.header(rec.height)
        assert merkle.verify_inclusion(txid, rec.index, rec.tx_count, rec.proof, header.tx_root, "blake3")
        with pytest.raises(DataDirInUseError, match="in use"):
            await Node(cfgs[0]).start()
        # Submitting a committed transaction again answers with where it already is.
        assert await nodes[0].submit(raws[7], wait=True) == (txid, height)
        height = nodes[0].ledger.height
        for n in nodes:
            await n.stop()
        # Restart everything from disk: same chain, and it keeps going.
        nodes = [Node(c) for c in cfgs]
        for n in nodes:
            await n.start()
        assert all(n.ledger.height == height for n in nodes)
        await wait_until(lambda: leader_known(nodes))
        more = await asyncio.gather(*[nodes[i % 3].submit(r, wait=True) for i, r in enumerate(txs(kp, 301, 50))])
        assert all(h > height for _, h in more)
        await wait_until(lambda: same_chain(nodes))
        for n in nodes:
            await n.stop()

    asyncio.run(main())


def test_a_lagging_node_catches_up_by_snapshot_after_compaction(tmp_path):
    async def main() -> None:
        cfgs = make_configs(tmp_path, 3, snapshot_every=8, block_txs=50)
        nodes = [Node(c) for c in cfgs]
        for n in nodes:
            await n.start()
        await wait_until(lambda: leader_known(nodes))
        kp = signing.generate("ed25519")
        await asyncio.gather(*[nodes[0].submit(r, wait=True) for r in txs(kp, 1, 100)])
        # Take one follower down; the others commit many more blocks and compact their logs.
        lagging = next(i for i, n in enumerate(nodes) if not n.is_leader)
        lagged_at = nodes[lagging].ledger.height
        await nodes[lagging].stop()
        live = [n for i, n in enumerate(nodes) if i != lagging]
        await wait_until(lambda: any(n.is_leader for n in live))
        leader = next(n for n in live if n.is_leader)
        for start in range(101, 2101, 250):
            await asyncio.gather(*[leader.submit(r, wait=True) for r in txs(kp, start, 250)])
        assert leader.storage.first_index() > lagged_at + 2  # its log no longer covers the gap
        nodes[lagging] = Node(cfgs[lagging])
        await nodes[lagging].start()
        await wait_until(lambda: same_chain(nodes), timeout=30)
        assert nodes[lagging].ledger.get("evidence", "k/2000") is not None
        for n in nodes:
            await n.stop()

    asyncio.run(main())


@pytest.fixture
def sync_answers_held(monkeypatch):
    """Peers serve no blocks to a node catching up until the event this returns (made in the
    test's loop) is set: an install that takes as long as a test needs."""
    answer_sync = Node._answer_sync
    released: list[asyncio.Event] = []

    async def held_back(self: Node, peer: str, body: bytes) -> None:
        await released[0].wait()
        await answer_sync(self, peer, body)

    monkeypatch.setattr(Node, "_answer_sync", held_back)

    def release_event() -> asyncio.Event:
        released.append(asyncio.Event())
        return released[0]

    return release_event


@contextlib.asynccontextmanager
async def a_node_installing_a_snapshot(
    cfgs: list[NodeConfig], kp: signing.KeyPair, restarted: bool = False
) -> AsyncIterator[tuple[list[Node], int, int, int]]:
    """Three started nodes, one of them (a follower that was down while the others committed
    and compacted) installing a snapshot, ``restarted`` part way if asked: the nodes, and the
    leader's, the installing node's and the other node's positions. All stopped on the way out."""
    nodes = [Node(c) for c in cfgs]
    try:
        for n in nodes:
            await n.start()
        await wait_until(lambda: leader_known(nodes))
        lead = next(i for i, n in enumerate(nodes) if n.is_leader)
        lagging, other = (i for i in range(3) if i != lead)
        await nodes[lagging].stop()
        # More blocks than the transport keeps queued for a peer that is down (it would get
        # those as appends), and past the leader's compacted log: the rest comes by snapshot.
        for start in range(1, 501, 100):
            await nodes[lead].submit_many(txs(kp, start, 100), wait=True)
        assert nodes[lead].storage.first_index() > 80
        nodes[lagging] = Node(cfgs[lagging])
        await nodes[lagging].start()
        await wait_until(lambda: nodes[lagging]._catching_up)
        if restarted:  # its stored snapshot is ahead of its ledger: it finishes the install at start
            await nodes[lagging].stop()
            nodes[lagging] = Node(cfgs[lagging])
            await asyncio.wait_for(nodes[lagging].start(), 15)  # not held until the install ends
            await wait_until(lambda: nodes[lagging]._catching_up)
        yield nodes, lead, lagging, other
    finally:
        for n in nodes:
            await n.stop()


@pytest.mark.parametrize("restarted", [False, True], ids=["", "restarted mid-install"])
@pytest.mark.parametrize("goes", ["the other follower", "the leader"])
def test_a_node_installing_a_snapshot_still_acknowledges_and_votes(tmp_path, sync_answers_held, goes, restarted):
    # Regression: a snapshot's install (fetching the blocks up to it) ran under the Raft lock, so
    # the node neither acknowledged appends nor voted until it ended: with one more node of three
    # down (a rolling restart), the cluster committed nothing, or elected no one, all that time.
    # Restarted part way, it finished the install before starting Raft (found by an operator
    # hunt: a 5-8 s stall with 1,100-1,500 blocks to fetch).
    async def main() -> None:
        released = sync_answers_held()
        kp = signing.generate("ed25519")
        cfgs = make_configs(tmp_path, 3, snapshot_every=8, block_txs=5)
        async with a_node_installing_a_snapshot(cfgs, kp, restarted) as (nodes, lead, lagging, other):
            gone = other if goes == "the other follower" else lead
            await nodes[gone].stop()
            live = [nodes[i] for i in range(3) if i != gone]
            await wait_until(lambda: leader_known(live))
            assert not nodes[lagging].is_leader  # it could not apply what it commits
            await next(n for n in live if n.is_leader).submit_many(txs(kp, 501, 1), wait=False)
            applies = nodes[other if gone == lead else lead]  # the live node that is not installing
            await wait_until(lambda: applies.ledger.get("evidence", "k/501") is not None)
            assert nodes[lagging]._catching_up  # committed with its acknowledgement, not after its install
            released.set()
            await wait_until(lambda: same_chain(live), timeout=30)
            assert nodes[lagging].ledger.get("evidence", "k/501") is not None

    asyncio.run(main())


def test_a_node_installing_a_snapshot_appends_a_bounded_log_meanwhile(tmp_path, sync_answers_held, monkeypatch):
    # What commits during an install waits in the node's log, in memory: past the bound, the
    # node stops taking appends until its install ends (the leader keeps them for it).
    monkeypatch.setattr(node_module, "_HELD_LOG_BYTES", 1)

    async def main() -> None:
        released = sync_answers_held()
        kp = signing.generate("ed25519")
        cfgs = make_configs(tmp_path, 3, snapshot_every=8, block_txs=5)
        async with a_node_installing_a_snapshot(cfgs, kp) as (nodes, lead, lagging, _):
            await nodes[lead].submit_many(txs(kp, 501, 5), wait=True)  # one block: past the bound
            held_at = nodes[lagging].raft.log.last_index()
            for start in range(506, 526, 5):
                await nodes[lead].submit_many(txs(kp, start, 5), wait=True)
            assert nodes[lagging].raft.log.last_index() == held_at
            assert nodes[lead].raft.log.last_index() >= held_at + 4
            released.set()
            await wait_until(lambda: same_chain(nodes), timeout=30)
            assert nodes[lagging].ledger.get("evidence", "k/525") is not None

    asyncio.run(main())


def test_a_snapshot_names_the_block_at_its_own_index_though_a_block_commits_while_it_is_made(tmp_path, monkeypatch):
    # Regression: _maybe_compact read the ledger's head twice, and the apply worker may commit
    # between the reads: a snapshot at index S then named a block committed past S, and a
    # follower that installed it had its ledger past its Raft log, which it never restarted from.
    async def main() -> None:
        kp = signing.generate("ed25519")
        (cfg,) = make_configs(tmp_path, 1, snapshot_every=1000)
        async with running(cfg) as node:
            await wait_until(lambda: node.is_leader)
            await node.submit_many(txs(kp, 1, 3), wait=True)
            # Quiet first: the idle leader's entry naming its head reads the head too.
            await wait_until(lambda: node._head_named == node.ledger.height and not node._proposed_blocks)
            await asyncio.sleep(0.1)
            node.config = dataclasses.replace(node.config, snapshot_every=1)
            real_head = Ledger.head
            committed: list[Block] = []

            def head_then_a_commit(ledger: Ledger):  # type: ignore[no-untyped-def]
                head = real_head.fget(ledger)  # type: ignore[attr-defined]
                if not committed:  # the worker commits the next block just after this read
                    index = applied_index(head.consensus) + 1
                    committed.append(ledger.apply_block(txs(kp, 4, 1), consensus=consensus_data(node.raft.term, index)))
                return head

            monkeypatch.setattr(Ledger, "head", property(head_then_a_commit))
            await node._maybe_compact()
            monkeypatch.undo()
            snap = node.storage.snapshot()
            named = decode_value(snap.data)
            assert committed and named["height"] == committed[0].height - 1, named  # type: ignore[index]
            assert applied_index(node.ledger.header(named["height"]).consensus) == snap.index  # type: ignore[index]

    asyncio.run(main())


def test_a_node_catching_up_asks_the_leader_else_the_peers_in_turn():
    peers = ["node2", "node3", "node4"]
    assert sync_peer(peers, {}, "node3", None, False) == "node3"  # the leader first
    assert sync_peer(peers, {}, "node3", "node3", False) == "node3"  # its answer applied blocks
    # Regression: the leader was asked every round it was known (a node catching up steps no
    # Raft, so the leader it knows never changes): a dead one kept the node from catching up and
    # from voting, and the two survivors of three elected no one. Now, every peer in turn.
    five = ["node2", "node3", "node4", "node5"]
    asked, last = [], None
    for _ in range(9):  # every round times out
        last = sync_peer(five, {}, "node3", last, last is not None)
        asked.append(last)
    assert asked == ["node3", "node4", "node5", "node2", "node3", "node4", "node5", "node2", "node3"]
    assert sync_peer(peers, {}, "node3", "node4", False) == "node4"  # whose answer applied blocks
    assert sync_peer(peers, {"node3"}, "node3", None, False) == "node2"
    assert sync_peer(peers, {"node3"}, "node3", "node3", True) == "node4"
    assert sync_peer(peers, {}, None, None, False) == "node2"
    assert sync_peer(peers, {}, None, "node2", False) == "node2"  # its answer applied blocks
    assert sync_peer(peers, {}, None, "node2", True) == "node3"  # it timed out, or applied none
    assert sync_peer(peers, {}, None, "node4", True) == "node2"
    assert sync_peer(peers, {"node3"}, None, "node2", True) == "node4"
    assert sync_peer(peers, {"node2"}, None, "node2", False) == "node3"
    assert sync_peer(peers, set(peers), None, "node2", True) is None


@pytest.mark.parametrize("answers", [1, 2], ids=["each request answered once", "each answer arriving twice"])
def test_a_node_catching_up_at_start_asks_one_peer_at_a_time(tmp_path, monkeypatch, answers):
    # Regression: before Raft runs (a snapshot stored ahead of the ledger: killed mid-install) a
    # node asked every peer each round and used the first answer: the others were stale by the next
    # round, so every other round was wasted and each peer read each batch of blocks for nothing.
    # An answer that comes twice (a late one, after its round timed out) is stale the second time:
    # it ended the next round, which then asked another peer for the same blocks.
    monkeypatch.setattr(node_module, "_SYNC_WAIT_S", 60.0)  # a slow answer on a busy machine is no re-ask
    asked: list[tuple[str, str, int]] = []  # (peer asked, who asked, from which height)
    answer_sync = Node._answer_sync

    async def counted(self: Node, peer: str, body: bytes) -> None:
        asked.append((self.config.id, peer, decode_value(body)["from"]))
        for _ in range(answers):
            await answer_sync(self, peer, body)

    monkeypatch.setattr(Node, "_answer_sync", counted)

    async def main() -> None:
        cfgs = make_configs(tmp_path, 3, snapshot_every=8, block_txs=5)
        nodes = [Node(c) for c in cfgs]
        try:
            for n in nodes:
                await n.start()
            await wait_until(lambda: leader_known(nodes))
            lagging = next(i for i, n in enumerate(nodes) if not n.is_leader)
            await nodes[lagging].stop()
            leader = next(n for n in nodes if n.is_leader)
            kp = signing.generate("ed25519")
            for start in range(1, 1001, 100):
                await leader.submit_many(txs(kp, start, 100), wait=True)
            # What a node killed while it installed the leader's snapshot has stored.
            snap = leader.storage.snapshot()
            height, _ = snapshot_point(snap.data)
            assert height > 2 * node_module._SYNC_BATCH  # several rounds
            storage = DurableStorage(cfgs[lagging].data_dir / "raft")
            try:
                storage.apply_snapshot(snap)
                storage.sync()
            finally:
                storage.close()
            nodes[lagging] = Node(cfgs[lagging])
            await nodes[lagging].start()  # the install goes on in its apply loop
            await wait_until(lambda: nodes[lagging].ledger.height >= height, timeout=60)
            froms = [h for _, asker, h in asked if asker == cfgs[lagging].id]
            assert sorted(froms) == sorted(set(froms)), asked  # no batch asked twice: none unused
            assert len(froms) >= height // node_module._SYNC_BATCH
            await wait_until(lambda: same_chain(nodes), timeout=30)
        finally:
            for n in nodes:
                await n.stop()

    asyncio.run(main())


def test_a_node_steps_raft_messages_while_it_reads_blocks_for_a_sync_answer(tmp_path):
    # Regression: sync requests were answered in the receive loop, so while a node read a batch of
    # blocks for a peer catching up, the Raft frames sent to it waited (a leader heard no acks and
    # committed nothing; elections stalled). Answers now run on their own task, one per peer.
    async def main() -> None:
        cfgs = make_configs(tmp_path, 3)
        nodes = [Node(c) for c in cfgs]
        stopped: list[Node] = []
        release = threading.Event()
        try:
            for n in nodes:
                await n.start()
            await wait_until(lambda: leader_known(nodes))
            leader = next(n for n in nodes if n.is_leader)
            asker = next(n for n in nodes if not n.is_leader)
            kp = signing.generate("ed25519")
            await leader.submit(txs(kp, 1, 1)[0], wait=True)
            reading, reads, block_bodies = threading.Event(), [], leader._block_bodies

            def slow_block_bodies(start: int, end: int) -> list[bytes]:  # on a ledger thread
                reads.append((start, end))
                reading.set()
                release.wait(30)
                return block_bodies(start, end)

            leader._block_bodies = slow_block_bodies  # type: ignore[method-assign]
            requests, answers = [], []
            handle, send = leader._handle, leader.transport.send

            async def counted_handle(peer: str, payload: bytes) -> None:
                if payload[:1] == FRAME_SYNC_REQUEST:
                    requests.append(peer)
                await handle(peer, payload)

            def counted_send(peer: str, payload: bytes) -> None:
                if payload[:1] == FRAME_SYNC_BLOCKS:
                    answers.append(peer)
                send(peer, payload)

            leader._handle = counted_handle  # type: ignore[method-assign]
            leader.transport.send = counted_send  # type: ignore[method-assign]
            request = FRAME_SYNC_REQUEST + encode_value({"from": 1, "to": 1})
            asker.transport.send(leader.config.id, request)
            await wait_until(reading.is_set)
            # The leader still hears its followers: a transaction commits while the read waits.
            await asyncio.wait_for(leader.submit(txs(kp, 2, 1)[0], wait=True), 10)
            # A second request from the same peer while its answer is read is dropped.
            asker.transport.send(leader.config.id, request)
            await wait_until(lambda: len(requests) == 2)
            # Handled (dropped) as it arrived: still the one answer, reading its one block.
            assert list(leader._sync_answers) == [asker.config.id] and reads == [(1, 1)]
            release.set()
            await wait_until(lambda: answers == [asker.config.id] and not leader._sync_answers)
            assert reads == [(1, 1)]
            # Stopping cancels an answer being read.
            release.clear()
            reading.clear()
            asker.transport.send(leader.config.id, request)
            await wait_until(reading.is_set)
            answering = leader._sync_answers[asker.config.id]
            stopped.append(leader)
            stopping = asyncio.create_task(leader.stop())
            await wait_until(answering.done)
            assert answering.cancelled()
            release.set()  # stop waits for the ledger read (a thread) before closing the ledger
            await asyncio.wait_for(stopping, 10)
            assert answers == [asker.config.id]
        finally:
            release.set()
            for n in nodes:
                if n not in stopped:
                    await n.stop()

    asyncio.run(main())


def test_a_node_whose_loop_dies_says_it_failed(tmp_path):
    # Its transport closed under it: the receive loop ends with an error, and the node must not go
    # on as if it took part (a leader without its block cutter still heartbeats, so no one replaces
    # it). `ledgercore node` stops on `failed` with exit status 1.
    async def main() -> None:
        (cfg,) = make_configs(tmp_path, 1)
        async with running(cfg) as node:
            assert not node.failed.is_set() and node.failure is None
            await node.transport.stop()
            await asyncio.wait_for(node.failed.wait(), 10)
            assert node.failure is not None and "receive" in node.failure and "TransportClosedError" in node.failure

    asyncio.run(main())


def big_txs(kp: signing.KeyPair, start: int, count: int) -> list[bytes]:
    """Transactions of ~0.9 MB each (their "blob" fails execution; they are ordered all the same)."""
    return [
        Transaction.create(kp, "evidence", "put", {"key": f"b/{i}", "digest": bytes(32), "blob": bytes(900_000)}, i)
        .encode()
        for i in range(start, start + count)
    ]  # fmt: skip


def test_the_mempool_is_bounded_in_bytes_as_well_as_in_transactions(tmp_path):
    # Transactions are up to 1 MB each: 200k of them (the default count limit) would be 200 GB.
    async def main() -> None:
        kp = signing.generate("ed25519")
        # A leader that cuts no block within the test (blocks of 1000, or after ten minutes): what
        # it admits stays held.
        cfg = make_configs(tmp_path / "a", 1, mempool_bytes=3_000_000, mempool_limit=10, block_txs=1000,
                           block_ms=600_000)[0]  # fmt: skip
        async with running(cfg) as node:
            await wait_until(lambda: node.is_leader)
            # Refused at admission (a bad signature, a duplicate): its bytes are not held.
            forged = big_txs(kp, 50, 1)[0][:-64] + bytes(64)
            with pytest.raises(InvalidSignatureError):
                await node.submit(forged, wait=False)
            first = big_txs(kp, 1, 1)[0]
            await node.submit(first, wait=False)
            await node.submit(first, wait=False)
            for raw in big_txs(kp, 2, 2):
                await node.submit(raw, wait=False)
            with pytest.raises(NotReadyError, match=r"mempool full \(3 of 10 transactions, 2700\d+ of 3000000 bytes held\)"):
                await node.submit(big_txs(kp, 4, 1)[0], wait=False)
            small = txs(kp, 100, 8)
            await node.submit_many(small[:7], wait=False)  # bytes left for small ones, up to the count
            with pytest.raises(NotReadyError, match=r"mempool full \(10 of 10 transactions, "):
                await node.submit(small[7], wait=False)
        # Batches submitted at once: those queued for admission count too (all five got in before).
        async with running(dataclasses.replace(cfg, data_dir=tmp_path / "c")) as node:
            await wait_until(lambda: node.is_leader)
            batches = [node.submit_many(txs(kp, 1000 + 10 * k, 10), wait=False) for k in range(5)]
            outcomes = await asyncio.gather(*batches, return_exceptions=True)
            assert sum(isinstance(o, NotReadyError) for o in outcomes) == 4
            assert len(node._mempool) + len(node._proposed) == 10
        # A node that commits gives the bytes back: twice the limit in turn, each batch once held.
        async with running(make_configs(tmp_path / "b", 1, mempool_bytes=3_000_000)[0]) as node:
            await wait_until(lambda: node.is_leader)
            for k in range(2):
                out = await node.submit_many(big_txs(kp, 200 + 3 * k, 3), wait=True)
                assert not out.rejected and all(h is not None for h in out.heights)

    asyncio.run(main())


def test_a_full_leader_drops_forwards_and_the_follower_sends_them_again(tmp_path):
    # Forwarded transactions respect the leader's bounds: while its mempool has no room it drops a
    # follower's forward (the follower still holds them), and takes them when sent again.
    async def main() -> None:
        kp = signing.generate("ed25519")
        cfgs = make_configs(tmp_path, 3, mempool_limit=60, block_txs=10_000, block_ms=1500)
        async with running_all(cfgs) as nodes:
            await wait_until(lambda: leader_known(nodes))
            leader = next(n for n in nodes if n.is_leader)
            follower = next(n for n in nodes if not n.is_leader)
            # block_ms holds a partial block back: these 50 wait in the leader's mempool.
            await leader.submit_many(txs(kp, 1, 50), wait=False)
            forwarded = asyncio.ensure_future(follower.submit_many(txs(kp, 51, 20), wait=True))
            await wait_until(lambda: len(follower._forwarded) == 20)
            await asyncio.sleep(0.3)  # the forward has arrived, and been dropped
            assert len(leader._mempool) + len(leader._proposed) == 50
            out = await asyncio.wait_for(forwarded, 30)  # sent again once the first 50 committed
            assert not out.rejected and all(h is not None and h >= 2 for h in out.heights)
            await wait_until(lambda: same_chain(nodes))
            assert nodes[0].ledger.get("evidence", "k/70") is not None

    asyncio.run(main())


def test_a_leader_does_not_check_again_what_a_follower_sends_again_while_it_holds_it(tmp_path):
    # Regression: a follower sent everything not yet committed again every second, and the leader
    # checked every copy's signature before it found it held it already: with a backlog, the
    # leader did ~9x the checks of the transactions submitted (forwarded.py).
    async def main() -> None:
        kp = signing.generate("ed25519")
        cfgs = make_configs(tmp_path, 3, block_txs=10_000, block_ms=4000)
        async with running_all(cfgs) as nodes:
            await wait_until(lambda: leader_known(nodes))
            leader = next(n for n in nodes if n.is_leader)
            follower = next(n for n in nodes if not n.is_leader)
            checked: list[int] = []
            check = leader._check_admission
            leader._check_admission = lambda raws, ids: (checked.append(len(raws)), check(raws, ids))[1]  # type: ignore[method-assign]
            submitted = asyncio.ensure_future(follower.submit_many(txs(kp, 1, 20), wait=True))
            await wait_until(lambda: len(leader._mempool) == 20)
            # block_ms holds the partial block back 4 s: the follower sends the 20 again after 1 s.
            await asyncio.sleep(2.5)
            assert sum(checked) == 20, checked
            out = await asyncio.wait_for(submitted, 30)
            assert not out.rejected and len(set(out.heights)) == 1 and None not in out.heights

    asyncio.run(main())


def test_an_admission_check_the_host_cannot_run_now_is_a_retry_not_the_nodes_end(tmp_path):
    # Regression: an OSError in the admission check (out of file descriptors: numpy opening a
    # module) ended the admit loop, and the node with it (exit 1).
    async def main() -> None:
        kp = signing.generate("ed25519")
        (cfg,) = make_configs(tmp_path, 1)
        async with running(cfg) as node:
            await wait_until(lambda: node.is_leader)
            check = node._check_admission

            def out_of_descriptors(raws, ids):  # type: ignore[no-untyped-def]
                raise OSError(24, "Too many open files")

            node._check_admission = out_of_descriptors  # type: ignore[method-assign]
            with pytest.raises(NotReadyError, match=r"cannot check transactions now \(\[Errno 24\] Too many open files\): retry"):
                await node.submit_many(txs(kp, 1, 5), wait=True)
            assert (node._queued, node._held_bytes) == (0, 0) and not node.failed.is_set()
            node._check_admission = check  # type: ignore[method-assign]
            out = await node.submit_many(txs(kp, 1, 5), wait=True)
            assert not out.rejected and None not in out.heights

    asyncio.run(main())


def test_a_transaction_whose_block_applies_while_a_follower_checks_it_is_not_held_after(tmp_path):
    # Regression: a follower checked a copy of a transaction (committed? no), its block applied
    # and was settled during the check, and then the copy joined the mempool: held for good,
    # forwarded every 8 s, counted against the mempool's bounds. A client retrying on another node
    # while the first copy commits does this; the check is held open here to make it certain.
    async def main() -> None:
        kp = signing.generate("ed25519")
        async with running_all(make_configs(tmp_path, 3)) as nodes:
            await wait_until(lambda: leader_known(nodes))
            leader = next(n for n in nodes if n.is_leader)
            follower = next(n for n in nodes if not n.is_leader)
            (raw,) = txs(kp, 1, 1)
            (txid,) = follower._txids([raw])
            checked, release = threading.Event(), threading.Event()
            check = follower._check_admission

            def held_check(raws, ids):  # type: ignore[no-untyped-def]
                out = check(raws, ids)  # not committed yet
                checked.set()
                release.wait(30)  # its block commits meanwhile
                return out

            follower._check_admission = held_check  # type: ignore[method-assign]
            copy = asyncio.ensure_future(follower.submit_many([raw], wait=False))
            await wait_until(checked.is_set)
            (height,) = (await leader.submit_many([raw], wait=True)).heights
            await wait_until(lambda: follower.ledger.height >= height)
            release.set()
            await copy
            assert txid not in follower._mempool and txid not in follower._forwarded
            assert (follower._held_bytes, follower._queued) == (0, 0)

    asyncio.run(main())


class _OtherEvidence(Contract):
    """``evidence`` as another version of the code might run it: it stores another record."""

    name = "evidence"

    @method
    def put(self, ctx, key: str, digest: bytes) -> None:
        ctx.put(key, digest)


@pytest.mark.parametrize("traffic", ["another block", "none"])
def test_a_node_whose_chain_leaves_the_clusters_stops(tmp_path, traffic):
    # Each proposal names the leader's head when it cut the block: a follower that applied a
    # block differently (here its evidence contract writes other records) stops at the next one.
    # Regression: on an idle chain there was no next one, and it served its state meanwhile; an
    # idle leader now names its head in an entry of its own.
    async def main() -> None:
        kp = signing.generate("ed25519")
        async with running_all(make_configs(tmp_path, 3)) as nodes:
            await wait_until(lambda: leader_known(nodes))
            leader = next(n for n in nodes if n.is_leader)
            odd, same = [n for n in nodes if not n.is_leader]
            odd.ledger.register(_OtherEvidence())
            _, first = await leader.submit(txs(kp, 1, 1)[0], wait=True)
            await wait_until(lambda: odd.ledger.height >= first)
            assert odd.ledger.header(first).hash != leader.ledger.header(first).hash
            if traffic == "another block":
                await leader.submit(txs(kp, 2, 1)[0], wait=True)  # cut once the leader had applied `first`
            await asyncio.wait_for(odd.failed.wait(), 10)
            assert odd.failure is not None and "DivergedError" in odd.failure
            assert f"block {first} here is {odd.ledger.header(first).hash.hex()}, but the leader's" in odd.failure
            await wait_until(lambda: same.ledger.height == leader.ledger.height)
            assert not same.failed.is_set() and not leader.failed.is_set()
            assert leader.ledger.height == first + (traffic == "another block")  # a head named is no block

    asyncio.run(main())


class Invoices(Contract):
    """A chain's own contract: a fiscal e-invoice is reimbursed once."""

    name = "invoices"

    @method
    def reimburse(self, ctx, invoice: str) -> None:
        if ctx.get(invoice) is not None:
            raise ContractError(f"invoice {invoice} was reimbursed already")
        ctx.put(invoice, b"reimbursed")


def test_a_submitted_transaction_is_admitted_only_with_a_timestamp_near_the_nodes_clock(tmp_path):
    # Its timestamp was never checked: one signed long ago, or by a client whose clock was days
    # off, committed with that time for contracts and readers to trust.
    async def main() -> None:
        kp = signing.generate("ed25519")
        now = int(time.time() * 1000)

        def at(nonce: int, ms: int) -> bytes:
            return Transaction.create(kp, "evidence", "put", {"key": f"t/{nonce}", "digest": bytes(32)}, nonce, timestamp=ms).encode()

        (cfg,) = make_configs(tmp_path, 1, tx_time_window_ms=60_000)
        async with running(cfg) as node:
            await wait_until(lambda: node.is_leader)
            out = await node.submit_many([at(1, now - 3_600_000), at(2, now), at(3, now + 3_600_000), at(4, now + 50_000)], wait=True)
            assert sorted(out.rejected) == [0, 2] and out.heights is not None
            assert re.search(r"is -360[01] s from this node's clock; at most 60 s either way", out.rejected[0])
            assert re.search(r"is \+(3599|3600) s from this node's clock", out.rejected[2])
            assert out.heights[0] is None and out.heights[2] is None and out.heights[1] and out.heights[3]
            assert node.ledger.get("evidence", "t/1") is None and node.ledger.get("evidence", "t/2") is not None
            with pytest.raises(TimestampOutOfWindowError, match="is -360[01] s") as refused:
                await node.submit_one(at(5, now - 3_600_000), wait=False)
            assert isinstance(refused.value, ValueError)
            all_late = await node.submit_many([at(6, 0)], wait=True)
            assert list(all_late.rejected) == [0] and all_late.heights == [None]

    asyncio.run(main())


def test_every_node_runs_the_contracts_its_config_names(tmp_path):
    # Nodes ran the built-in contracts only: a chain's own could not be used in a cluster.
    async def main() -> None:
        kp = signing.generate("ed25519")
        claims = [Transaction.create(kp, "invoices", "reimburse", {"invoice": "fp/0451"}, n).encode() for n in (1, 2)]
        async with running_all(make_configs(tmp_path, 3, contracts=["test_node:Invoices"])) as nodes:
            await wait_until(lambda: leader_known(nodes))
            follower = next(n for n in nodes if not n.is_leader)
            first = await follower.submit_many(claims[:1], wait=True)
            second = await follower.submit_many(claims[1:], wait=True)
            assert first.failed == {} and second.failed == {0: "invoice fp/0451 was reimbursed already"}
            await wait_until(lambda: same_chain(nodes))
            for n in nodes:
                assert n.ledger.get("invoices", "fp/0451") == b"reimbursed"
                assert not n.ledger.tx(second.txids[0]).receipt.ok

    asyncio.run(main())


def test_a_new_leader_does_not_count_a_head_named_before_it_as_a_block_in_flight(tmp_path):
    # Regression (a review of the idle leader's head entries): a new leader counted the entries
    # past its ledger's head as blocks in flight, and a head entry applies no block: it counted
    # for good, and with max_inflight_blocks=1 no leader ever cut a block again.
    async def main() -> None:
        kp = signing.generate("ed25519")
        nodes = [Node(c) for c in make_configs(tmp_path, 3, max_inflight_blocks=1)]
        try:
            for n in nodes:
                await n.start()
            await wait_until(lambda: leader_known(nodes))
            first = next(n for n in nodes if n.is_leader)
            _, height = await first.submit(txs(kp, 1, 1)[0], wait=True)
            await wait_until(lambda: first._head_named == height and not first._proposed_blocks)
            live = [n for n in nodes if n is not first]
            await wait_until(lambda: all(n._handled == first._handled for n in live))
            await first.stop()
            await wait_until(lambda: leader_known(live))
            leader = next(n for n in live if n.is_leader)
            # It names its own head once (in flight until applied); the old entry never counted.
            await wait_until(lambda: leader._proposed_blocks == 0, timeout=5)
            _, second = await asyncio.wait_for(leader.submit(txs(kp, 2, 1)[0], wait=True), 10)
            assert second == height + 1
        finally:
            for n in nodes:
                await n.stop()

    asyncio.run(main())


def test_a_read_barrier_on_a_follower_waits_until_it_applied_what_the_leader_committed(tmp_path):
    async def main() -> None:
        async with running_all(make_configs(tmp_path, 3)) as nodes:
            await wait_until(lambda: leader_known(nodes))
            leader = next(n for n in nodes if n.is_leader)
            follower = next(n for n in nodes if not n.is_leader)
            kp = signing.generate("ed25519")
            await follower.read_barrier()  # nothing committed yet: at once
            # The follower's ledger stalls (a slow disk): its write lock is held here.
            follower.ledger._write_lock.acquire()
            try:
                _, height = await leader.submit(txs(kp, 1, 1)[0], wait=True)
                barrier = asyncio.create_task(follower.read_barrier())
                await asyncio.sleep(0.5)
                assert height is not None and not barrier.done() and follower.ledger.height < height
            finally:
                follower.ledger._write_lock.release()
            await barrier
            assert follower.ledger.height >= height and follower.ledger.get("evidence", "k/1") is not None

    asyncio.run(main())


def test_without_a_leader_reads_and_submissions_are_not_ready(tmp_path):
    async def main() -> None:
        cfgs = make_configs(tmp_path, 3)
        async with running(cfgs[0]) as alone:  # its peers never start: no leader
            with pytest.raises(NotReadyError, match="no linearizable read now: .*no leader"):
                await alone.read_barrier()
            # Nor are transactions admitted: nothing would commit them (503, not 202 then a 504).
            with pytest.raises(NotReadyError, match="no leader known"):
                await alone.submit(txs(signing.generate("ed25519"), 1, 1)[0], wait=False)
        async with running_all(cfgs) as nodes:
            await wait_until(lambda: leader_known(nodes))
            leader = next(n for n in nodes if n.is_leader)
            follower = next(n for n in nodes if not n.is_leader)
            await leader.stop()  # the follower still names it leader until its election timeout
            with pytest.raises(NotReadyError, match="no linearizable read"):
                await follower.read_barrier(timeout=0.3)
            rest = [n for n in nodes if n is not leader]
            await wait_until(lambda: leader_known(rest))
            await follower.read_barrier()  # a new leader answers

    asyncio.run(main())


def test_a_raft_message_must_come_from_the_node_it_names(tmp_path):
    # The transport authenticates each peer by its certificate; a message naming another node as
    # its sender (a vote cast for someone else, a heartbeat "from" another leader) is dropped.
    async def main() -> None:
        async with running_all(make_configs(tmp_path, 3)) as nodes:
            await wait_until(lambda: leader_known(nodes))
            sender, target, named = nodes[1], nodes[0], nodes[2]
            term = target.raft.term

            def heartbeat_from(frm: Node) -> bytes:
                m = MsgHeartbeat(frm=frm.config.raft_id, to=target.config.raft_id, term=term + 5)
                return FRAME_RAFT + encode_message(m)

            sender.transport.send(target.config.id, heartbeat_from(named))  # spoofed
            await asyncio.sleep(0.5)
            assert target.raft.term == term
            # The same message under the sender's own name is stepped (a higher term: it follows).
            sender.transport.send(target.config.id, heartbeat_from(sender))
            await wait_until(lambda: target.raft.term >= term + 5)

    asyncio.run(main())


def test_a_raft_message_no_correct_peer_sends_is_dropped_and_the_node_goes_on(tmp_path, caplog):
    # A heartbeat committing past the follower's log raised out of the Raft loop and failed the
    # node; a term-0 one skipped the term checks. Both are dropped now, with a warning.
    async def main() -> None:
        async with running_all(make_configs(tmp_path, 3)) as nodes:
            await wait_until(lambda: leader_known(nodes))
            leader = next(n for n in nodes if n.is_leader)
            follower = next(n for n in nodes if not n.is_leader)
            term, last = follower.raft.term, follower.raft.log.last_index()
            for bad in (MsgHeartbeat(frm=leader.config.raft_id, to=follower.config.raft_id, term=term, commit=last + 100),
                        MsgHeartbeat(frm=leader.config.raft_id, to=follower.config.raft_id, term=0, commit=last)):  # fmt: skip
                leader.transport.send(follower.config.id, FRAME_RAFT + encode_message(bad))
            await wait_until(lambda: caplog.text.count("dropped a raft message") >= 2)
            assert "commits" in caplog.text and "carries no term" in caplog.text
            assert follower.failure is None and follower.raft.term == term
            _, height = await leader.submit(txs(signing.generate("ed25519"), 1, 1)[0], wait=True)
            assert height is not None
            await wait_until(lambda: follower.ledger.height >= height)

    asyncio.run(main())


def test_a_peers_proposal_junk_snapshot_or_term_near_2_64_is_dropped_and_the_cluster_goes_on(tmp_path, caplog):
    # Each came from one peer holding a valid node certificate, and each stopped nodes: the leader
    # appended a peer's proposal as it was (a forged "head" made every node stop with
    # DivergedError); a snapshot whose data did not decode was persisted, then stopped the node
    # on every start; a term of 2**64 - 1 was adopted and overflowed at the next election.
    async def main() -> None:
        async with running_all(make_configs(tmp_path, 3)) as nodes:
            await wait_until(lambda: leader_known(nodes))
            leader = next(n for n in nodes if n.is_leader)
            peer, follower = (n for n in nodes if n is not leader)
            term = leader.raft.term
            forged = encode_value({"ts": 1, "txs": [], "head": [0, bytes(32)]})
            for target, bad in [
                (leader, MsgProp(frm=peer.config.raft_id, to=leader.config.raft_id, term=term, entries=(Entry(0, 0, EntryType.NORMAL, forged),))),
                (follower, MsgSnap(frm=peer.config.raft_id, to=follower.config.raft_id, term=term,
                                   snapshot=Snapshot(10**6, term, ConfState((1, 2, 3), ()), b"\xff\xfe junk"))),
                (follower, MsgHeartbeat(frm=peer.config.raft_id, to=follower.config.raft_id, term=1)),
            ]:  # fmt: skip
                wire = encode_message(bad)
                if isinstance(bad, MsgHeartbeat):  # the term, bytes 18-25 of the header: no encoder writes 2**64 - 1
                    wire = wire[:18] + (2**64 - 1).to_bytes(8, "big") + wire[26:]
                peer.transport.send(target.config.id, FRAME_RAFT + wire)
            await wait_until(lambda: "snapshot data does not decode" in caplog.text and "past the highest" in caplog.text
                             and "nodes forward transactions, not entries" in caplog.text)  # fmt: skip
            assert all(n.failure is None for n in nodes) and max(n.raft.term for n in nodes) < 2**32
            _, height = await leader.submit(txs(signing.generate("ed25519"), 1, 1)[0], wait=True)
            assert height is not None
            await wait_until(lambda: all(n.ledger.height >= height for n in nodes))
            assert all(n.ledger.header(1).timestamp != 1 for n in nodes)  # no forged block went in

    asyncio.run(main())


def test_a_peers_flood_of_bad_frames_is_logged_in_part(tmp_path, caplog):
    # One warning per frame: 10 MB of empty frames from one peer made 246 MB of log.
    async def main() -> None:
        async with running_all(make_configs(tmp_path, 3)) as nodes:
            await wait_until(lambda: leader_known(nodes))
            peer, target = nodes[0], nodes[1]
            for _ in range(2000):
                peer.transport.send(target.config.id, b"?")
            await wait_until(lambda: caplog.text.count("frame of unknown kind") >= 20)
            await asyncio.sleep(1.5)
            peer.transport.send(target.config.id, b"?")  # the next one logged says how many were not
            await wait_until(lambda: "warning(s) about node1's frames were not logged" in caplog.text)
            logged = caplog.text.count("frame of unknown kind")
            assert 21 <= logged <= 30, logged  # the burst, then about one a second
            assert target.failure is None

    asyncio.run(main())


def test_peer_warnings_allow_a_burst_then_one_per_interval() -> None:
    logger = logging.getLogger("test_peer_warnings")
    now = [0.0]
    warnings = PeerWarnings(logger, burst=3, interval=1.0, clock=lambda: now[0])
    with _capture(logger) as lines:
        for _ in range(10):
            warnings.warn("a", "bad frame from %s", "a")
        warnings.warn("b", "bad frame from %s", "b")  # another peer has its own allowance
        now[0] = 2.5
        warnings.warn("a", "bad frame from %s", "a")
        warnings.warn("a", "bad frame from %s", "a")
        warnings.warn("a", "bad frame from %s", "a")
    assert lines == ["bad frame from a"] * 3 + ["bad frame from b"] + [
        "bad frame from a (7 more warning(s) about a's frames were not logged)", "bad frame from a"
    ]


@contextlib.contextmanager
def _capture(logger: logging.Logger):  # type: ignore[no-untyped-def]
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Keep()
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


def test_a_sync_answer_holds_as_many_blocks_as_fit_one_frame_and_at_least_one(tmp_path, monkeypatch):
    async def main() -> None:
        (cfg,) = make_configs(tmp_path, 1)
        async with running(cfg) as node:
            await wait_until(lambda: node.is_leader)
            kp = signing.generate("ed25519")
            for n in range(1, 4):
                await node.submit(txs(kp, n, 1)[0], wait=True)
            top = node.ledger.height
            whole = [encode_block(node.ledger.header(h), node.ledger.block(h).raws) for h in range(1, top + 1)]
            assert node._block_bodies(1, top) == whole
            monkeypatch.setattr(node_module, "_FRAME_PAYLOAD", len(whole[0]) + len(whole[1]))
            assert node._block_bodies(1, top) == whole[:2]
            monkeypatch.setattr(node_module, "_FRAME_PAYLOAD", 1)
            assert node._block_bodies(2, top) == whole[1:2]
            assert node._block_bodies(top + 1, top) == []

    asyncio.run(main())


def test_a_raft_log_sync_cancelled_midway_holds_the_raft_lock_until_its_fsync_ends(tmp_path):
    # Regression: a read barrier's timeout (or stop()) cancelled the await of the fsync thread and
    # released the Raft lock while the thread went on; the Raft loop could then start a second
    # sync beside it, which marked entries appended meanwhile durable without writing them.
    async def main() -> None:
        (cfg,) = make_configs(tmp_path, 1)
        async with running(cfg) as node:
            await wait_until(lambda: node.is_leader)
            sync, started, ended = node.storage.sync, threading.Event(), threading.Event()

            def slow_sync() -> None:  # a busy disk
                started.set()
                time.sleep(0.3)
                sync()
                ended.set()

            node.storage.sync = slow_sync  # type: ignore[method-assign]

            async def locked_sync() -> None:
                async with node._lock:
                    await node._sync()

            task = asyncio.create_task(locked_sync())
            await wait_until(started.is_set)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert ended.is_set() and not node._lock.locked()
            node.storage.sync = sync  # type: ignore[method-assign]
            kp = signing.generate("ed25519")
            assert (await node.submit(txs(kp, 1, 1)[0], wait=True))[1] is not None

    asyncio.run(main())


def test_catching_up_to_a_snapshot_checks_the_block_hash_it_names(tmp_path):
    # A snapshot fixes the block at its height by hash: a node whose chain reaches that height with
    # another block (a peer served another history) must stop instead of taking part.
    async def main() -> None:
        (cfg,) = make_configs(tmp_path, 1)
        async with running(cfg) as node:
            await wait_until(lambda: node.is_leader)
            kp = signing.generate("ed25519")
            _, height = await node.submit(txs(kp, 1, 1)[0], wait=True)
            assert height is not None
            head = node.ledger.header(height)
            await node._catch_up(height, head.hash)  # the same chain: nothing to do
            with pytest.raises(DivergedError, match=f"block {height} here is {head.hash.hex()}, but the cluster"):
                await node._catch_up(height, bytes(32))

    asyncio.run(main())


def test_a_peer_block_that_does_not_follow_this_chain_is_not_written(tmp_path):
    # Catching up, each fetched block must re-execute on this node's head to the header the peer
    # served: a block of another history stops the node before anything of it is written.
    async def main() -> None:
        cfg = make_configs(tmp_path / "c", 2)[0]  # its peer node2 is not started: its answer is queued here
        kp = signing.generate("ed25519")
        with Ledger.open(tmp_path / "fork", chain_id=cfg.chain_id) as fork:
            for b in range(1, 4):
                fork.apply_block(txs(kp, b, 1), timestamp=b)
            answer = [encode_block(fork.header(h), fork.block(h).raws) for h in range(1, 4)]
            async with running(cfg) as node:
                node.ledger.apply_block(txs(kp, 100, 1), consensus=consensus_data(1, 2))  # a block of its own
                height, head = node.ledger.height, node.ledger.head
                await node._sync_inbox.put(("node2", answer[height:]))  # a peer's answer from the next height on
                with pytest.raises(DivergedError, match=f"node2: its chain and this node's differ: .*prev_hash {head.hash.hex()} here, "):
                    await node._catch_up(fork.height, fork.head.hash)
                assert node.ledger.height == height and node.ledger.head == head

    asyncio.run(main())


def _chain_answer(path: Path, chain_id: str, kp: signing.KeyPair, *, damaged: bool = False) -> tuple[list[bytes], bytes]:
    """Three blocks of a chain built apart, as a peer serves them (encoded blocks), and its head
    hash. ``damaged``: each header with another state root, as a peer whose store is damaged
    would serve them."""
    with Ledger.open(path, chain_id=chain_id) as led:
        for b in range(3):
            led.apply_block(txs(kp, b + 1, 1), timestamp=b + 1)
        headers = [led.header(h) for h in range(1, 4)]
        if damaged:
            headers = [dataclasses.replace(h, state_root=bytes(32)) for h in headers]
        return [encode_block(h, led.block(h.height).raws) for h in headers], led.head.hash


def test_catching_up_asks_another_peer_when_one_serves_a_block_that_does_not_follow(tmp_path, caplog):
    # One peer serving another history (its store damaged, another version of the code) must not
    # stop a node that catches up while another peer serves the cluster's chain.
    async def main() -> None:
        cfg = make_configs(tmp_path / "c", 3)[0]  # its peers are not started: answers are queued here
        kp = signing.generate("ed25519")
        chain, head = _chain_answer(tmp_path / "chain", cfg.chain_id, kp)
        damaged, _ = _chain_answer(tmp_path / "damaged", cfg.chain_id, kp, damaged=True)
        async with running(cfg) as node:
            await node._sync_inbox.put(("node2", damaged))
            await node._sync_inbox.put(("node3", chain))
            await node._sync_inbox.put(("node2", damaged))  # a refused peer's later answer is ignored
            await node._catch_up(3, head)
            assert node.ledger.height == 3 and node.ledger.head.hash == head
        assert "node2's answer refused: its chain and this node's differ" in caplog.text

    asyncio.run(main())


def test_catching_up_reads_no_answer_from_a_peer_it_did_not_ask(tmp_path):
    # Regression: any peer's blocks were applied while a node caught up, asked or not: a peer
    # sending a chain of its own making first (self-consistent, so each block re-executed to its
    # header) had it written, and the node then stopped for good on the snapshot's hash.
    async def main() -> None:
        cfg = make_configs(tmp_path / "c", 3)[0]  # its peers are not started: answers are queued here
        made_up, _ = _chain_answer(tmp_path / "made_up", cfg.chain_id, signing.generate("ed25519"))
        chain, head = _chain_answer(tmp_path / "chain", cfg.chain_id, signing.generate("ed25519"))
        async with running(cfg) as node:
            await node._sync_inbox.put(("node3", made_up))  # node2 is asked first: node3 was not
            await node._sync_inbox.put(("node2", chain))
            await node._catch_up(3, head)
            assert node.ledger.height == 3 and node.ledger.head.hash == head and not node.failed.is_set()

    asyncio.run(main())


def test_catching_up_refuses_a_peer_whose_block_holds_a_forged_or_undecodable_transaction(tmp_path, caplog):
    # Regression: such a block raised out of the catch-up (InvalidSignatureError, DecodeError) and
    # stopped the node, instead of refusing the peer and asking another.
    async def main(n: int, bad: bytes) -> None:
        cfg = make_configs(tmp_path / f"c{n}", 3)[0]
        chain, head = _chain_answer(tmp_path / f"chain{n}", cfg.chain_id, signing.generate("ed25519"))
        header, _ = decode_block(chain[1])
        async with running(cfg) as node:
            await node._sync_inbox.put(("node2", [chain[0], encode_block(header, [bad]), chain[2]]))
            await node._sync_inbox.put(("node3", chain))
            await node._catch_up(3, head)
            assert node.ledger.height == 3 and node.ledger.head.hash == head and not node.failed.is_set()

    forged = bytearray(txs(signing.generate("ed25519"), 1, 1)[0])
    forged[-3] ^= 1  # in the signature
    for n, (bad, error) in enumerate([(bytes(forged), "InvalidSignatureError"), (b"not a transaction", "DecodeError")]):
        asyncio.run(main(n, bad))
        assert f"node2's answer refused: its block 2 is invalid: {error}" in caplog.text


def test_catching_up_stops_when_no_peer_serves_a_block_that_follows(tmp_path):
    async def main() -> None:
        cfg = make_configs(tmp_path / "c", 3)[0]
        kp = signing.generate("ed25519")
        damaged, head = _chain_answer(tmp_path / "damaged", cfg.chain_id, kp, damaged=True)
        async with running(cfg) as node:
            await node._sync_inbox.put(("node2", damaged))  # node2 is asked first, then node3
            await node._sync_inbox.put(("node3", [b"not a block"]))
            with pytest.raises(DivergedError, match=(
                "no peer serves a block 1 that follows this node's chain: node2: its chain and this node's "
                "differ: .*state_root.*; node3: its answer holds a block that does not decode: "
            )):  # fmt: skip
                await node._catch_up(3, head)
            assert node.ledger.height == 0

    asyncio.run(main())


def test_a_node_stops_though_its_cut_loop_is_woken_as_it_is_cancelled(tmp_path):
    # Regression: asyncio.wait_for (before Python 3.12) returns the awaited result, swallowing the
    # cancellation, when both come in one turn of the loop: a follower's forward woke its cut loop
    # just as the node stopped, the loop ran on, and stop() waited for it for ever.
    async def main() -> None:
        (cfg,) = make_configs(tmp_path, 1)
        node = Node(cfg)
        await node.start()
        await asyncio.sleep(0.1)  # the cut loop waits to be woken
        node._cut_wake.set()
        await asyncio.wait_for(node.stop(), 10)

    asyncio.run(main())


def test_a_ledger_rebuilt_on_a_chain_made_before_receipts_roots_rejoins_it(tmp_path):
    # Found by a review: a node whose ledger was lost (a replaced disk; its Raft log kept, as Raft
    # needs) made a genesis with a receipts root, and a chain made before them has none: its
    # blocks never followed, and the node stopped (DivergedError). A config written then has no
    # receipts_roots: it reads false.
    async def main() -> None:
        layout = init_cluster(tmp_path, 3, base_port=free_base_port(6), settings={"block_ms": 10, "tick_ms": 10})
        for path in layout.config_paths:  # as init-cluster wrote them before
            d = json.loads(path.read_text())
            del d["receipts_roots"]
            path.write_text(json.dumps(d))
        cfgs = [NodeConfig.load(p) for p in layout.config_paths]
        assert not any(c.receipts_roots for c in cfgs)
        kp = signing.generate("ed25519")
        async with running_all(cfgs) as nodes:
            await wait_until(lambda: leader_known(nodes))
            await next(n for n in nodes if n.is_leader).submit_many(txs(kp, 1, 20), wait=True)
            assert all(n.ledger.header(h).encode()[0] == 1 for n in nodes for h in range(n.ledger.height + 1))
            wiped = next(i for i, n in enumerate(nodes) if not n.is_leader)
            await nodes[wiped].stop()
            shutil.rmtree(cfgs[wiped].data_dir / "ledger")
            nodes[wiped] = Node(cfgs[wiped])
            await nodes[wiped].start()
            await wait_until(lambda: same_chain(nodes), timeout=30)
            assert not nodes[wiped].failed.is_set() and nodes[wiped].ledger.get("evidence", "k/20") is not None
        # A config that says otherwise than the store is refused, naming it.
        with pytest.raises(ChainMismatchError, match="has no receipts roots .* receipts_roots=True asked otherwise"):
            async with running(dataclasses.replace(cfgs[0], receipts_roots=True)):
                pass

    asyncio.run(main())


def test_a_leader_asked_to_stop_hands_leadership_over_without_an_election_timeout(tmp_path):
    # Found by an operator hunt: a leader stopped by SIGTERM left like a killed one, and the
    # others waited out an election timeout (0.6-1.0 s) before anything committed again.
    async def main() -> None:
        kp = signing.generate("ed25519")
        # An election timeout of 5 s: only a handed-over leadership comes within it.
        async with running_all(make_configs(tmp_path, 3, tick_ms=100, election_ticks=50)) as nodes:
            await wait_until(lambda: leader_known(nodes), timeout=30)
            leader = next(n for n in nodes if n.is_leader)
            await leader.submit(txs(kp, 1, 1)[0], wait=True)
            assert not await next(n for n in nodes if not n.is_leader).hand_over()  # only a leader hands over
            term, t0 = leader.raft.term, time.monotonic()
            assert await leader.hand_over()
            others = [n for n in nodes if n is not leader]
            await wait_until(lambda: leader_known(nodes) and any(n.is_leader for n in others), timeout=3)
            assert time.monotonic() - t0 < 3 and next(n for n in others if n.is_leader).raft.term == term + 1
            await leader.stop()
            _, height = await asyncio.wait_for(next(n for n in others if n.is_leader).submit(txs(kp, 2, 1)[0], wait=True), 3)
            assert height is not None

    asyncio.run(main())


def test_a_nodes_data_directory_is_its_own_to_read(tmp_path, caplog):
    # Regression: it was made 0755 (the ledger files 0644): any user of the host could read it.
    # One an earlier version made kept 0755; it is made private at start, saying so.
    async def main() -> None:
        (cfg,) = make_configs(tmp_path, 1)
        async with running(cfg):
            assert cfg.data_dir.stat().st_mode & 0o777 == 0o700
        cfg.data_dir.chmod(0o755)
        async with running(cfg):
            assert cfg.data_dir.stat().st_mode & 0o777 == 0o700
        assert "was readable by others (755): made 700" in caplog.text

    asyncio.run(main())


def test_an_answer_of_blocks_that_is_not_a_list_of_byte_strings_is_dropped(tmp_path, caplog):
    async def main() -> None:
        (cfg,) = make_configs(tmp_path, 1)
        async with running(cfg) as node:
            for nonsense in (7, [1, 2], {"a": b"b"}):
                await node._handle("node2", FRAME_SYNC_BLOCKS + encode_value(nonsense))
            await node._handle("node2", FRAME_SYNC_BLOCKS + b"\xff")
            assert caplog.text.count("bad b'B' frame from node2") == 4
            # Blocks nobody asked for (the node is not catching up) are not held either.
            await node._handle("node2", FRAME_SYNC_BLOCKS + encode_value([b"block"]))
            assert node._sync_inbox.empty() and not node.failed.is_set()

    asyncio.run(main())


def test_client_api_connections_that_send_nothing_half_a_head_or_a_slow_body_are_closed(tmp_path, monkeypatch):
    # Regression: each stayed open for as long as the client liked (over 100 s in a run), each
    # holding a file descriptor of the node's.
    monkeypatch.setattr(http, "IDLE_S", 0.5)
    monkeypatch.setattr(http, "BODY_S", 0.5)
    sends = {
        "nothing": b"",
        "half a head": b"GET /status HTTP/1.1\r\nHost: x\r\n",
        "a slow body": b"POST /tx HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab",
    }

    async def main() -> None:
        layout = init_cluster(tmp_path, 1, base_port=free_base_port(2), settings={"block_ms": 10, "tick_ms": 10})
        cfg = layout.configs[0]
        async with running(cfg) as node:
            runner = await http.serve(node)
            try:
                tls = layout.client_tls.client_context()
                answers = {}
                for what, data in sends.items():
                    reader, writer = await asyncio.open_connection(cfg.client_host, cfg.client_port, ssl=tls, server_hostname=cfg.id)
                    writer.write(data)
                    answers[what] = (reader, writer)
                for what, (reader, writer) in answers.items():
                    got = await asyncio.wait_for(reader.read(), 20)  # EOF: the node closed it
                    writer.close()
                    if what == "a slow body":
                        assert got.startswith(b"HTTP/1.1 408 ") and b'{"error": "the request body did not arrive within 0.5 s"}' in got
                    else:
                        assert got == b"", what
            finally:
                await runner.cleanup()

    asyncio.run(main())


@contextlib.asynccontextmanager
async def client_api(tmp_path: Path) -> AsyncIterator[tuple[NodeConfig, ssl.SSLContext]]:
    """A one-node cluster serving its client API: its config and a client's TLS context."""
    layout = init_cluster(tmp_path, 1, base_port=free_base_port(2), settings={"block_ms": 10, "tick_ms": 10})
    cfg = layout.configs[0]
    async with running(cfg) as node:
        runner = await http.serve(node)
        try:
            yield cfg, layout.client_tls.client_context()
        finally:
            await runner.cleanup()


async def _connect(cfg: NodeConfig, tls: ssl.SSLContext) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(cfg.client_host, cfg.client_port, ssl=tls, server_hostname=cfg.id)


async def _status_on(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> bytes:
    """One ``GET /status`` on a kept connection: the answer's status line, or b"" if the node
    closed the connection."""
    reader, writer = conn
    try:
        writer.write(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        return b""
    length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")).split(b":")[1])
    await reader.readexactly(length)
    return head.split(b"\r\n")[0]


async def _closed(reader: asyncio.StreamReader) -> bool:
    """Whether the node closed the connection (EOF, or a reset) within a few seconds."""
    try:
        return await asyncio.wait_for(reader.read(), 5) == b""
    except (ConnectionError, ssl.SSLError):
        return True
    except asyncio.TimeoutError:
        return False


def test_client_api_connections_over_the_bound_close_the_one_idle_longest(tmp_path, monkeypatch, caplog):
    # Regression: connections were not bounded, each kept IDLE_S: one client opening ~1000 used up
    # the node's file descriptors (a limit of 1024), and no other client could connect.
    monkeypatch.setattr(http, "MAX_CONNECTIONS", 4)

    async def main() -> None:
        async with client_api(tmp_path) as (cfg, tls):
            # The oldest connection is in a request (a body on its way): busy, not idle.
            busy = await _connect(cfg, tls)
            busy[1].write(b"POST /tx HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n")
            assert await asyncio.wait_for(busy[0].readuntil(b"\r\n\r\n"), 10) == b"HTTP/1.1 100 Continue\r\n\r\n"
            busy[1].write(b"ab")
            idle = []
            for _ in range(3):
                idle.append(await _connect(cfg, tls))
                assert await _status_on(idle[-1]) == b"HTTP/1.1 200 OK"
            # A fifth closes the one idle longest: neither the busy one, older, nor the new one.
            newer = await _connect(cfg, tls)
            assert await _closed(idle[0][0])
            assert await _status_on(newer) == b"HTTP/1.1 200 OK"
            for conn in idle[1:]:
                assert await _status_on(conn) == b"HTTP/1.1 200 OK"
            busy[1].write(b"cdefghij")
            answer = await asyncio.wait_for(busy[0].readuntil(b"}"), 10)  # its request answered (not a transaction)
            assert answer.startswith(b"HTTP/1.1 ") and b'{"error": ' in answer
            # A client opening connection after connection holds no more than the bound: each new
            # one closes an older one, and the newest are served.
            held = [busy, *idle[1:], newer]
            for _ in range(8):
                held.append(await _connect(cfg, tls))
                assert await _status_on(held[-1]) == b"HTTP/1.1 200 OK"
            for conn in held[:-4]:
                assert await _closed(conn[0])
            for conn in held[-4:]:
                assert await _status_on(conn) == b"HTTP/1.1 200 OK"
            for _, writer in [*held, idle[0]]:
                writer.close()

    with caplog.at_level(logging.WARNING, logger="ledgercore.node.http"):
        asyncio.run(main())
    # Logged at most once per EVICTION_LOG_S: a flood of connections is not a flood of lines.
    closed = [r.getMessage() for r in caplog.records if "connections open: closed" in r.getMessage()]
    assert len(closed) == 1 and closed[0].startswith("client API: 4 connections open: closed ("), closed


def test_client_api_accept_failures_are_logged_at_most_once_per_interval(tmp_path, monkeypatch, caplog):
    # Regression: out of file descriptors, the listener logged "accept failed: [Errno 24] Too many
    # open files" ten times a second.
    monkeypatch.setattr(tls_accept, "ACCEPT_LOG_S", 0.5)

    async def main() -> None:
        async with client_api(tmp_path) as (cfg, tls):
            loop = asyncio.get_running_loop()
            waiting = socket.socket()
            waiting.setblocking(False)
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            gc.collect()  # an earlier test's garbage closing its files later would make room
            in_use = len(os.listdir("/proc/self/fd")) - 1  # less the listing's own
            resource.setrlimit(resource.RLIMIT_NOFILE, (in_use, hard))  # the node's accept() now fails: EMFILE
            try:
                await loop.sock_connect(waiting, (cfg.client_host, cfg.client_port))  # in the backlog, not accepted
                await asyncio.sleep(1.6)  # some 15 failed accepts
            finally:
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            waiting.close()
            conn = await _connect(cfg, tls)
            assert await _status_on(conn) == b"HTTP/1.1 200 OK"
            conn[1].close()

    with caplog.at_level(logging.ERROR, logger="ledgercore.net.tls_accept"):
        asyncio.run(main())
    failed = [r.getMessage() for r in caplog.records if "accept failed" in r.getMessage()]
    assert 2 <= len(failed) <= 5, failed
    assert all("Too many open files" in m for m in failed), failed
    assert "more failed since the last logged)" in failed[-1], failed


def test_client_api_bodies_read_at_once_are_bounded_over_all_connections(tmp_path, monkeypatch):
    # Regression: each connection could hold a 32 MiB body it sent slowly (24 held 800 MB of the
    # node's memory), with nothing counting them beside the mempool's bound.
    monkeypatch.setattr(http, "MAX_BODIES_BYTES", 600_000)

    async def main() -> None:
        async with client_api(tmp_path) as (cfg, tls):
            slow = await _connect(cfg, tls)
            slow[1].write(b"POST /txs HTTP/1.1\r\nHost: x\r\nContent-Length: 500000\r\n\r\n" + bytes(450_000))
            # A head alone holds nothing: what announces a body it never sends keeps no one out.
            silent = await _connect(cfg, tls)
            silent[1].write(b"POST /txs HTTP/1.1\r\nHost: x\r\nContent-Length: 30000000\r\n\r\n")
            await asyncio.sleep(0.5)  # the slow body is being read: 450000 bytes counted
            reader, writer = await _connect(cfg, tls)
            writer.write(b"POST /txs HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n" + bytes(200_000))
            got = await asyncio.wait_for(reader.readuntil(b"}"), 10)
            writer.close()
            assert got.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1" in got, got
            assert b"bytes of request bodies" in got and b"more would pass its bound of 600000" in got, got
            # A chunked body (no length to count first) is refused once what arrived passes it.
            reader, writer = await _connect(cfg, tls)
            writer.write(b"POST /txs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            writer.write(b"%x\r\n%b\r\n" % (160_000, bytes(160_000)))
            got = await asyncio.wait_for(reader.readuntil(b"}"), 10)
            writer.close()
            assert got.startswith(b"HTTP/1.1 503 ") and b"more would pass its bound" in got, got
            # Once the slow client goes, its count goes with it: the same body is read (and refused
            # for what it holds, not for its size).
            slow[1].close()
            silent[1].close()
            for _ in range(50):
                reader, writer = await _connect(cfg, tls)
                writer.write(b"POST /txs HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n" + bytes(200_000))
                got = await asyncio.wait_for(reader.readuntil(b"}"), 10)
                writer.close()
                if not got.startswith(b"HTTP/1.1 503 "):
                    break
                await asyncio.sleep(0.1)
            assert got.startswith(b"HTTP/1.1 400 "), got

    asyncio.run(main())


def test_client_api_refuses_a_body_over_its_routes_limit_before_reading_it(tmp_path):
    # Regression: a chunked POST /tx (no Content-Length) was read up to the /txs limit, 32 MiB,
    # before its own 1.06 MiB applied; and Expect: 100-continue was answered "100 Continue" (send
    # the body) before the head was checked, so a client uploaded a body only to be refused.
    async def main() -> None:
        async with client_api(tmp_path) as (cfg, tls):
            reader, writer = await _connect(cfg, tls)
            writer.write(b"POST /tx HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            answer = asyncio.ensure_future(reader.readuntil(b"}"))
            chunk, sent = bytes(64 << 10), 0
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                while not answer.done() and sent < 48 << 20:
                    writer.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                    await writer.drain()
                    sent += len(chunk)
            got = await asyncio.wait_for(answer, 10)
            writer.close()
            assert got.startswith(b"HTTP/1.1 413 ") and b"Connection: close" in got, got
            assert got.endswith(b'{"error": "request body too large (limit %d bytes)"}' % http.MAX_BODY), got
            # Sent: the limit and what the loopback socket buffers hold (some 9 MiB here), not 32 MiB.
            assert sent < 20 << 20, sent

            for head, status, error in [
                (b"POST /tx HTTP/1.1\r\nContent-Length: 50000000\r\n", 413, b"request body too large (limit %d bytes)" % http.MAX_BODY),
                (b"POST /txs HTTP/1.1\r\nContent-Length: 100000000\r\n", 413, b"request body too large (limit %d bytes)" % http.MAX_BATCH_BODY),
                (b"POST /tx HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: 10\r\n", 415, b"Content-Encoding 'gzip' is not accepted"),
                (b"POST /tx?wiat=commit HTTP/1.1\r\nContent-Length: 10\r\n", 400, b"unknown query parameter 'wiat'"),
            ]:  # fmt: skip
                reader, writer = await _connect(cfg, tls)
                writer.write(head + b"Host: x\r\nExpect: 100-continue\r\n\r\n")
                got = await asyncio.wait_for(reader.readuntil(b"}"), 10)  # no 100 Continue first
                writer.close()
                assert got.startswith(b"HTTP/1.1 %d " % status) and b"application/json" in got and b"Connection: close" in got, got
                assert b'{"error": "' + error in got, got
            # Headers the route takes are still answered 100 Continue.
            reader, writer = await _connect(cfg, tls)
            writer.write(b"POST /tx?wait=commit HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n")
            assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10) == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.close()

    asyncio.run(main())


def _blocks_per_txid(node: Node) -> dict[bytes, list[int]]:
    seen: dict[bytes, list[int]] = {}
    for h in range(1, node.ledger.height + 1):
        for txid in node.ledger.block(h).txids:
            seen.setdefault(txid, []).append(h)
    return seen


def test_a_new_leader_neither_cuts_again_what_its_log_holds_nor_keeps_the_old_terms_bookkeeping(tmp_path):
    # Regression, found by killing and freezing real nodes: (1) a node that lost leadership kept
    # counting its proposed blocks and holding their transactions (the role was read after the
    # message that changed it), so once elected again with max_inflight_blocks counted, it never
    # proposed: the cluster admitted transactions and committed none. (2) A new leader cut again
    # transactions of blocks its log already held, unapplied: each went into two blocks, the
    # second copy failing as a replayed nonce.
    async def main() -> None:
        async with running_all(make_configs(tmp_path, 3)) as nodes:
            await wait_until(lambda: leader_known(nodes))
            leader = next(n for n in nodes if n.is_leader)
            heir = next(n for n in nodes if n is not leader)
            apply_task = next(t for t in heir._tasks if t.get_name() == f"{heir.config.id}-apply")
            apply_task.cancel()  # the heir's log takes the block; its ledger does not, yet
            await asyncio.gather(apply_task, return_exceptions=True)
            batch = txs(signing.generate("ed25519"), 1, 50)
            await heir.submit_many(batch, wait=False)  # forwarded to the leader, held by the heir
            await wait_until(lambda: leader.ledger.height >= 1 and heir.raft.log.committed > applied_index(heir.ledger.head.consensus))
            assert len(heir._mempool) == 50
            leader._proposed_blocks = 3  # as if its last blocks were in flight when it lost the lead
            async with leader._lock:
                leader.raft.transfer_leader(heir.config.raft_id)
                await leader._drain()
            await wait_until(lambda: heir.is_leader and not leader.is_leader)
            assert leader._proposed_blocks == 0 and not leader._proposed  # handed back when it stepped down
            assert heir._proposed_blocks >= 1 and not heir._mempool  # the block in its log is in flight
            heir._spawn(heir._apply_loop(), "apply")
            more = txs(signing.generate("ed25519"), 1000, 1)  # keys of their own: evidence anchors a key once
            _, height = await heir.submit(more[0], wait=True)
            await wait_until(lambda: all(n.ledger.height >= (height or 0) for n in nodes))
            for n in nodes:
                seen = _blocks_per_txid(n)
                assert all(len(hs) == 1 for hs in seen.values()), {t.hex()[:8]: hs for t, hs in seen.items() if len(hs) > 1}
                assert all(r.ok for h in range(1, n.ledger.height + 1) for r in n.ledger.block(h).receipts)

    asyncio.run(main())


def test_a_commit_wait_answers_each_transactions_receipt_failed_or_not(tmp_path):
    # Regression, found by a bug hunt: POST /tx?wait=commit (and /txs) answered 200 {"txid",
    # "height"} alike for a transaction that executed and one whose receipt failed (a replayed
    # nonce, an unknown contract or method, a key already anchored): a silent success, the caller
    # had to GET /tx to learn of it. Submitted to a follower (it forwards to the leader and waits
    # for its own apply) and to the leader, fresh and resubmitted once committed.
    from ledgercore.client import Client

    async def main() -> None:
        layout = init_cluster(tmp_path, 3, base_port=free_base_port(6), settings={"block_ms": 10, "tick_ms": 10})
        async with running_all(list(layout.configs)) as nodes:
            await wait_until(lambda: leader_known(nodes))
            follower = next(n for n in nodes if not n.is_leader)
            leader = next(n for n in nodes if n.is_leader)
            runners = [await http.serve(n) for n in (follower, leader)]
            tls = layout.client_tls.client_context()
            via_follower, via_leader = (Client(n.config.client_url, timeout=30, tls=tls) for n in (follower, leader))
            try:
                await _check_commit_wait_receipts(via_follower, via_leader)
            finally:
                via_follower.close()
                via_leader.close()
                for r in runners:
                    await r.cleanup()

    asyncio.run(main())


async def _check_commit_wait_receipts(via_follower, via_leader) -> None:  # type: ignore[no-untyped-def]
    kp = signing.generate("ed25519")

    def put(nonce: int, key: str, contract: str = "evidence", method: str = "put") -> Transaction:
        return Transaction.create(kp, contract, method, {"key": key, "digest": nonce.to_bytes(32, "big")}, nonce)

    async def submit(c, t: Transaction) -> dict:  # type: ignore[no-untyped-def]
        return await asyncio.to_thread(c.submit, t.encode(), wait=True)

    good = put(1, "w/1")
    failing = {
        "replayed nonce": (put(1, "w/2"), "replayed nonce 1"),
        "key already anchored": (put(2, "w/1"), "w/1"),
        "unknown contract": (put(3, "w/3", contract="nosuch"), "nosuch"),
        "unknown method": (put(4, "w/4", method="nosuch"), "nosuch"),
    }
    ok = await submit(via_follower, good)
    assert ok == {"txid": good.id.hex(), "height": ok["height"], "receipt": {"ok": True, "error": None}}
    answers = {}
    for what, (t, says) in failing.items():
        c = via_leader if what == "unknown method" else via_follower
        answers[what] = a = await submit(c, t)
        assert a["txid"] == t.id.hex() and isinstance(a["height"], int), what
        assert a["receipt"]["ok"] is False and says in a["receipt"]["error"], (what, a)
        stored = (await asyncio.to_thread(via_follower.tx, t.id, linearizable=True))["receipt"]
        assert a["receipt"] == {"ok": stored["ok"], "error": stored["error"]}, what
    # Committed before: answered at once with the original height, and its receipt (on either node).
    for c in (via_follower, via_leader):
        assert await submit(c, good) == ok
        for what, (t, _) in failing.items():
            assert await submit(c, t) == answers[what], what
    # A batch: receipts aligned with txids and heights, None where rejected; fresh and committed mixed.
    forged = bytearray(put(6, "w/6").encode())
    forged[-1] ^= 1
    batch = [put(5, "w/5"), failing["replayed nonce"][0], good, put(7, "w/1"), put(5, "w/8")]
    raws = [t.encode() for t in batch]
    raws.insert(2, bytes(forged))
    out = await asyncio.to_thread(via_follower.submit_many, raws, wait=True)
    assert out["txids"][:2] == [batch[0].id.hex(), batch[1].id.hex()] and len(out["txids"]) == 6
    assert [r["index"] for r in out["rejected"]] == [2]
    assert len(out["heights"]) == 6 and out["heights"][2] is None
    assert out["heights"][1] == answers["replayed nonce"]["height"] and out["heights"][3] == ok["height"]
    receipts = out["receipts"]
    assert receipts[0] == {"ok": True, "error": None} and receipts[3] == {"ok": True, "error": None}
    assert receipts[1] == answers["replayed nonce"]["receipt"] and receipts[2] is None
    assert receipts[4]["ok"] is False and "w/1" in receipts[4]["error"]
    assert receipts[5]["ok"] is False and "replayed nonce 5" in receipts[5]["error"]
    for txid, h, r in zip(out["txids"], out["heights"], receipts):
        if h is not None:
            stored = (await asyncio.to_thread(via_follower.tx, txid))["receipt"]
            assert r == {"ok": stored["ok"], "error": stored["error"]}
    # Not waiting: no heights, no receipts.
    quick = await asyncio.to_thread(via_follower.submit, put(9, "w/9").encode(), wait=False)
    assert set(quick) == {"txid"}
