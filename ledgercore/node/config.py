"""A consensus node's configuration: who it is, where it listens, its peers, its TLS files, and the
block-cutting and Raft timing it runs with. Stored as JSON; ``ledgercore init-cluster`` writes one
per node."""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from ..ledger import check_chain_id
from ..net.pki import InvalidNodeIdError, TLSFiles, validate_node_id
from ..suites import SUITES

# A host name (RFC 1123 labels, ASCII: an internationalised name in its A-label form), where it is
# not an IP address.
_HOSTNAME_RE = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")

# A Python object a config names: dotted module path, colon, attribute (user_code.load_named).
_MODULE_NAME = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*")


def client_url(host: str, port: int) -> str:
    """The client API's URL at ``host`` (an IPv6 address goes in brackets) and ``port``: https, as
    every node serves it over mutual TLS."""
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def _is_host(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return _HOSTNAME_RE.fullmatch(value) is not None


def is_wildcard(host: str) -> bool:
    """Whether ``host`` is 0.0.0.0 or ``::``: every interface, to listen on; no address to dial."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


class ConfigError(InvalidInputError):
    """A node configuration file that is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class Peer:
    """Another member of the consortium: its node id (certificate CN), Raft id and addresses."""

    id: str
    raft_id: int
    host: str
    port: int  # consensus transport (mutual TLS)
    client_url: str  # client API (HTTPS, mutual TLS)


@dataclass(frozen=True)
class NodeConfig:
    id: str  # node id: the CN of this node's certificate
    raft_id: int  # Raft's numeric id for this node, unique in the cluster
    data_dir: Path  # holds ledger/ and raft/
    host: str
    port: int  # consensus transport port
    client_host: str
    client_port: int  # client API port (HTTPS, mutual TLS with the same certificate as the transport)
    peers: tuple[Peer, ...]  # every other voter
    tls: TLSFiles
    suite: str = "ed25519-blake3"
    chain_id: str = "dev"
    block_txs: int = 2000  # the leader cuts a block at this many transactions ...
    block_ms: int = 50  # ... or this long after the first one waits, whichever comes first
    tick_ms: int = 20  # one Raft tick
    election_ticks: int = 25
    heartbeat_ticks: int = 3
    snapshot_every: int = 64  # compact the Raft log after this many applied entries
    mempool_limit: int = 200_000  # transactions admitted and not yet committed, at most ...
    mempool_bytes: int = 1 << 30  # ... and their bytes (a transaction may be up to 1 MB)
    max_inflight_blocks: int = 4
    # A client's transaction is admitted only if its timestamp is within this of the node's clock
    # (ChainMaker checks the same, 600 s by default): one signed long ago, or with a wrong clock,
    # is refused naming both times. Forwarded transactions were checked where they were submitted.
    tx_time_window_ms: int = 600_000
    advertise: str = ""  # the address peers and clients reach it at, where that is not host (say, host 0.0.0.0)
    # The chain's own contracts and permission hook, as MODULE:NAME the node imports at start.
    # Every node must run the same ones: a block executes on each, and a node whose results
    # differ stops (DivergedError).
    contracts: tuple[str, ...] = ()
    authorize: str = ""
    # Whether the chain's headers carry receipts roots (version 2): init-cluster writes true. A
    # config written before there were any lacks the field and reads as false, so that a node
    # replaced or wiped there still makes the genesis its cluster has (the ledger refuses a store
    # of the other kind: ChainMismatchError).
    receipts_roots: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.contracts, list):  # as JSON has it
            object.__setattr__(self, "contracts", tuple(self.contracts))

    def to_json(self) -> str:
        d = asdict(self)
        d["data_dir"] = str(self.data_dir)
        d["tls"] = self.tls.to_dict()
        return json.dumps(d, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NodeConfig:
        if not isinstance(d, dict):
            raise ConfigError(f"invalid node configuration: expected an object, got {type(d).__name__}")
        for name, want in (("tls", dict), ("peers", list)):
            if name in d and not isinstance(d[name], want):
                what = "an object with ca_cert, cert and key" if want is dict else "a list of objects"
                raise ConfigError(f"invalid node configuration: {name} must be {what}, got {d[name]!r}")
        known = {"node": {f.name for f in fields(cls)}, "peer": {f.name for f in fields(Peer)}, "tls": {"ca_cert", "cert", "key"}}
        for what, given in [("node", d), ("tls", d.get("tls")), *(("peer", p) for p in d.get("peers", ()))]:
            unknown = sorted(set(given) - known[what]) if isinstance(given, dict) else []
            if unknown:
                raise ConfigError(f"invalid node configuration: unknown {what} field(s) {', '.join(unknown)}")
        if "data_dir" in d and (not isinstance(d["data_dir"], str) or not d["data_dir"]):
            # Path("") is the working directory: the node would write its stores wherever it started.
            raise ConfigError(f"invalid node configuration: data_dir must be a non-empty path, got {d['data_dir']!r}")
        try:
            d = dict(d)
            d.setdefault("receipts_roots", False)  # written before receipts roots: see the field
            d["data_dir"] = Path(d["data_dir"])
            d["tls"] = TLSFiles.from_dict(d["tls"])
            d["peers"] = tuple(Peer(**p) for p in d["peers"])
            cfg = cls(**d)
        except KeyError as exc:
            raise ConfigError(f"invalid node configuration: missing {exc}") from None
        except (AttributeError, TypeError, ValueError) as exc:
            raise ConfigError(f"invalid node configuration: {exc}") from None
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raises ConfigError naming the first field whose value the node could not run with."""

        def fail(field: str, want: str, got: Any) -> ConfigError:
            return ConfigError(f"invalid node configuration: {field} must be {want}, got {got!r:.100}")

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        strings = [(name, getattr(self, name)) for name in ("id", "host", "client_host")]
        for p in self.peers:
            strings += [(f"peer {p.id!r} {name}", getattr(p, name)) for name in ("id", "host", "client_url")]
        for name, value in strings:
            if not isinstance(value, str) or not value:
                raise fail(name, "a non-empty string", value)
        hosts = [("host", self.host), ("client_host", self.client_host)]
        if self.advertise != "":
            hosts.append(("advertise", self.advertise))
        hosts += [(f"peer {p.id!r} host", p.host) for p in self.peers]
        for name, value in hosts:
            if not isinstance(value, str) or not _is_host(value):
                raise fail(name, "an IP address or a host name (ASCII labels of a-z, 0-9, inner '-')", value)
        if self.advertise and is_wildcard(self.advertise):
            raise fail("advertise", "an address others can reach, not a wildcard", self.advertise)
        for name, value in [("id", self.id), *((f"peer {p.id!r} id", p.id) for p in self.peers)]:
            try:
                validate_node_id(value)
            except InvalidNodeIdError as exc:
                raise ConfigError(f"invalid node configuration: {name}: {exc}") from None
        ports = [("port", self.port), ("client_port", self.client_port)]
        ports += [(f"peer {p.id!r} port", p.port) for p in self.peers]
        for name, port in ports:
            if not is_int(port) or not 1 <= port <= 65535:
                raise fail(name, "a TCP port (1..65535)", port)
        # Timers take seconds as floats: a day and a minute are far beyond any useful setting.
        most = {"block_ms": 86_400_000, "tick_ms": 60_000}
        for name in ("block_txs", "block_ms", "tick_ms", "election_ticks", "heartbeat_ticks", "snapshot_every",
                     "mempool_limit", "mempool_bytes", "max_inflight_blocks", "tx_time_window_ms"):  # fmt: skip
            value, top = getattr(self, name), most.get(name, 2**63 - 1)
            if not is_int(value) or value < 1:
                raise fail(name, "a positive integer", value)
            if value > top:
                raise fail(name, f"at most {top}", value)
        paths = [("data_dir", self.data_dir), *((f"tls {n}", getattr(self.tls, n)) for n in ("ca_cert", "cert", "key"))]
        for name, path in paths:
            if not isinstance(path, (str, os.PathLike)) or not isinstance(os.fspath(path), str):
                raise fail(name, "a path (str or os.PathLike)", path)
            if "\0" in os.fspath(path):  # no file has such a name: the node would fail opening it
                raise fail(name, "a path without NUL characters", os.fspath(path))
        if self.election_ticks <= self.heartbeat_ticks:
            raise fail("election_ticks", f"more than heartbeat_ticks ({self.heartbeat_ticks})", self.election_ticks)
        if not isinstance(self.suite, str) or self.suite not in SUITES:
            raise fail("suite", f"one of {sorted(SUITES)}", self.suite)
        try:
            check_chain_id(self.chain_id)
        except InvalidInputError as exc:
            raise ConfigError(f"invalid node configuration: {exc}") from None
        if not isinstance(self.extra, dict):
            raise fail("extra", "an object", self.extra)
        if not isinstance(self.receipts_roots, bool):
            raise fail("receipts_roots", "true or false", self.receipts_roots)
        if not isinstance(self.contracts, tuple) or not isinstance(self.authorize, str):
            raise fail("contracts and authorize", "a list of MODULE:NAME strings and one such string", (self.contracts, self.authorize))
        specs = [*(("contracts", c) for c in self.contracts), *([("authorize", self.authorize)] if self.authorize else [])]
        for name, spec in specs:
            if not isinstance(spec, str) or not _MODULE_NAME.fullmatch(spec):
                raise fail(name, "MODULE:NAME (a dotted module path, a colon, an attribute name)", spec)
        names = [self.id, *(p.id for p in self.peers)]
        if len(set(names)) != len(names):
            raise fail("peers", "nodes with distinct ids (this node's included)", names)
        addresses = [(self.host, self.port), (self.client_host, self.client_port)]
        addresses += [(p.host, p.port) for p in self.peers]
        if len(set(addresses)) != len(addresses):
            raise fail("port", "distinct host and port pairs (transport, client API, peers)", addresses)
        ids = [self.raft_id, *(p.raft_id for p in self.peers)]
        if not all(map(is_int, ids)) or len(set(ids)) != len(ids) or min(ids) < 1 or max(ids) >= 2**64:
            raise ConfigError(f"raft ids must be distinct integers in 1..2**64 - 1, got {ids}")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NodeConfig:
        """Reads and checks the config in ``path``; ConfigError says what is wrong with it.

        A relative ``data_dir`` or TLS path is taken from the config file's own directory (symlinks
        resolved, as ``cluster`` runs each node there), never the working directory: ``node``,
        ``cluster`` and ``renew-cert`` then find the same files wherever they are run from."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read node configuration {os.fspath(path)!r}: {exc}") from None
        try:
            loaded = json.loads(text)
        except (ValueError, RecursionError) as exc:  # ValueError: a JSONDecodeError, or an int of 4300+ digits
            why = "nested too deeply" if isinstance(exc, RecursionError) else exc
            raise ConfigError(f"{os.fspath(path)!r} is not valid JSON: {why}") from None
        cfg = cls.from_dict(loaded)
        home = Path(path).resolve().parent  # an absolute path joined to it stays itself
        return replace(cfg, data_dir=home / cfg.data_dir, tls=cfg.tls.under(home))

    def save(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(self.to_json())

    @property
    def client_url(self) -> str:
        """Where clients reach its API: at ``advertise``, if given, else where the API listens."""
        return client_url(self.advertise or self.client_host, self.client_port)

    @property
    def hosts(self) -> list[str]:
        """The addresses its certificate must name: the transport's, the client API's when it
        listens elsewhere, and the advertised one (clients check the name they dial)."""
        return list(dict.fromkeys(h for h in (self.host, self.client_host, self.advertise) if h))

    def peer_by_raft_id(self, raft_id: int) -> Peer | None:
        return next((p for p in self.peers if p.raft_id == raft_id), None)
