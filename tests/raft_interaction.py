"""The interaction environment behind the Raft transcript tests (tests/testdata/raft/*.txt).

A transcript is a series of directives, each a command line, a ``----`` line and the expected
output, ended by a blank line. Lines starting with ``#`` between directives are comments. The
environment holds nodes (a RaftNode, its MemoryStorage and a list of applied entries) and one
queue of in-flight messages; every delivery round-trips the message through the wire codec.

Commands (ids are node ids; ``k=v`` options follow positional arguments):

  log-level none|debug|info|warn     which raft log lines are printed from now on; at none,
                                     only queries (raft-log, raft-state, status, applied) print
  add-nodes N [voters=(1,2,3)] [learners=(4)] [index=I] [prevote=b] [checkquorum=b]
            [max-size=B] [max-entries=K] [max-inflight=M] [election=E] [heartbeat=H]
            [forwarding=b] [seed=S]   N new nodes, with a bootstrap snapshot at I when voters given
  campaign ID | propose ID DATA | propose-conf-change ID add|add-learner|remove NODE
  read-index ID CTX | transfer-leadership from=ID to=ID
  process-ready ID...                handle one Ready of each node: persist, fsync, send, apply
  deliver-msgs [from=ID] ID...       step every queued message addressed to these nodes
  drop-msgs [from=ID] ID...          drop every queued message addressed to these nodes
  stabilize [ID...]                  process-ready and deliver-msgs until nothing moves
  tick ID [N] | tick-election ID | tick-heartbeat ID
  partition 1 2 / 3                  messages between the groups are dropped on delivery
  heal                               remove the partition
  compact ID INDEX                   snapshot the applied state at INDEX and compact the log
  restart ID                         crash (losing unsynced writes) and restart from storage
  raft-log ID | raft-state | status ID | applied ID
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ledgercore.consensus import (
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    EntryType,
    MemoryStorage,
    Message,
    ProposalDroppedError,
    RaftNode,
    StateType,
    decode_message,
    encode_message,
)
from ledgercore.consensus.describe import (
    describe_bytes,
    describe_entry,
    describe_message,
    describe_ready,
)

LEVELS = {"debug": 0, "info": 1, "warn": 2, "error": 3, "none": 4}
_LEVEL_OF = {"DEBUG": 0, "INFO": 1, "WARN": 2}
_QUERIES = {"raft-log", "raft-state", "status", "applied"}


@dataclass
class Directive:
    """One command of a transcript, with where it sits in the file."""

    comments: list[str]
    command: str
    expected: list[str]
    line: int


def parse_transcript(text: str) -> tuple[list[Directive], list[str]]:
    """The directives of a transcript, and the comment lines after the last one."""
    lines = text.split("\n")
    out: list[Directive] = []
    comments: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.startswith("#"):
            comments.append(line)
            i += 1
            continue
        start = i + 1
        if i + 1 >= len(lines) or lines[i + 1] != "----":
            raise ValueError(f"line {start}: command {line!r} is not followed by ----")
        i += 2
        expected = []
        while i < len(lines) and lines[i] != "":
            expected.append(lines[i])
            i += 1
        out.append(Directive(comments, line, expected, start))
        comments = []
    return out, comments


def render_transcript(directives: list[Directive], trailing: list[str], outputs: list[list[str]]) -> str:
    parts: list[str] = []
    for d, out in zip(directives, outputs):
        # One blank line ends each output; the comment block keeps its inner blank lines.
        comments = list(d.comments)
        while comments and not comments[0].strip():
            comments.pop(0)
        parts.extend(comments)
        parts.append(d.command)
        parts.append("----")
        parts.extend(out)
        parts.append("")
    parts.extend(c for c in trailing if c.strip())
    return "\n".join(parts).rstrip("\n") + "\n"


@dataclass
class TestNode:
    raft: RaftNode
    storage: MemoryStorage
    config: Config
    applied: list[str] = field(default_factory=list)


_LIST = re.compile(r"^\((.*)\)$")


def _parse_args(args: list[str]) -> tuple[list[str], dict[str, str]]:
    pos: list[str] = []
    kw: dict[str, str] = {}
    for a in args:
        if "=" in a:
            k, v = a.split("=", 1)
            kw[k] = v
        else:
            pos.append(a)
    return pos, kw


def _ids(v: str) -> list[int]:
    m = _LIST.match(v)
    body = m.group(1) if m else v
    return [int(x) for x in body.replace(",", " ").split()]


def _bool(v: str) -> bool:
    if v not in ("true", "false"):
        raise ValueError(f"{v!r} is not true or false")
    return v == "true"


class InteractionEnv:
    """Nodes, the message queue and the command handlers."""

    def __init__(self) -> None:
        self.nodes: dict[int, TestNode] = {}
        self.queue: list[Message] = []
        self.level = LEVELS["info"]
        self.out: list[str] = []
        self.partition: list[set[int]] | None = None

    # ---- output -------------------------------------------------------------------------------

    def _logger(self, level: str, text: str) -> None:
        if _LEVEL_OF[level] >= self.level:
            self.out.append(f"{level} {text}")

    def run(self, command: str) -> list[str]:
        self.out = []
        words = command.split()
        handler: Callable[[list[str]], None] | None = getattr(
            self, "cmd_" + words[0].replace("-", "_"), None
        )
        if handler is None:
            raise ValueError(f"unknown command {words[0]!r}")
        handler(words[1:])
        if self.level == LEVELS["none"] and words[0] not in _QUERIES:
            return ["ok"]  # setup steps run silently
        out = [line.rstrip() for line in self.out]
        return [line if line else "." for line in out] or ["ok"]

    # ---- commands -------------------------------------------------------------------------------

    def cmd_log_level(self, args: list[str]) -> None:
        self.level = LEVELS[args[0]]

    def cmd_add_nodes(self, args: list[str]) -> None:
        pos, kw = _parse_args(args)
        n = int(pos[0])
        voters = _ids(kw["voters"]) if "voters" in kw else []
        learners = _ids(kw["learners"]) if "learners" in kw else []
        index = int(kw.get("index", "1"))
        first = max(self.nodes, default=0) + 1
        for nid in range(first, first + n):
            if voters:
                storage = MemoryStorage.bootstrap(ConfState(tuple(voters), tuple(learners)), index)
            else:
                storage = MemoryStorage()
            cfg = Config(
                id=nid,
                storage=storage,
                election_tick=int(kw.get("election", "10")),
                heartbeat_tick=int(kw.get("heartbeat", "1")),
                pre_vote=_bool(kw.get("prevote", "false")),
                check_quorum=_bool(kw.get("checkquorum", "false")),
                max_size_per_msg=int(kw.get("max-size", str(1 << 20))),
                max_entries_per_msg=int(kw.get("max-entries", "0")),
                max_inflight_msgs=int(kw.get("max-inflight", "256")),
                disable_proposal_forwarding=not _bool(kw.get("forwarding", "true")),
                applied=storage.snapshot().index,
                rng=random.Random(int(kw.get("seed", "0")) * 1000 + nid),
                logger=self._logger,
            )
            self.nodes[nid] = TestNode(RaftNode(cfg), storage, cfg)

    def _node(self, v: str) -> TestNode:
        return self.nodes[int(v)]

    def cmd_campaign(self, args: list[str]) -> None:
        self._node(args[0]).raft.campaign()

    def cmd_propose(self, args: list[str]) -> None:
        try:
            self._node(args[0]).raft.propose(args[1].encode())
        except ProposalDroppedError as exc:
            self.out.append(f"raft proposal dropped: {exc}")

    def cmd_propose_conf_change(self, args: list[str]) -> None:
        kinds = {
            "add": ConfChangeType.ADD_VOTER,
            "add-learner": ConfChangeType.ADD_LEARNER,
            "remove": ConfChangeType.REMOVE,
        }
        try:
            self._node(args[0]).raft.propose_conf_change(ConfChange(kinds[args[1]], int(args[2])))
        except ProposalDroppedError as exc:
            self.out.append(f"raft proposal dropped: {exc}")

    def cmd_read_index(self, args: list[str]) -> None:
        try:
            self._node(args[0]).raft.read_index(args[1].encode())
        except ProposalDroppedError as exc:
            self.out.append(f"read index dropped: {exc}")

    def cmd_transfer_leadership(self, args: list[str]) -> None:
        _, kw = _parse_args(args)
        try:
            self._node(kw["from"]).raft.transfer_leader(int(kw["to"]))
        except ProposalDroppedError as exc:
            self.out.append(f"transfer dropped: {exc}")

    def _process_ready(self, nid: int, indent: str = "") -> bool:
        node = self.nodes[nid]
        if not node.raft.has_ready():
            return False
        rd = node.raft.ready()
        start = len(self.out)
        lines = describe_ready(rd)
        # Persist, then fsync, then send: messages may promise what was just written.
        if rd.snapshot is not None:
            node.storage.apply_snapshot(rd.snapshot)
        if rd.entries:
            node.storage.append(rd.entries)
        if rd.hard_state is not None:
            node.storage.set_hard_state(rd.hard_state)
        if rd.must_sync:
            node.storage.sync()
        self.queue.extend(rd.messages)
        if rd.snapshot is not None:
            node.applied = [f"snapshot@{rd.snapshot.index}"]
        for e in rd.committed_entries:
            if e.type == EntryType.NORMAL and e.data:
                node.applied.append(e.data.decode(errors="replace"))
        node.raft.advance(rd)
        logs = self.out[start:]
        del self.out[start:]
        self.out.extend(indent + line for line in lines)
        self.out.extend(indent + line for line in logs)
        return True

    def cmd_process_ready(self, args: list[str]) -> None:
        for a in args:
            if len(args) > 1:
                self.out.append(f"> {a} handling Ready")
                self._process_ready(int(a), "  ")
            else:
                self._process_ready(int(a))

    def _cut(self, a: int, b: int) -> bool:
        if self.partition is None:
            return False
        ga = next((i for i, g in enumerate(self.partition) if a in g), -1)
        gb = next((i for i, g in enumerate(self.partition) if b in g), -1)
        return ga != gb

    def _deliver(self, nid: int, indent: str = "", frm: int = 0) -> bool:
        def pick(m: Message) -> bool:
            return m.to == nid and (not frm or m.frm == frm)

        mine = [m for m in self.queue if pick(m)]
        if not mine:
            return False
        self.queue = [m for m in self.queue if not pick(m)]
        node = self.nodes[nid]
        for m in mine:
            if self._cut(m.frm, m.to):
                self.out.append(f"{indent}dropped: {describe_message(m)}")
                continue
            wire = decode_message(encode_message(m))
            assert wire == m, (wire, m)
            self.out.append(indent + describe_message(m))
            start = len(self.out)
            node.raft.step(wire)
            for i in range(start, len(self.out)):
                self.out[i] = indent + self.out[i]
        return True

    def cmd_deliver_msgs(self, args: list[str]) -> None:
        pos, kw = _parse_args(args)
        for a in pos:
            self._deliver(int(a), frm=int(kw.get("from", "0")))

    def cmd_drop_msgs(self, args: list[str]) -> None:
        pos, kw = _parse_args(args)
        ids = {int(a) for a in pos}
        frm = int(kw.get("from", "0"))

        def pick(m: Message) -> bool:
            return m.to in ids and (not frm or m.frm == frm)

        for m in self.queue:
            if pick(m):
                self.out.append(f"dropped: {describe_message(m)}")
        self.queue = [m for m in self.queue if not pick(m)]

    def cmd_stabilize(self, args: list[str]) -> None:
        ids = [int(a) for a in args] or sorted(self.nodes)
        while True:
            moved = False
            for nid in ids:
                if self.nodes[nid].raft.has_ready():
                    self.out.append(f"> {nid} handling Ready")
                    self._process_ready(nid, "  ")
                    moved = True
            for nid in ids:
                if any(m.to == nid for m in self.queue):
                    self.out.append(f"> {nid} receiving messages")
                    self._deliver(nid, "  ")
                    moved = True
            if not moved:
                return

    def cmd_tick(self, args: list[str]) -> None:
        node = self._node(args[0])
        for _ in range(int(args[1]) if len(args) > 1 else 1):
            node.raft.tick()

    def cmd_tick_election(self, args: list[str]) -> None:
        node = self._node(args[0])
        # A leader's check-quorum period is the election timeout; anyone else needs its own
        # randomized timeout to start campaigning.
        if node.raft.state == StateType.LEADER:
            n = node.config.election_tick
        else:
            n = node.raft.randomized_election_timeout - node.raft.election_elapsed
        for _ in range(max(n, 1)):
            node.raft.tick()

    def cmd_tick_heartbeat(self, args: list[str]) -> None:
        node = self._node(args[0])
        for _ in range(node.config.heartbeat_tick):
            node.raft.tick()

    def cmd_partition(self, args: list[str]) -> None:
        groups: list[set[int]] = [set()]
        for a in args:
            if a == "/":
                groups.append(set())
            else:
                groups[-1].add(int(a))
        self.partition = groups

    def cmd_heal(self, args: list[str]) -> None:
        self.partition = None

    def cmd_compact(self, args: list[str]) -> None:
        node = self._node(args[0])
        index = int(args[1])
        node.storage.create_snapshot(index, node.raft.conf_state(), b"")
        node.storage.compact(index)
        node.storage.sync()
        self._raft_log(node)

    def cmd_restart(self, args: list[str]) -> None:
        node = self._node(args[0])
        lost = node.storage.unsynced
        node.storage.crash(keep=0)
        snap = node.storage.snapshot()
        node.config.applied = snap.index
        node.applied = [f"snapshot@{snap.index}"] if snap.index else []
        self.queue = [m for m in self.queue if m.to != node.raft.id]
        node.raft = RaftNode(node.config)
        self.out.append(f"restarted {args[0]} (lost {lost} unsynced writes)")

    def _raft_log(self, node: TestNode) -> None:
        s = node.storage
        if s.last_index() < s.first_index():
            self.out.append(f"log is empty: first index={s.first_index()}, last index={s.last_index()}")
            return
        for e in s.entries(s.first_index(), s.last_index() + 1):
            self.out.append(describe_entry(e))

    def cmd_raft_log(self, args: list[str]) -> None:
        self._raft_log(self._node(args[0]))

    def cmd_raft_state(self, args: list[str]) -> None:
        for nid, node in sorted(self.nodes.items()):
            r = node.raft
            role = "Voter" if nid in r.voters else "Learner" if nid in r.learners else "NonMember"
            self.out.append(f"{nid}: {r.state} ({role}) Term:{r.term} Lead:{r.lead}")

    def cmd_status(self, args: list[str]) -> None:
        st = self._node(args[0]).raft.status()
        if st.state != StateType.LEADER:
            self.out.append(f"{st.id}: {st.state} Term:{st.term} Lead:{st.lead} Commit:{st.commit}")
            return
        for nid, pr in st.progress.items():
            self.out.append(f"{nid}: {pr}")

    def cmd_applied(self, args: list[str]) -> None:
        node = self._node(args[0])
        self.out.append(" ".join(node.applied) if node.applied else "nothing applied")

    def cmd_describe_bytes(self, args: list[str]) -> None:  # pragma: no cover - debugging aid
        self.out.append(describe_bytes(" ".join(args).encode()))


def run_transcript(text: str) -> tuple[list[Directive], list[str], list[list[str]]]:
    """Runs every directive of ``text``; returns them, the trailing comments and the outputs."""
    directives, trailing = parse_transcript(text)
    env = InteractionEnv()
    outputs = []
    for d in directives:
        try:
            outputs.append(env.run(d.command))
        except Exception as exc:  # a directive that raises is reported at its line
            raise AssertionError(f"line {d.line}: {d.command!r} raised {exc!r}") from exc
    return directives, trailing, outputs
