"""One-line text forms of entries, messages and Readies (transcript tests, simulator traces)."""

from __future__ import annotations

from .messages import (
    ConfChangeType,
    ConfState,
    ConsensusError,
    Entry,
    EntryType,
    HardState,
    Message,
    MsgApp,
    MsgAppResp,
    MsgHeartbeat,
    MsgHeartbeatResp,
    MsgPreVote,
    MsgPreVoteResp,
    MsgProp,
    MsgReadIndex,
    MsgReadIndexResp,
    MsgSnap,
    MsgTransferLeader,
    MsgVote,
    MsgVoteResp,
    Snapshot,
    decode_conf_change,
)
from .raft import Ready

_CC_NAMES = {
    ConfChangeType.ADD_VOTER: "add",
    ConfChangeType.ADD_LEARNER: "add-learner",
    ConfChangeType.REMOVE: "remove",
}


def describe_bytes(data: bytes, limit: int = 32) -> str:
    """Printable ASCII in quotes, anything else as hex (truncated to ``limit`` bytes)."""
    if all(32 <= b < 127 and b != 34 for b in data):
        return '"' + data.decode("ascii") + '"'
    shown = data[:limit].hex()
    return "0x" + shown + ("..." if len(data) > limit else "")


def describe_entry(e: Entry) -> str:
    if e.type == EntryType.CONF_CHANGE:
        try:
            cc = decode_conf_change(e.data)
            body = f"{_CC_NAMES[cc.type]} {cc.node_id}"
        except ConsensusError:
            body = describe_bytes(e.data)
        return f"{e.term}/{e.index} EntryConfChange {body}"
    return f"{e.term}/{e.index} EntryNormal {describe_bytes(e.data)}"


def describe_entries(ents: list[Entry] | tuple[Entry, ...]) -> str:
    return "[" + ", ".join(describe_entry(e) for e in ents) + "]"


def describe_conf_state(cs: ConfState) -> str:
    return (
        "Voters:[" + " ".join(map(str, cs.voters)) + "] Learners:["
        + " ".join(map(str, cs.learners)) + "]"
    )


def describe_snapshot(s: Snapshot) -> str:
    return f"Index:{s.index} Term:{s.term} ConfState:{describe_conf_state(s.conf_state)}"


def describe_hard_state(hs: HardState) -> str:
    return f"HardState Term:{hs.term} Vote:{hs.vote} Commit:{hs.commit}"


def describe_message(m: Message) -> str:
    s = f"{m.frm}->{m.to} {type(m).__name__} Term:{m.term}"
    if isinstance(m, MsgApp):
        s += f" Log:{m.log_term}/{m.index} Commit:{m.commit}"
        if m.entries:
            s += " Entries:" + describe_entries(m.entries)
    elif isinstance(m, MsgAppResp):
        if m.reject:
            s += f" Log:{m.log_term}/{m.index} Rejected (Hint: {m.reject_hint})"
        else:
            s += f" Log:0/{m.index}"
    elif isinstance(m, (MsgVote, MsgPreVote)):
        s += f" Log:{m.log_term}/{m.index}"
        if m.transfer:
            s += " Transfer"
    elif isinstance(m, (MsgVoteResp, MsgPreVoteResp)):
        if m.reject:
            s += " Rejected"
    elif isinstance(m, MsgHeartbeat):
        s += f" Commit:{m.commit}"
        if m.read_seq:
            s += f" ReadSeq:{m.read_seq}"
    elif isinstance(m, MsgHeartbeatResp):
        if m.read_seq:
            s += f" ReadSeq:{m.read_seq}"
    elif isinstance(m, MsgSnap):
        s += " Snapshot: " + describe_snapshot(m.snapshot)
    elif isinstance(m, MsgProp):
        s += " Entries:" + describe_entries(m.entries)
    elif isinstance(m, MsgTransferLeader):
        s += f" Transferee:{m.transferee}"
    elif isinstance(m, MsgReadIndex):
        s += f" Context:{describe_bytes(m.context)}"
    elif isinstance(m, MsgReadIndexResp):
        s += f" Index:{m.index} Context:{describe_bytes(m.context)}"
    return s


def describe_ready(rd: Ready) -> list[str]:
    """The lines of a Ready, in the order the caller handles its parts."""
    out = [f"Ready MustSync={'true' if rd.must_sync else 'false'}:"]
    if rd.soft_state is not None:
        out.append(f"Lead:{rd.soft_state.lead} State:{rd.soft_state.state}")
    if rd.hard_state is not None:
        out.append(describe_hard_state(rd.hard_state))
    if rd.entries:
        out.append("Entries:")
        out.extend(describe_entry(e) for e in rd.entries)
    if rd.snapshot is not None:
        out.append("Snapshot " + describe_snapshot(rd.snapshot))
    if rd.committed_entries:
        out.append("CommittedEntries:")
        out.extend(describe_entry(e) for e in rd.committed_entries)
    if rd.messages:
        out.append("Messages:")
        out.extend(describe_message(m) for m in rd.messages)
    if rd.read_states:
        out.append("ReadStates:")
        out.extend(f"Index:{r.index} Context:{describe_bytes(r.context)}" for r in rd.read_states)
    return out
