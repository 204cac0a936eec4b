"""``ledgercore cluster --dir D``: run every node of ``D/cluster.json`` as its own OS process.

Each node runs ``python -m ledgercore node --config ...`` in its own session (so a terminal's Ctrl-C
reaches only this supervisor, which then stops the nodes in order), logging to ``D/<id>/node.log``.
The supervisor prints one line per node (``<id> pid=<pid> client=<url> log=<path>``), then ``ready``
once every client API answers. On SIGINT, SIGTERM, SIGHUP (its terminal closed) or SIGQUIT it sends
SIGTERM to every node, waits for them (SIGKILL after ``--stop-timeout`` seconds) and exits 0 if all
stopped cleanly. A node that dies on its own is reported (``<id> pid=<pid> died unexpectedly: ...``)
and the others keep running; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

from ..arg_types import SECONDS
from ..child_process import describe_exit, module_process
from ..client import DEFAULT_TIMEOUT, Client, check_url
from ..errors import ClientError, InvalidInputError
from ..net.pki import TLSFiles
from ..output_stream import to_devnull
from .config import NodeConfig

POLL_S = 0.1
# What stops the cluster cleanly. Nodes run in sessions of their own, so a signal meant for the
# supervisor's terminal (SIGHUP when it closes, SIGQUIT from Ctrl-\) never reaches them: left to
# its default action, any of these would end the supervisor and orphan every node.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def _say(line: str, *, err: bool = False) -> None:
    """Prints one status line on stdout (stderr with ``err``). Once the supervisor's terminal has
    closed (the SIGHUP case) every write to it fails with EIO: the stream is then pointed at
    /dev/null, so that the supervisor still stops its nodes cleanly and exits with their status."""
    stream = sys.stderr if err else sys.stdout
    try:
        print(line, file=stream, flush=True)
    except OSError:
        to_devnull(stream)


@dataclass
class NodeProcess:
    """One node process the supervisor started."""

    id: str
    config: Path
    client_url: str
    log_path: Path
    proc: subprocess.Popen[bytes]
    log_file: IO[bytes]
    tls: ssl.SSLContext
    reported: bool = False

    def client(self, timeout: float = DEFAULT_TIMEOUT) -> Client:
        """A client of this node's API, presenting the cluster's client certificate."""
        return Client(self.client_url, timeout, tls=self.tls)


@dataclass(frozen=True)
class ClusterFile:
    """What ``D/cluster.json`` says: its nodes (each a dict of string ``id``, ``config``, a file
    that exists and beside which the node logs, and ``client_url``) and the TLS files a client of
    their API presents."""

    nodes: list[dict[str, str]]
    client_tls: TLSFiles

    def client_context(self) -> ssl.SSLContext:
        """A TLS context presenting the cluster's client certificate, read and checked here: one
        that nodes would refuse (expired, another CA's) is a ``CertificateFileError`` naming why,
        not a supervisor waiting on nodes that never answer it."""
        self.client_tls.check_client()
        return self.client_tls.client_context()


def load_cluster(directory: str | Path) -> ClusterFile:
    """Reads ``directory/cluster.json``; ValueError names what is missing or wrong in it. Relative
    paths in it (configs, client TLS files) are taken from ``directory``, as a node's config takes
    its own from the config's directory, never from the working one."""
    home = Path(directory).resolve()
    path = home / "cluster.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise ValueError("its JSON is nested too deeply") from None
    nodes = data.get("nodes") if isinstance(data, dict) else None
    if not isinstance(nodes, list) or not nodes:
        raise ValueError("expected an object with a non-empty 'nodes' list")
    for i, n in enumerate(nodes):
        if not isinstance(n, dict) or not all(isinstance(n.get(k), str) and n[k] for k in ("id", "config", "client_url")):
            raise ValueError(f"node {i} must be an object with string id, config and client_url, got {n!r}")
        n["config"] = str(home / n["config"])  # an absolute path joined to it stays itself
        if not Path(n["config"]).is_file():
            raise ValueError(f"node {n['id']}: config {n['config']} is not a file")
        if not check_url(n["client_url"]).startswith("https://"):  # InvalidInputError (a ValueError) if no URL
            raise ValueError(f"node {n['id']}: client_url {n['client_url']} is not https (nodes serve mutual TLS)")
    for what, key in (("ids", lambda n: n["id"]), ("configs", lambda n: Path(n["config"]).resolve())):
        seen = [key(n) for n in nodes]
        if twice := sorted({str(v) for v in seen if seen.count(v) > 1}):
            raise ValueError(f"nodes must have distinct {what}: {', '.join(twice)} listed more than once")
    tls = data.get("client_tls")
    if not isinstance(tls, dict) or not all(isinstance(tls.get(k), str) and tls[k] for k in ("ca_cert", "cert", "key")):
        raise ValueError(f"client_tls must be an object with the paths ca_cert, cert and key, got {tls!r}")
    for n in nodes:  # every config read and checked before any node starts (ConfigError names the field)
        if (named := NodeConfig.load(n["config"]).id) != n["id"]:
            raise ValueError(f"node {n['id']}: its config {n['config']} is for node {named!r}")
    return ClusterFile(nodes, TLSFiles.from_dict(tls).under(home))


def start_node(entry: dict[str, str], tls: ssl.SSLContext) -> NodeProcess:
    """Starts the node of one ``cluster.json`` entry; ``tls`` is what clients of its API present.
    OSError (its log cannot be opened, no process can be started) leaves nothing open."""
    config = Path(entry["config"]).resolve()
    log_path = config.parent / "node.log"
    log_file = open(log_path, "ab")
    try:
        proc = module_process(
            "ledgercore", ["node", "--config", str(config)], cwd=config.parent, stdin=subprocess.DEVNULL,
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    except BaseException:
        log_file.close()
        raise
    return NodeProcess(entry["id"], config, entry["client_url"], log_path, proc, log_file, tls)


def wait_ready(
    nodes: list[NodeProcess], stopping: list[int], timeout: float, errors: dict[str, str] | None = None
) -> bool:
    """Waits until every node's client API answers /status. False when one exits first (a node
    that cannot start must not read as ready), on ``stopping``, or after ``timeout``; ``errors``
    then holds what each node that did not answer last answered instead."""
    deadline = time.monotonic() + timeout
    pending = {n.id: n for n in nodes}
    errors = {} if errors is None else errors
    while pending and not stopping and time.monotonic() < deadline:
        for n in list(pending.values()):
            if n.proc.poll() is not None:
                return False
            try:
                with n.client(timeout=1.0) as c:
                    c.status()
                pending.pop(n.id)
                errors.pop(n.id, None)
            except ClientError as exc:
                errors[n.id] = str(exc)
        if pending:
            time.sleep(POLL_S)
    return not pending


def _report_deaths(nodes: list[NodeProcess]) -> None:
    for n in nodes:
        code = n.proc.poll()
        if code is not None and not n.reported:
            n.reported = True
            _say(f"{n.id} pid={n.proc.pid} died unexpectedly: {describe_exit(code)} (log {n.log_path})", err=True)


def stop_all(nodes: list[NodeProcess], timeout: float, *, announce: bool = True) -> bool:
    """SIGTERM to every live node, then wait; SIGKILL what is left after ``timeout``. True if every
    node that was still running exited 0. ``announce``: print each clean stop on stdout (failures
    always go to stderr)."""
    running = [n for n in nodes if n.proc.poll() is None]
    for n in running:
        try:
            n.proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
    clean = True
    deadline = time.monotonic() + timeout
    for n in running:
        try:
            code = n.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            n.proc.kill()
            code = n.proc.wait()
            _say(f"{n.id} pid={n.proc.pid} did not stop within {timeout}s; killed", err=True)
        n.reported = True
        if code != 0:
            clean = False
            _say(f"{n.id} pid={n.proc.pid} stopped with {describe_exit(code)}", err=True)
        elif announce:
            _say(f"{n.id} stopped")
    for n in nodes:
        n.log_file.close()
    return clean


def run_cluster(
    cluster: ClusterFile,
    tls: ssl.SSLContext,
    *,
    only: Sequence[str] = (),
    ready_timeout: float = 60.0,
    stop_timeout: float = 20.0,
) -> int:
    """Starts every node of ``cluster`` (or those named in ``only``), supervises them until
    one of ``STOP_SIGNALS``, stops them; returns the exit status. ``tls``: its ``client_context()``.
    The timeouts are positive finite seconds (``InvalidInputError`` before any node starts)."""
    for name, value in (("ready_timeout", ready_timeout), ("stop_timeout", stop_timeout)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
            raise InvalidInputError(f"{name} must be a positive finite number of seconds, got {value!r:.40}")
    entries = cluster.nodes
    if only:
        unknown = set(only) - {e["id"] for e in entries}
        if unknown:
            print(f"ledgercore cluster: no node {', '.join(sorted(unknown))} in the cluster", file=sys.stderr)
            return 2
        entries = [e for e in entries if e["id"] in only]
    stopping: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    nodes: list[NodeProcess] = []
    try:
        for entry in entries:
            try:
                n = start_node(entry, tls)
            except OSError as exc:
                # The nodes already started are stopped as on Ctrl-C: SIGTERM, not the SIGKILL below.
                _say(f"ledgercore cluster: cannot start {entry['id']}: {exc}", err=True)
                stop_all(nodes, stop_timeout)
                return 2
            nodes.append(n)
            _say(f"{n.id} pid={n.proc.pid} client={n.client_url} log={n.log_path}")
        errors: dict[str, str] = {}
        if wait_ready(nodes, stopping, ready_timeout, errors):
            _say(f"ready: {len(nodes)} nodes; Ctrl-C stops them")
        elif not stopping and all(n.proc.poll() is None for n in nodes):
            said = "".join(f"\n  {node}: {error}" for node, error in sorted(errors.items()))
            _say(f"not every node answered within {ready_timeout}s{said}", err=True)
        while not stopping:
            _report_deaths(nodes)
            if all(n.reported for n in nodes):
                _say("every node has exited", err=True)
                break
            time.sleep(POLL_S)
        _report_deaths(nodes)
        died = any(n.reported for n in nodes)
        if stopping:
            _say(f"{signal.Signals(stopping[0]).name}: stopping {len(nodes)} nodes")
        clean = stop_all(nodes, stop_timeout)
        return 0 if clean and not died else 1
    finally:
        for n in nodes:  # only if something above failed: never leave nodes behind
            if n.proc.poll() is None:
                n.proc.kill()
                n.proc.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(args: argparse.Namespace) -> int:
    try:
        cluster = load_cluster(args.dir)
        tls = cluster.client_context()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"ledgercore cluster: cannot read {os.path.join(args.dir, 'cluster.json')}: {exc}", file=sys.stderr)
        return 2
    return run_cluster(cluster, tls, only=args.only, ready_timeout=args.ready_timeout, stop_timeout=args.stop_timeout)


def register(commands: Any) -> None:
    """Adds ``ledgercore cluster`` to the top-level sub-parsers."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "cluster",
        help="run every node of a cluster written by init-cluster, each as its own process",
        description="Start every node in DIR/cluster.json as its own process (logs in DIR/<id>/node.log), "
        "print their client URLs, and stop them all cleanly on Ctrl-C, SIGTERM, SIGHUP or SIGQUIT.",
    )
    parser.add_argument("--dir", required=True, metavar="DIR", help="the directory init-cluster wrote")
    parser.add_argument("--only", action="append", default=[], metavar="ID",
                        help="start only this node (repeatable; the others run elsewhere)")  # fmt: skip
    parser.add_argument("--ready-timeout", type=SECONDS, default=60.0, metavar="S",
                        help="seconds to wait for every client API to answer (default 60)")  # fmt: skip
    parser.add_argument("--stop-timeout", type=SECONDS, default=20.0, metavar="S",
                        help="seconds to wait for nodes to stop before killing them (default 20)")  # fmt: skip
    parser.set_defaults(handler=_run)
