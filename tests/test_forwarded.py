"""A follower's record of what it sent on to its leader: resends back off, a new leader gets all."""

from __future__ import annotations

from ledgercore.node.forwarded import Forwarded

A, B, C = b"a" * 32, b"b" * 32, b"c" * 32


def test_each_resend_waits_twice_as_long_as_the_one_before_up_to_the_cap():
    fwd = Forwarded(1.0, 8.0)
    fwd.sent([A, B], now=0.0)
    due_at = [t / 2 for t in range(0, 2 * 40) if fwd.due(t / 2)]
    # sent at 0; again after 1, 2, 4 and 8 s, then every 8 s.
    assert due_at == [1.0, 3.0, 7.0, 15.0, 23.0, 31.0, 39.0]
    assert len(fwd) == 2 and A in fwd and C not in fwd


def test_what_is_due_comes_out_whole_and_each_id_once():
    fwd = Forwarded(1.0, 8.0)
    fwd.sent([A], now=0.0)
    fwd.sent([B], now=0.5)
    assert fwd.due(1.0) == [A]
    assert fwd.due(1.5) == [B]
    fwd.sent([C], now=2.0)
    assert fwd.due(3.4) == [A, C]  # A's second wait (2 s) ended at 3.0, C's first (1 s) too
    assert fwd.due(3.5) == [B]
    assert fwd.due(3.5) == [] and len(fwd) == 3


def test_committed_ids_are_never_sent_again():
    fwd = Forwarded(1.0, 8.0)
    fwd.sent([A, B, C], now=0.0)
    assert fwd.due(1.0) == [A, B, C]
    fwd.discard({A: 5, C: 5})  # a block's ids, as the node settles them
    assert fwd.due(100.0) == [B]
    fwd.discard([B])
    assert not fwd and len(fwd) == 0 and fwd.due(1000.0) == []


def test_a_new_leader_gets_everything_at_once_oldest_first_and_the_backoff_starts_over():
    fwd = Forwarded(1.0, 8.0)
    fwd.sent([A], now=0.0)
    assert fwd.due(1.0) == [A] and fwd.due(3.0) == [A]  # A waits 4 s now
    fwd.sent([B], now=3.5)
    assert fwd.restart(4.0) == [A, B]
    assert fwd.due(4.5) == [] and fwd.due(5.0) == [A, B]
