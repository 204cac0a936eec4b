"""Consensus state machines. :mod:`.raft` is Raft in the etcd-io/raft shape: pure, driven by the
caller through ``step`` / ``tick`` / ``ready`` / ``advance``; :mod:`.messages` holds its data types
and wire codec; :mod:`.log` its log and storage."""

from .log import CompactedError, MemoryStorage, RaftLog, Storage, UnavailableError
from .messages import (
    ConfChange,
    ConfChangeType,
    ConfState,
    ConsensusError,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageDecodeError,
    Snapshot,
    decode_conf_change,
    decode_message,
    encode_conf_change,
    encode_message,
)
from .raft import (
    Config,
    ProgressState,
    ProposalDroppedError,
    RaftNode,
    ReadState,
    Ready,
    SoftState,
    StateType,
    Status,
)

__all__ = [
    "CompactedError",
    "ConfChange",
    "ConfChangeType",
    "ConfState",
    "Config",
    "ConsensusError",
    "Entry",
    "EntryType",
    "HardState",
    "MemoryStorage",
    "Message",
    "MessageDecodeError",
    "ProgressState",
    "ProposalDroppedError",
    "RaftLog",
    "RaftNode",
    "ReadState",
    "Ready",
    "Snapshot",
    "SoftState",
    "StateType",
    "Status",
    "Storage",
    "UnavailableError",
    "decode_conf_change",
    "decode_message",
    "encode_conf_change",
    "encode_message",
]
