"""``ledgercore init-cluster``: a consortium CA, node certificates and one config per node.

Layout written under ``D`` (nodes are ``node1`` .. ``nodeN``, Raft ids 1 .. N)::

    D/ca.crt, D/ca.key (0600)         the consortium CA; keep ca.key aside (nodes never read it)
    D/node<i>/node.crt, node.key, ca.crt, config.json     one node, its data in D/node<i>/data
    D/client/client.crt, client.key, ca.crt               a client certificate (OU client)
    D/cluster.json                    {"nodes": [{"id", "config", "client_url"}, ...],
                                       "client_tls": {"ca_cert", "cert", "key"}, ...}

Node ``i`` listens on 127.0.0.1 (or ``--host``): transport port ``P + 2(i-1)``, client API port
``P + 2(i-1) + 1``, served over mutual TLS (``https://``; ``client_tls`` names the files a client
presents). Peers and clients dial that address, or ``--advertise`` where the nodes listen on a
wildcard (``--host 0.0.0.0``); the certificates name both.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import sys
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from ..net import pki
from ..suites import DEFAULT_SUITE, get_suite
from .config import NodeConfig, Peer, client_url, is_wildcard

DEFAULT_BASE_PORT = 7100
# The most nodes a cluster may have. Every node is a Raft voter, and each commit waits on a
# majority of them, so voters beyond a handful slow every commit; and each config lists every
# peer, so the files grow as nodes squared (30000 nodes took gigabytes before anything was written).
MAX_NODES = 100
# What ``settings`` may set: NodeConfig's fields that init_cluster does not derive itself.
TUNABLES = frozenset(f.name for f in fields(NodeConfig)) - {
    "id", "raft_id", "data_dir", "host", "port", "client_host", "client_port", "peers", "tls", "suite", "chain_id",
    "advertise",
}  # fmt: skip


@dataclass(frozen=True)
class ClusterLayout:
    """What :func:`init_cluster` wrote."""

    dir: Path
    configs: tuple[NodeConfig, ...]
    config_paths: tuple[Path, ...]
    cluster_file: Path
    client_tls: pki.TLSFiles


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_base_port(count: int) -> int:
    """A port P such that P .. P+count-1 are all free now, below the ephemeral range (so no outgoing
    connection, which may take any ephemeral port, can hold a node's port when it restarts)."""
    high = max(_ephemeral_low(), 12000)
    for _ in range(200):
        base = random.randrange(10000, high - count)
        socks = []
        try:
            for p in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise OSError("no free range of local ports found")


def init_cluster(
    directory: str | Path,
    nodes: int,
    *,
    suite: str = DEFAULT_SUITE,
    base_port: int = DEFAULT_BASE_PORT,
    chain_id: str = "dev",
    host: str = "127.0.0.1",
    advertise: str = "",
    settings: dict[str, Any] | None = None,
) -> ClusterLayout:
    """Writes a cluster of ``nodes`` nodes under ``directory`` (see the module docstring).

    Nodes listen on ``host``; peers and clients reach them at ``advertise`` (needed when ``host``
    is a wildcard, 0.0.0.0 or ``::``), else at ``host``. ``settings`` overrides NodeConfig's
    tunables (``block_txs``, ``snapshot_every``, ...)."""
    if isinstance(nodes, bool) or not isinstance(nodes, int) or not 1 <= nodes <= MAX_NODES:
        raise InvalidInputError(f"--nodes must be an integer of 1..{MAX_NODES}, got {nodes!r:.40}")
    if isinstance(base_port, bool) or not isinstance(base_port, int):
        raise InvalidInputError(f"--base-port must be an integer, got {base_port!r:.40}")
    if base_port < 1 or base_port + 2 * nodes - 1 > 65535:
        raise InvalidInputError(f"ports {base_port}..{base_port + 2 * nodes - 1} are not all valid TCP ports")
    if not isinstance(directory, (str, os.PathLike)) or not isinstance(os.fspath(directory), str):
        raise InvalidInputError(f"--dir must be a path (str or os.PathLike), got {type(directory).__name__}")
    if "\0" in os.fspath(directory):
        raise InvalidInputError(f"--dir {os.fspath(directory)!r:.120} holds a NUL character, which no path can")
    if settings is not None and not isinstance(settings, dict):
        wrong = type(settings).__name__
    else:
        wrong = ", ".join(map(str, sorted(set(settings or {}) - TUNABLES)))
    if wrong:
        raise InvalidInputError(f"settings must be a dict of NodeConfig tunables ({', '.join(sorted(TUNABLES))}); got {wrong}")
    if is_wildcard(host) and not advertise:
        raise InvalidInputError(
            f"--host {host} listens on every interface, which no peer or client can dial: give "
            "--advertise ADDRESS, the address they reach the nodes at (it goes into cluster.json "
            "and the certificates)"
        )
    reach = advertise or host
    suite = get_suite(suite).name
    d = Path(directory).resolve()
    names = ["cluster.json", "ca.crt", "ca.key", "client", *(f"node{i}" for i in range(1, nodes + 1))]
    if taken := [n for n in names if os.path.lexists(d / n)]:
        raise InvalidInputError(f"{d} already holds {', '.join(taken)}; choose an empty directory")
    peers = [
        Peer(id=f"node{i}", raft_id=i, host=reach, port=base_port + 2 * (i - 1),
             client_url=client_url(reach, base_port + 2 * (i - 1) + 1))
        for i in range(1, nodes + 1)
    ]  # fmt: skip
    # Every config checked before anything is written: a refused cluster leaves nothing behind.
    configs = [
        NodeConfig(
            id=me.id, raft_id=me.raft_id, data_dir=d / me.id / "data", host=host, port=me.port, client_host=host,
            client_port=me.port + 1, peers=tuple(p for p in peers if p is not me), advertise=advertise,
            tls=pki.TLSFiles.in_dir(d / me.id), suite=suite, chain_id=chain_id, **(settings or {}),
        )
        for me in peers
    ]  # fmt: skip
    for cfg in configs:
        cfg.validate()
    client_tls = pki.TLSFiles.in_dir(d / "client", stem="client")
    cluster = {
        "nodes": [{"id": c.id, "config": str(d / c.id / "config.json"), "client_url": c.client_url} for c in configs],
        "suite": suite,
        "chain_id": chain_id,
        "ca_cert": str(d / "ca.crt"),
        "client_tls": client_tls.to_dict(),
    }
    d.mkdir(parents=True, exist_ok=True)
    # Written into a directory of its own beside the others, then moved in name by name with
    # cluster.json last: a failure leaves nothing behind (and never touches what was there).
    staging = Path(tempfile.mkdtemp(prefix=".init-cluster-", dir=d))
    moved: list[str] = []
    try:
        ca = pki.create_ca()
        pki.write_credentials(ca, staging / "ca.crt", staging / "ca.key")
        for cfg in configs:
            pki.write_tls_files(staging / cfg.id, ca, pki.issue_node_certificate(ca, cfg.id, hosts=cfg.hosts))
            cfg.save(staging / cfg.id / "config.json")
        pki.write_tls_files(staging / "client", ca, pki.issue_client_certificate(ca, "client"), stem="client")
        (staging / "cluster.json").write_text(json.dumps(cluster, indent=2) + "\n")
        for name in names[1:] + names[:1]:
            if os.path.lexists(d / name):  # made since the check: not ours to replace
                raise FileExistsError(f"{d / name} appeared while the cluster was written")
            os.rename(staging / name, d / name)
            moved.append(name)
    except BaseException:
        for name in moved:
            os.rename(d / name, staging / name)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    paths = tuple(d / c.id / "config.json" for c in configs)
    return ClusterLayout(d, tuple(configs), paths, d / "cluster.json", client_tls)


def _run(args: argparse.Namespace) -> int:
    settings = {
        name: getattr(args, name)
        for name in ("block_txs", "block_ms", "snapshot_every", "authorize")
        if getattr(args, name) is not None
    }
    if args.contract:
        settings["contracts"] = tuple(args.contract)
    try:
        layout = init_cluster(
            args.dir, args.nodes, suite=args.suite, base_port=args.base_port, chain_id=args.chain_id,
            host=args.host, advertise=args.advertise, settings=settings,
        )  # fmt: skip
    except (InvalidInputError, OSError) as exc:
        print(f"ledgercore init-cluster: {exc}", file=sys.stderr)
        return 2
    for cfg, path in zip(layout.configs, layout.config_paths):
        print(f"{cfg.id}: transport {cfg.host}:{cfg.port}, client {cfg.client_url}, config {path}")
    print(f"wrote {layout.cluster_file}; the CA key is {layout.dir / 'ca.key'} (keep it aside)")
    print(f"start the cluster with: ledgercore cluster --dir {layout.dir}")
    return 0


def register(commands: Any) -> None:
    """Adds ``ledgercore init-cluster`` to the top-level sub-parsers."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "init-cluster",
        help="create a consortium CA, node certificates and configs for a local cluster",
        description="Write a consortium CA, one certificate, key and config per node, a client "
        "certificate and DIR/cluster.json. Node i listens on transport port BASE+2(i-1) and client "
        "port BASE+2(i-1)+1.",
    )
    parser.add_argument("--nodes", type=int, required=True, metavar="N", help=f"number of nodes (1..{MAX_NODES})")
    parser.add_argument("--dir", required=True, metavar="DIR", help="directory to write (must not hold a cluster)")
    parser.add_argument("--suite", default=DEFAULT_SUITE, help=f"crypto suite (default {DEFAULT_SUITE})")
    parser.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT, metavar="P",
                        help=f"first port (default {DEFAULT_BASE_PORT})")  # fmt: skip
    parser.add_argument("--chain-id", default="dev", metavar="C", help="chain id (default dev)")
    parser.add_argument("--host", default="127.0.0.1", help="address every node listens on (default 127.0.0.1)")
    parser.add_argument("--advertise", default="", metavar="ADDRESS",
                        help="address peers and clients reach the nodes at, where it is not --host "
                        "(needed with --host 0.0.0.0 or ::)")  # fmt: skip
    parser.add_argument("--block-txs", type=int, metavar="B", help="cut a block at B transactions")
    parser.add_argument("--block-ms", type=int, metavar="T", help="... or T ms after the first one waits")
    parser.add_argument("--snapshot-every", type=int, metavar="K", help="compact the Raft log every K entries")
    parser.add_argument("--contract", action="append", default=[], metavar="MODULE:NAME",
                        help="a contract of the chain's own, which every node imports at start (repeatable)")
    parser.add_argument("--authorize", metavar="MODULE:NAME", help="the chain's permission hook (an Authorizer)")
    parser.set_defaults(handler=_run)
