"""When a Ready's messages may leave before its writes are durable.

Raft's rule is persist, then send: a message may promise what the write makes durable (a vote, an
acknowledged append). A leader is the exception (Raft thesis 10.2.1, etcd-raft's async storage
writes): its appends promise nothing about its own log, because :class:`~.raft.RaftNode` counts the
leader's entries towards a quorum only once they are persisted. So a leader whose term and vote are
already durable may send a Ready's appends while its own log write is in flight, and replication
overlaps the leader's fsync instead of following it.
"""

from __future__ import annotations

from .messages import HardState
from .raft import Ready


def may_send_before_persist(rd: Ready, is_leader: bool, durable: HardState) -> bool:
    """True when ``rd``'s messages may be sent before its writes are fsync'd: the node leads, the
    Ready installs no snapshot, and it changes neither term nor vote from the ``durable`` ones."""
    hs = rd.hard_state
    return (
        is_leader
        and rd.snapshot is None
        and (hs is None or (hs.term, hs.vote) == (durable.term, durable.vote))
    )
