"""Node.submit_many: many transactions admitted at once, one future per transaction."""

from __future__ import annotations

import asyncio

import pytest

from ledgercore import Transaction, signing
from ledgercore.bench.raft import make_configs
from ledgercore.errors import InvalidSignatureError
from ledgercore.node import Node


def test_submit_many_commits_each_and_reports_heights(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        cfgs = make_configs(tmp_path, 3, tick_ms=10, block_ms=10, suite="ed25519-blake3", chain_id="dev")
        nodes = [Node(c) for c in cfgs]
        for n in nodes:
            await n.start()
        try:
            while not any(n.is_leader for n in nodes):
                await asyncio.sleep(0.02)
            kp = signing.generate("ed25519")
            raws = [
                Transaction.create(kp, "evidence", "put", {"key": f"k/{i}", "digest": bytes(32)}, i, chain_id="dev").encode()
                for i in range(1, 201)
            ]
            follower = next(n for n in nodes if not n.is_leader)
            pairs = follower.submit_many(raws)
            heights = await asyncio.wait_for(asyncio.gather(*(f for _, f in pairs)), 30)
            assert all(h >= 1 for h in heights)
            for (txid, _), h in zip(pairs, heights):  # the node that answered has applied them
                assert follower.ledger.tx(txid).height == h
            # Already committed: the future is done at once, with the same height.
            again = follower.submit_many(raws[:3])
            assert [f.result() for _, f in again] == heights[:3]
            # A bad signature fails that transaction's future only.
            bad = bytearray(Transaction.create(kp, "evidence", "put", {"key": "x", "digest": bytes(32)}, 999, chain_id="dev").encode())
            bad[-1] ^= 1
            [(_, fut)] = follower.submit_many([bytes(bad)])
            with pytest.raises(InvalidSignatureError):
                await asyncio.wait_for(fut, 30)
        finally:
            for n in nodes:
                await n.stop()

    asyncio.run(main())
