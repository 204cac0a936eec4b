"""A real cluster: ``ledgercore init-cluster`` then ``ledgercore cluster`` / ``ledgercore node`` as OS
processes on 127.0.0.1, driven through the HTTP client API (issue 4, items 5-7).

One 3-node cluster (module fixture) serves the agreement, proof, bad-input and certificate tests, and
last the SIGKILL-the-leader test. The snapshot catch-up test runs its own cluster with a small
``snapshot_every``, scaled down in the default run; ``-m slow`` runs the 100k-transaction variant.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import errno
import gzip
import json
import math
import os
import pty
import random
import re
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ledgercore import merkle, signing
from ledgercore.client import Client, header_of
from ledgercore.codec import encode_value
from ledgercore.consensus.messages import ConfState, Snapshot
from ledgercore.errors import (
    ClientError,
    CommitTimeoutError,
    InvalidInputError,
    RemoteNotFoundError,
    RequestRejectedError,
    TLSRefusedError,
    UnavailableError,
)
from ledgercore.net import pki
from ledgercore.net.transport import encode_frame
from ledgercore.node.cluster import load_cluster, run_cluster
from ledgercore.node.config import NodeConfig
from ledgercore.node.http import MAX_BODY
from ledgercore.node.init_cluster import free_base_port
from ledgercore.node.node import MAX_SUBMIT_BATCH
from ledgercore.node.raft_store import DurableStorage
from ledgercore.receipts import Receipt, verify_receipt
from ledgercore.suites import get_suite
from ledgercore.transaction import Transaction

ROOT = Path(__file__).resolve().parent.parent
SUITE = "ed25519-blake3"
CHAIN = "cluster-test"
HASH = get_suite(SUITE).hash
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


# -- helpers ----------------------------------------------------------------------------------


def ledgercore(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "ledgercore", *map(str, args)]


def wait_until(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = pred()
            if value:
                return value
        except ClientError as exc:
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc})")


def init_cluster(directory: Path, nodes: int, *extra: str) -> dict[str, Any]:
    base = free_base_port(2 * nodes)
    out = subprocess.run(
        ledgercore("init-cluster", "--nodes", nodes, "--dir", directory, "--base-port", base,
                   "--chain-id", CHAIN, "--suite", SUITE, *extra),
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    cluster: dict[str, Any] = json.loads((directory / "cluster.json").read_text())
    return cluster


def client_tls(info: dict[str, Any]) -> ssl.SSLContext:
    """The TLS context of the cluster's client certificate (``cluster.json``'s ``client_tls``)."""
    return pki.TLSFiles.from_dict(info["client_tls"]).client_context()


def clients_of(info: dict[str, Any], timeout: float = 60) -> dict[str, Client]:
    tls = client_tls(info)
    return {n["id"]: Client(n["client_url"], timeout=timeout, tls=tls) for n in info["nodes"]}


def dump_logs(directory: Path, lines: int = 40) -> None:
    """Prints the end of every node log under ``directory`` (pytest shows it when a test fails)."""
    for log in sorted(directory.glob("node*/node*.log")):
        tail = [ln for ln in log.read_text(errors="replace").splitlines() if "cannot reach" not in ln][-lines:]
        print(f"--- {log.relative_to(directory)} ---", *tail, sep="\n")


@dataclass
class Supervisor:
    """A running ``ledgercore cluster`` process."""

    proc: subprocess.Popen[bytes]
    out_path: Path
    pids: dict[str, int]

    def output(self) -> str:
        return self.out_path.read_text()

    def stop(self, sig: int = signal.SIGINT, timeout: float = 60) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return code, self.output()


def start_supervisor(directory: Path, *only: str) -> Supervisor:
    out_path = directory / f"supervisor-{time.monotonic_ns()}.out"
    args: list[str] = []
    for node_id in only:
        args += ["--only", node_id]
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            ledgercore("cluster", "--dir", directory, *args), cwd=ROOT, env=ENV, stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    sup = Supervisor(proc, out_path, {})
    try:
        wait_until(lambda: "ready:" in sup.output() or proc.poll() is not None, 60, "the cluster to be ready")
        assert proc.poll() is None, sup.output()
    except BaseException:
        proc.kill()
        raise
    sup.pids = {m[1]: int(m[2]) for m in re.finditer(r"^(\S+) pid=(\d+) client=", sup.output(), re.M)}
    return sup


@dataclass
class NodeProc:
    """A ``ledgercore node`` process started by a test (outside any supervisor)."""

    id: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def start_node(config: Path) -> NodeProc:
    log = config.parent / "node-restarted.log"
    with open(log, "ab") as f:
        proc = subprocess.Popen(ledgercore("node", "--config", config), cwd=ROOT, env=ENV, stdout=f, stderr=f)
    return NodeProc(config.parent.name, proc, log)


def kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (dead, not yet reaped by its supervisor) counts as dead.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return True


def make_txs(n: int, senders: int = 64) -> list[bytes]:
    """``n`` signed ``evidence.put`` transactions from fresh senders, each anchoring a key no other
    call uses (so every receipt is ok)."""
    kps = [signing.generate("ed25519") for _ in range(min(n, senders))]
    tag = os.urandom(6).hex()
    return [
        Transaction.create(kps[i % len(kps)], "evidence", "put", {"key": f"t/{tag}/{i}", "digest": os.urandom(32)},
                           i // len(kps) + 1, chain_id=CHAIN).encode()
        for i in range(n)
    ]  # fmt: skip


def submit_all(
    clients: Sequence[Client], raws: Sequence[bytes], *, wait: bool = True, threads: int = 16
) -> list[dict[str, Any]]:
    """Submits each transaction through ``clients[i % len]``, retrying while the node is unavailable."""

    def one(i: int) -> dict[str, Any]:
        for _attempt in range(100):
            try:
                return clients[i % len(clients)].submit(raws[i], wait=wait)
            except UnavailableError as exc:
                time.sleep(exc.retry_after or 0.2)
        raise AssertionError(f"transaction {i} never admitted")

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(len(raws))))


def bulk_submit(urls: Sequence[str], raws: Sequence[bytes], tls: ssl.SSLContext, concurrency: int = 64) -> None:
    """Posts every transaction without waiting for commits, round robin over ``urls``, over keep-alive
    connections (aiohttp): far faster than one urllib connection per transaction. Retries 503."""

    async def main() -> None:
        connector = aiohttp.TCPConnector(limit=concurrency, ssl=tls)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:

            async def worker(k: int) -> None:
                for i in range(k, len(raws), concurrency):
                    for _ in range(300):
                        async with session.post(urls[i % len(urls)] + "/tx", data=raws[i]) as resp:
                            if resp.status != 503:
                                assert resp.status == 202, (resp.status, await resp.text())
                                break
                        await asyncio.sleep(0.1)
                    else:
                        raise AssertionError(f"transaction {i} never admitted")

            await asyncio.gather(*(worker(k) for k in range(concurrency)))

    asyncio.run(main())


class CommitCounter:
    """Counts the transactions in one node's blocks, fetching each block once."""

    def __init__(self, client: Client) -> None:
        self.client, self.counts = client, [0]

    def __call__(self) -> int:
        top = self.client.status()["height"]
        for h in range(len(self.counts), top + 1):
            self.counts.append(self.client.block(h)["header"]["tx_count"])
        return sum(self.counts)


def statuses(clients: Sequence[Client]) -> list[dict[str, Any]]:
    return [c.status() for c in clients]


def current_leader(clients: Sequence[Client]) -> str | None:
    """The node every given node names as leader, if they agree and it says it leads."""
    sts = []
    for c in clients:
        try:
            sts.append(c.status())
        except ClientError:
            return None
    leaders = {s["leader"] for s in sts}
    if len(leaders) != 1 or None in leaders:
        return None
    (leader,) = leaders
    return leader if any(s["node"] == leader and s["role"] == "leader" for s in sts) else None


def wait_same_height(clients: Sequence[Client], at_least: int, timeout: float = 30) -> int:
    seen: list[int] = []

    def same() -> int | None:
        seen[:] = [s["height"] for s in statuses(clients)]
        return seen[0] if len(set(seen)) == 1 and seen[0] >= at_least else None

    try:
        h: int = wait_until(same, timeout, f"every node at one height >= {at_least}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; heights last seen {seen}") from None
    return h


def assert_identical_chains(clients: Sequence[Client], height: int) -> list[dict[str, Any]]:
    """Every node holds the same block (hash, state root, txids) at each height 1..height; returns
    the first node's blocks."""
    blocks = []
    for h in range(1, height + 1):
        got = [c.block(h) for c in clients]
        first = got[0]
        for other in got[1:]:
            assert other["header"] == first["header"], f"height {h} differs"
            assert other["txids"] == first["txids"], f"height {h} txids differ"
        assert first["header"]["height"] == h
        blocks.append(first)
    sts = statuses(clients)
    assert len({(s["height"], s["block_hash"], s["state_root"]) for s in sts}) == 1, sts
    return blocks


def http(
    tls: ssl.SSLContext, url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """Raw HTTPS: (status, parsed JSON body), whatever the status."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30, context=tls) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            assert exc.headers.get_content_type() == "application/json", exc.headers
            return exc.code, json.loads(exc.read())


# -- the shared 3-node cluster ------------------------------------------------------------------


@dataclass
class Cluster:
    dir: Path
    info: dict[str, Any]
    supervisor: Supervisor
    clients: dict[str, Client]
    configs: dict[str, Path]
    tls: ssl.SSLContext
    extra: list[NodeProc] = field(default_factory=list)

    @property
    def all_clients(self) -> list[Client]:
        return list(self.clients.values())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    d = tmp_path_factory.mktemp("cluster")
    info = init_cluster(d, 3)
    sup = start_supervisor(d)
    c = Cluster(
        d, info, sup, clients_of(info), {n["id"]: Path(n["config"]) for n in info["nodes"]}, client_tls(info),
    )  # fmt: skip
    try:
        wait_until(lambda: current_leader(c.all_clients), 30, "a leader")
        yield c
    except BaseException:
        dump_logs(d)
        raise
    finally:
        if sup.proc.poll() is None:
            sup.stop()
        for n in c.extra:
            if n.proc.poll() is None:
                n.proc.kill()
                n.proc.wait()
        for pid in sup.pids.values():
            kill_pid(pid)


@pytest.fixture(autouse=True)
def _node_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a failed test on the shared cluster, prints the end of its node logs."""
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed and "cluster" in request.fixturenames:
        dump_logs(request.getfixturevalue("cluster").dir)


def test_init_cluster_writes_ca_nodes_client_and_cluster_file(cluster: Cluster) -> None:
    d, info = cluster.dir, cluster.info
    assert [n["id"] for n in info["nodes"]] == ["node1", "node2", "node3"]
    assert stat.S_IMODE(os.stat(d / "ca.key").st_mode) == 0o600
    ca = pki.load_certificate(d / "ca.crt")
    ports = []
    for n in info["nodes"]:
        nd = d / n["id"]
        assert sorted(p.name for p in nd.glob("*.crt")) == ["ca.crt", "node.crt"]
        assert stat.S_IMODE(os.stat(nd / "node.key").st_mode) == 0o600
        assert not (nd / "ca.key").exists()
        cfg = NodeConfig.load(n["config"])
        assert (cfg.id, cfg.suite, cfg.chain_id, cfg.host) == (n["id"], SUITE, CHAIN, "127.0.0.1")
        assert cfg.client_url == n["client_url"] and cfg.client_port == cfg.port + 1
        assert {p.id for p in cfg.peers} == {m["id"] for m in info["nodes"]} - {cfg.id}
        assert pki.load_certificate(cfg.tls.cert).issuer == ca.subject
        assert pki.load_credentials(cfg.tls.cert, cfg.tls.key).common_name == cfg.id
        ports += [cfg.port, cfg.client_port]
    assert ports == list(range(ports[0], ports[0] + 6))
    client = pki.load_credentials(d / "client" / "client.crt", d / "client" / "client.key")
    assert client.cert.issuer == ca.subject
    # A second init into the same directory is refused and changes nothing.
    before = (d / "ca.crt").read_bytes()
    out = subprocess.run(ledgercore("init-cluster", "--nodes", 3, "--dir", d), cwd=ROOT, env=ENV,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 2 and "already holds cluster.json, ca.crt, ca.key, client, node1" in out.stderr
    assert (d / "ca.crt").read_bytes() == before


def test_every_node_accepts_and_all_agree_block_by_block(cluster: Cluster) -> None:
    clients = cluster.all_clients
    raws = make_txs(300)
    answers = submit_all(clients, raws)  # node i%3: two of three go through a follower
    expected = {Transaction.decode(r).id.hex() for r in raws}
    assert {a["txid"] for a in answers} == expected
    assert all(isinstance(a["height"], int) and a["height"] >= 1 for a in answers)
    top = max(a["height"] for a in answers)
    height = wait_same_height(clients, top)
    blocks = assert_identical_chains(clients, height)
    for a in answers:  # each acknowledged transaction is in the block its answer named
        assert a["txid"] in blocks[a["height"] - 1]["txids"]
    # Chain links as the headers say.
    for prev, blk in zip(blocks, blocks[1:]):
        assert blk["header"]["prev_hash"] == prev["header"]["hash"]
    # State through a follower: the key each transaction wrote.
    leader = current_leader(clients)
    follower = next(c for name, c in cluster.clients.items() if name != leader)
    tx = Transaction.decode(raws[0])
    got = follower.get("evidence", tx.args["key"])
    assert got["value"] is not None and got["version"]["height"] >= 1


def test_state_keys_are_read_byte_for_byte(cluster: Cluster) -> None:
    # A key is percent-decoded to bytes: "%FF" is the byte 0xff (no key here), never the text
    # "%FF", which is another key of its own.
    kp = signing.generate("ed25519")
    keys = ["%FF", "证照/许可 1"]
    raws = [
        Transaction.create(kp, "evidence", "put", {"key": k, "digest": bytes([i]) * 32}, i + 1, chain_id=CHAIN).encode()
        for i, k in enumerate(keys)
    ]  # fmt: skip
    url = cluster.info["nodes"][2]["client_url"]
    c = Client(url, timeout=60, tls=cluster.tls)
    for raw in raws:
        c.submit(raw, wait=True)
    wait_same_height(cluster.all_clients, c.status()["height"])
    for escape in ("%ff", "%FF"):
        assert http(cluster.tls, url + "/state/evidence/" + escape)[1] == {"value": None, "version": None}
    assert http(cluster.tls, url + "/state/evidence/%25FF")[1]["value"] is not None
    for k in keys:
        by_text, by_bytes = c.get("evidence", k), c.get("evidence", k.encode())
        assert by_text == by_bytes and by_text["value"] is not None


def test_linearizable_reads_on_followers_see_every_write_acknowledged_before(cluster: Cluster) -> None:
    # A write acknowledged by the leader, then read at once on each follower: a linearizable read
    # waits until the follower has applied it (a local read may answer before).
    clients = cluster.all_clients
    leader = wait_until(lambda: current_leader(clients), 10, "a leader")
    followers = [c for name, c in cluster.clients.items() if name != leader]
    kp = signing.generate("ed25519")
    for nonce in range(1, 6):
        key = f"linearizable/{nonce}"
        raw = Transaction.create(kp, "evidence", "put", {"key": key, "digest": bytes([nonce]) * 32}, nonce,
                                 chain_id=CHAIN).encode()  # fmt: skip
        answer = cluster.clients[leader].submit(raw, wait=True)
        assert answer["receipt"] == {"ok": True, "error": None}
        for f in followers:
            got = f.get("evidence", key, linearizable=True)
            assert got["value"] is not None and got["version"]["height"] == answer["height"], (f, got)
            assert f.tx(answer["txid"], linearizable=True)["height"] == answer["height"]
            assert answer["txid"] in f.block(answer["height"], linearizable=True)["txids"]


def test_proofs_from_a_follower_verify_against_the_block_tx_root(cluster: Cluster) -> None:
    clients = cluster.all_clients
    raws = make_txs(200)
    answers = submit_all(clients, raws)
    leader = wait_until(lambda: current_leader(clients), 10, "a leader")
    follower = next(c for name, c in cluster.clients.items() if name != leader)
    wait_same_height(clients, max(a["height"] for a in answers))
    for raw, a in zip(raws, answers):
        rec = follower.tx(a["txid"])
        txid = bytes.fromhex(a["txid"])
        assert rec["height"] == a["height"] and rec["receipt"] == {"ok": True, "error": None, "events": []}
        assert bytes.fromhex(rec["raw"]) == raw
        proof = [bytes.fromhex(p) for p in rec["proof"]]
        root = bytes.fromhex(rec["tx_root"])
        assert merkle.verify_inclusion(txid, rec["index"], rec["tx_count"], proof, root, HASH)
        # The root is the one in the block header, on the leader too.
        header = cluster.clients[leader].block(rec["height"])["header"]
        assert header["tx_root"] == rec["tx_root"] and header["tx_count"] == rec["tx_count"]
        # A proof for another leaf does not verify.
        if rec["tx_count"] > 1:
            other = (rec["index"] + 1) % rec["tx_count"]
            assert not merkle.verify_inclusion(txid, other, rec["tx_count"], proof, root, HASH)


def test_a_follower_proves_a_transactions_outcome_against_the_block_header(cluster: Cluster) -> None:
    # An inclusion proof says a transaction is in a block, not whether it succeeded: a second
    # anchoring of one key (refused) was provable exactly as a first (ok).
    clients = cluster.all_clients
    kp = signing.generate("ed25519")
    key = f"twice/{os.urandom(6).hex()}"
    put = [Transaction.create(kp, "evidence", "put", {"key": key, "digest": bytes([n]) * 32}, n, chain_id=CHAIN).encode()
           for n in (1, 2)]  # fmt: skip
    answers = [clients[0].submit(raw) for raw in put]
    leader = wait_until(lambda: current_leader(clients), 10, "a leader")
    follower = next(c for name, c in cluster.clients.items() if name != leader)
    wait_same_height(clients, max(a["height"] for a in answers))
    outcomes = []
    for a in answers:
        rec = follower.tx(a["txid"])
        header = header_of(follower.block(rec["height"]), rec["height"])
        assert header.hash.hex() == cluster.clients[leader].block(rec["height"])["header"]["hash"]
        record = bytes.fromhex(follower.block_receipts(rec["height"])["record"])
        outcomes.append(verify_receipt(record, rec["index"], header))
        assert verify_receipt(record + b"\0", rec["index"], header) is None  # not the block's record
    assert outcomes[0] == Receipt(True) and outcomes[1] is not None and not outcomes[1].ok
    assert "already anchored" in str(outcomes[1].error)


def test_bad_input_gets_json_4xx_errors(cluster: Cluster) -> None:
    url = cluster.info["nodes"][1]["client_url"]
    good = Transaction.decode(make_txs(1)[0])
    forged = good.encode()[:-64] + bytes(64)  # a signature that cannot verify
    kp = signing.generate("ed25519")
    wrong_chain = Transaction.create(kp, "evidence", "put", {"key": "k", "digest": bytes(32)}, 1, chain_id="other")
    cases: list[tuple[str, str, bytes | None, int, str]] = [
        ("POST", "/tx", b"not a transaction", 400, "version"),
        ("POST", "/tx", b"", 400, "empty"),
        ("POST", "/tx", forged, 400, "signature"),
        ("POST", "/tx", wrong_chain.encode(), 400, "chain"),
        ("POST", "/tx", good.encode()[:-1], 400, ""),
        ("POST", "/tx?wait=soon", good.encode(), 400, "wait"),
        ("POST", "/tx", bytes(MAX_BODY + 1), 413, "too large"),
        ("GET", "/block/abc", None, 400, "height"),
        ("GET", "/block/-1", None, 400, "height"),
        ("GET", "/block/99999999", None, 404, "no block"),
        ("GET", "/tx/xyz", None, 400, "hex"),
        ("GET", "/tx/" + "00" * 31, None, 400, "hex"),
        ("GET", "/tx/" + "00" * 32, None, 404, "no committed transaction"),
        ("GET", "/state/evidence/" + "k" * 447, None, 400, "key must be 1..446 bytes"),
        ("GET", "/state/Evidence/k", None, 400, "contract name"),
        ("GET", "/state/evidence/k?read=soon", None, 400, "read="),
        ("GET", "/block/1?read=", None, 400, "read="),
        # A query parameter given twice, or one the route does not know, is named (the first of two
        # won, and a mistyped one was ignored: ?wiat=commit submitted without waiting).
        ("POST", "/tx?wait=commit&wait=soon", good.encode(), 400, "query parameter 'wait' given more than once"),
        ("POST", "/tx?wiat=commit", good.encode(), 400, "unknown query parameter 'wiat' for post /tx (it takes: wait)"),
        ("POST", "/txs?read=local", good.encode(), 400, "unknown query parameter 'read'"),
        ("GET", "/block/0?read=linearizable&read=local", None, 400, "query parameter 'read' given more than once"),
        ("GET", "/tx/" + "00" * 32 + "?wait=commit", None, 400, "unknown query parameter 'wait'"),
        ("GET", "/status?verbose=1", None, 400, "unknown query parameter 'verbose' for get /status (it takes: none)"),
        # A '%' in a state key that is not an escape is refused (it was read as itself).
        ("GET", "/state/evidence/%zz", None, 400, "bad percent-escape '%zz' in the key"),
        ("GET", "/state/evidence/k%2", None, 400, "bad percent-escape '%2' in the key"),
        ("GET", "/nowhere", None, 404, "no route"),
        ("DELETE", "/tx", None, 405, "not allowed"),
        ("GET", "/tx", None, 405, "not allowed"),
    ]
    for method, path, body, status, words in cases:
        got_status, got = http(cluster.tls, url + path, method, body)
        assert got_status == status, (path, got)
        assert set(got) == {"error"} and words in got["error"].lower(), (path, got)
    # Compressed bodies are never unpacked (a 1 MB gzip body unpacked to a gigabyte on the event
    # loop, and a leader doing so lost its leadership); an expectation other than 100-continue is
    # refused as JSON too (aiohttp answered text/plain).
    for method, path, headers, body, status, words in [
        ("POST", "/tx", {"Content-Encoding": "gzip"}, gzip.compress(bytes(10 << 20)), 415, "content-encoding 'gzip' is not accepted"),
        ("POST", "/tx", {"Content-Encoding": "deflate"}, b"hello", 415, "content-encoding 'deflate' is not accepted"),
        ("POST", "/tx", {"Expect": "a-miracle"}, good.encode(), 417, "unknown expect: a-miracle"),
        ("GET", "/status", {"Expect": "a-miracle"}, None, 417, "unknown expect: a-miracle"),
        ("GET", "/block/0", {"Expect": "a-miracle"}, None, 417, "unknown expect: a-miracle"),
    ]:
        got_status, got = http(cluster.tls, url + path, method, body, headers)
        assert (got_status, set(got)) == (status, {"error"}) and words in got["error"].lower(), (headers, got)
    # Unknown state is not an error: null value and version.
    assert http(cluster.tls, url + "/state/evidence/no/such/key")[1] == {"value": None, "version": None}
    # The client turns them into typed errors carrying the node's message.
    c = Client(url, tls=cluster.tls)
    with pytest.raises(RequestRejectedError, match="signature") as info:
        c.submit(forged)
    assert isinstance(info.value, ValueError) and info.value.status == 400 and not info.value.retryable
    with pytest.raises(RemoteNotFoundError, match="no block") as nf:
        c.block(99999999)
    assert isinstance(nf.value, KeyError) and nf.value.status == 404
    with pytest.raises(RemoteNotFoundError):
        c.tx(bytes(32))
    with pytest.raises(RequestRejectedError) as big:
        c.submit(bytes(MAX_BODY + 1))
    assert big.value.status == 413
    with pytest.raises(InvalidInputError):
        c.tx(42)  # type: ignore[arg-type]
    # A node that is not there: retryable, no status.
    with pytest.raises(UnavailableError) as down:
        Client(f"https://127.0.0.1:{free_base_port(1)}", timeout=5, tls=cluster.tls).status()
    assert down.value.retryable and down.value.status is None
    # And the node still works after all that.
    assert c.submit(good.encode())["txid"] == good.id.hex()


def test_a_batch_goes_in_one_request_through_a_follower(cluster: Cluster) -> None:
    clients = cluster.all_clients
    leader = wait_until(lambda: current_leader(clients), 10, "a leader")
    follower = next(c for n, c in cluster.clients.items() if n != leader)
    raws = make_txs(600)
    forged = raws[5][:-64] + bytes(64)
    batch = raws[:5] + [forged] + raws[5:]
    out = follower.submit_many(batch, wait=True)
    assert out["rejected"] == [{"index": 5, "error": "invalid signature"}]
    assert out["txids"] == [Transaction.decode(r).id.hex() for r in batch]
    heights = out["heights"]
    assert heights[5] is None and all(isinstance(h, int) and h >= 1 for i, h in enumerate(heights) if i != 5)
    assert out["receipts"] == [None if i == 5 else {"ok": True, "error": None} for i in range(len(batch))]
    # The node that answered holds each one at the height it named, with an ok receipt.
    for i in (0, 4, 6, 300, 600):
        rec = follower.tx(out["txids"][i])
        assert rec["height"] == heights[i] and rec["receipt"]["ok"]
    # Without waiting: admitted (202), then committed like any other.
    more = make_txs(50)
    quick = follower.submit_many(iter(more), wait=False)  # any iterable, read once
    assert quick["rejected"] == [] and "heights" not in quick and len(quick["txids"]) == 50
    wait_until(lambda: all(_committed(follower, t) for t in quick["txids"]), 30, "the unwaited batch to commit")
    wait_same_height(clients, max(h for h in heights if h is not None))
    # Bad batches: 400 with what is wrong, and nothing of them admitted.
    url = follower.url
    junk = make_txs(2)
    cases: list[tuple[str, bytes, int, str]] = [
        ("/txs", encode_value([junk[0], b"not a transaction"]), 400, "transaction 1"),
        ("/txs", encode_value([]), 400, "no transactions"),
        ("/txs", encode_value({"txs": junk}), 400, "list of byte strings"),
        ("/txs", encode_value(["text"]), 400, "list of byte strings"),
        ("/txs", b"\xff\xff", 400, ""),
        ("/txs", b"", 400, "empty"),
        ("/txs?wait=later", encode_value(junk), 400, "wait"),
        ("/txs", encode_value([junk[0]] * (MAX_SUBMIT_BATCH + 1)), 400, f"at most {MAX_SUBMIT_BATCH}"),
        # Refused by the count in its header, before decoding (millions of empty strings fit 32 MB).
        ("/txs", b"\x06\xff\xff\xff\xff", 400, f"4294967295 transactions in one batch; at most {MAX_SUBMIT_BATCH}"),
    ]
    for path, body, status, words in cases:
        got_status, got = http(cluster.tls, url + path, "POST", body)
        assert got_status == status, (path, got)
        assert set(got) == {"error"} and words in got["error"].lower(), (path, got)
    assert not any(_committed(follower, Transaction.decode(r).id.hex()) for r in junk)
    with pytest.raises(RequestRejectedError, match="transaction 1"):
        follower.submit_many([junk[0], b"nope"])
    with pytest.raises(InvalidInputError):
        follower.submit_many(junk[0])  # type: ignore[arg-type]


def test_large_transactions_split_into_blocks_that_fit_a_frame(cluster: Cluster) -> None:
    # Batches of 34 transactions of ~0.9 MB, ~30 MB each (a transport frame holds 16 MB). A block of
    # all of them could not be sent to any follower: the leader's block cutter died on it and the
    # chain stopped. Through a follower, its forward to the leader must be split too.
    clients = cluster.all_clients
    leader = wait_until(lambda: current_leader(clients), 10, "a leader")
    follower = next(c for n, c in cluster.clients.items() if n != leader)
    big = _large_txs(68)
    for via, batch in ((cluster.clients[leader], big[:34]), (follower, big[34:])):
        out = via.submit_many(batch, wait=True)
        assert out["rejected"] == [] and all(isinstance(h, int) for h in out["heights"])
    height = wait_same_height(clients, 1)
    assert_identical_chains(clients, height)
    # Execution refused each (evidence.put takes no "blob"), but every one was ordered and committed.
    rec = follower.tx(Transaction.decode(big[20]).id.hex())
    assert not rec["receipt"]["ok"] and "unexpected argument" in rec["receipt"]["error"]
    # The chain goes on: a small transaction commits everywhere.
    h = cluster.clients[leader].submit(make_txs(1)[0])["height"]
    wait_same_height(clients, h)


def _large_txs(n: int, first_nonce: int = 1) -> list[bytes]:
    """``n`` transactions of ~0.9 MB each from one fresh sender (execution refuses the "blob"
    argument, so each gets a failed receipt, but every one is ordered and committed)."""
    kp = signing.generate("ed25519")
    return [
        Transaction.create(
            kp, "evidence", "put", {"key": f"big/{i}", "digest": bytes(32), "blob": bytes(900_000)}, i, chain_id=CHAIN
        ).encode()
        for i in range(first_nonce, first_nonce + n)
    ]  # fmt: skip


def test_a_node_catches_up_by_snapshot_through_blocks_larger_than_a_frame_together(tmp_path: Path) -> None:
    # Sync answers carried up to 64 blocks in one frame; blocks of large transactions made an
    # answer no frame could carry, and the late node asked again forever. ~60 MB in ~8 blocks.
    _missed_transactions_catch_up_by_snapshot(tmp_path, _large_txs(68), "--snapshot-every", "2")


def _committed(client: Client, txid: str) -> bool:
    try:
        client.tx(txid)
    except RemoteNotFoundError:
        return False
    return True


def _tls_exchange(ctx: ssl.SSLContext, port: int, server_hostname: str) -> str:
    """Connects, handshakes, sends a frame and reads: how the attempt ended."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
                # TLS 1.3: the client's side of the handshake ends before the server checks the
                # client's certificate; the refusal arrives as an alert on the first read.
                tls.sendall(encode_frame(b"let me in"))
                data = tls.recv(1)
                return "closed" if data == b"" else f"answered {data!r}"
        except ssl.SSLError as exc:
            return f"ssl error: {exc}"
        except ConnectionError as exc:
            return f"connection error: {exc}"


def test_a_node_that_cannot_start_is_reported_and_the_cluster_never_reads_ready(tmp_path: Path) -> None:
    d = tmp_path / "c"
    info = init_cluster(d, 3)
    broken = info["nodes"][2]
    # Its process exits at once: its key is gone. (A config that does not parse is refused before
    # any node starts: tests/test_node_config.py.)
    (Path(broken["config"]).parent / "node.key").unlink()
    out_path = tmp_path / "supervisor.out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            ledgercore("cluster", "--dir", d), cwd=ROOT, env=ENV, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_until(lambda: "died unexpectedly" in out_path.read_text(), 60, "the broken node to be reported")
        time.sleep(1.0)  # had the supervisor taken the two live nodes for the whole cluster, it says so now
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out_path.read_text()
    assert f"{broken['id']} pid=" in text and "died unexpectedly: exit status" in text, text
    assert "ready:" not in text, text
    assert code == 1, text  # a node died: the supervisor does not report a clean run


def test_a_node_that_cannot_be_started_is_named_in_one_line_and_the_others_stopped(tmp_path: Path) -> None:
    init_cluster(tmp_path, 2)
    (tmp_path / "node2" / "node.log").mkdir()  # its log cannot be opened
    out = subprocess.run(ledgercore("cluster", "--dir", tmp_path), cwd=ROOT, env=ENV, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 2, out
    assert "Traceback" not in out.stderr, out.stderr
    assert f"ledgercore cluster: cannot start node2: [Errno {errno.EISDIR}]" in out.stderr, out.stderr
    started = re.search(r"^node1 pid=(\d+) client=", out.stdout, re.M)
    assert started, out.stdout
    # node1 was asked to stop (SIGTERM: it stops, or dies of it while still starting), not SIGKILLed.
    assert "node1 stopped" in out.stdout or "stopped with killed by SIGTERM" in out.stderr, out
    assert not pid_alive(int(started[1]))


def test_run_cluster_refuses_timeouts_that_are_not_positive_finite_seconds(tmp_path: Path) -> None:
    init_cluster(tmp_path, 1)
    cluster = load_cluster(tmp_path)
    tls = cluster.client_context()
    for kw in ({"ready_timeout": math.nan}, {"stop_timeout": -1.0}, {"stop_timeout": math.inf}, {"ready_timeout": True}):
        with pytest.raises(InvalidInputError, match=f"{next(iter(kw))} must be a positive finite number of seconds"):
            run_cluster(cluster, tls, **kw)
    assert not (tmp_path / "node1" / "node.log").exists()  # no node was started


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGQUIT], ids=lambda s: signal.Signals(s).name)
def test_sighup_or_sigquit_stops_the_nodes_like_ctrl_c(tmp_path: Path, sig: int) -> None:
    # Nodes run in sessions of their own: a closed terminal's SIGHUP reaches only the supervisor,
    # which must stop them, not die and leave them running.
    init_cluster(tmp_path, 1)
    sup = start_supervisor(tmp_path)
    try:
        code, out = sup.stop(sig)
        assert f"{signal.Signals(sig).name}: stopping 1 nodes" in out and "node1 stopped" in out, out
        assert code == 0, out
        assert not pid_alive(sup.pids["node1"])
    finally:
        if pid_alive(sup.pids["node1"]):  # an orphan the test must not leave behind
            kill_pid(sup.pids["node1"])


def test_sighup_after_the_terminal_closed_stops_the_nodes_cleanly(tmp_path: Path) -> None:
    # The supervisor's terminal gone, every write to it fails (EIO): its "SIGHUP: stopping" line
    # raised, and the nodes were SIGKILLed on the way out.
    init_cluster(tmp_path, 1)
    terminal, tty = pty.openpty()
    sup = subprocess.Popen(
        [sys.executable, "-m", "ledgercore", "cluster", "--dir", str(tmp_path)], stdin=subprocess.DEVNULL,
        stdout=tty, stderr=tty, start_new_session=True,
    )  # fmt: skip
    os.close(tty)
    said = b""
    deadline = time.monotonic() + 120
    while b"ready" not in said and time.monotonic() < deadline and sup.poll() is None:
        with contextlib.suppress(OSError):
            said += os.read(terminal, 4096)
    pid = int(re.search(rb"node1 pid=(\d+)", said)[1])  # type: ignore[index]
    try:
        assert b"ready" in said, said
        os.close(terminal)  # the terminal closes, then its hangup reaches the supervisor
        sup.send_signal(signal.SIGHUP)
        assert sup.wait(60) == 0
        assert "stopped" in (tmp_path / "node1" / "node.log").read_text()  # its own clean stop, not a SIGKILL
        assert not pid_alive(pid)
    finally:
        if sup.poll() is None:
            sup.kill()
        if pid_alive(pid):
            kill_pid(pid)


def test_transport_refuses_a_certificate_from_another_ca(cluster: Cluster, tmp_path: Path) -> None:
    cfg = NodeConfig.load(cluster.configs["node1"])
    foreign = pki.create_ca("intruders")
    forged = pki.write_tls_files(tmp_path / "forged", foreign, pki.issue_node_certificate(foreign, "node2"))
    # Trusts the real CA (so the server passes) but presents a node2 certificate from another CA.
    ctx = pki.client_context(cfg.tls.ca_cert, forged.cert, forged.key)
    outcome = _tls_exchange(ctx, cfg.port, "node1")
    assert outcome == "closed" or "error" in outcome, outcome
    # The consortium's own client certificate cannot pose as a node on the transport either.
    client = cluster.dir / "client"
    ctx = pki.client_context(client / "ca.crt", client / "client.crt", client / "client.key")
    outcome = _tls_exchange(ctx, cfg.port, "node1")
    assert outcome == "closed" or "error" in outcome, outcome
    # A client trusting only the foreign CA refuses the node's certificate itself.
    ctx = pki.client_context(forged.ca_cert, forged.cert, forged.key)
    outcome = _tls_exchange(ctx, cfg.port, "node1")
    assert "certificate verify failed" in outcome, outcome
    log = cluster.dir / "node1" / "node.log"
    wait_until(lambda: log.read_text().count("refused connection") >= 2, 10, "node1 logging the refusals")
    assert "unknown ca" in log.read_text().lower() or "certificate" in log.read_text()
    assert current_leader(cluster.all_clients) is not None  # the cluster did not notice


def _refusals(log: Path, start: int, count: int) -> list[str] | None:
    """The client API's refusals logged after byte ``start`` of ``log``, once there are ``count``."""
    with log.open("rb") as f:
        f.seek(start)
        lines = [ln for ln in f.read().decode(errors="replace").splitlines() if "client API: refused connection" in ln]
    return lines if len(lines) >= count else None


def test_the_client_api_refuses_clients_without_a_valid_consortium_certificate(cluster: Cluster, tmp_path: Path) -> None:
    url = cluster.info["nodes"][0]["client_url"]
    log = cluster.dir / "node1" / "node.log"
    logged = log.stat().st_size
    ours = pki.TLSFiles.from_dict(cluster.info["client_tls"])
    ca = pki.load_credentials(cluster.dir / "ca.crt", cluster.dir / "ca.key")
    foreign = pki.create_ca("intruders")
    forged = pki.write_tls_files(tmp_path / "forged", foreign, pki.issue_client_certificate(foreign, "client"), stem="c")
    last_month = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
    expired = pki.write_tls_files(
        tmp_path / "expired", ca, pki.issue_client_certificate(ca, "client", not_before=last_month,
                                                               validity=datetime.timedelta(days=1)), stem="c",
    )  # fmt: skip
    # As contexts, so that the client does not check them first: the node itself refuses each one.
    refused = {
        "a certificate from another CA": pki.client_context(ours.ca_cert, forged.cert, forged.key),
        "an expired certificate from the consortium CA": expired.client_context(),
        "no certificate": pki.client_context(ours.ca_cert),
    }
    raw = make_txs(1)[0]
    for what, tls in refused.items():
        c = Client(url, timeout=10, tls=tls)
        for call, args in ((c.status, ()), (c.submit, (raw, False))):
            with pytest.raises(UnavailableError, match="closed|reset|EOF") as exc:
                call(*args)  # type: ignore[operator]
            assert exc.value.status is None and "refuses the client's certificate" in str(exc.value), (what, exc.value)
    # Given as files, the client names what is wrong before it connects.
    with pytest.raises(InvalidInputError, match="forged/c.crt is not issued by the CA in .*client/ca.crt"):
        Client(url, tls=pki.TLSFiles(ours.ca_cert, forged.cert, forged.key))
    with pytest.raises(InvalidInputError, match=r"c.crt expired on .*: issue this client a new certificate"):
        Client(url, tls=expired)
    # This client's own check: the node's certificate is not from the CA it trusts.
    with pytest.raises(TLSRefusedError, match="certificate verify failed.*not issued by the CA this client trusts") as bad:
        Client(url, timeout=10, tls=forged).status()
    assert not bad.value.retryable
    # Plain HTTP gets no answer either.
    with pytest.raises(UnavailableError, match="a node does this to plain HTTP: its API is https"):
        Client(url.replace("https://", "http://"), timeout=10).status()
    # The node's log names each refusal: the three certificates twice each, the client that did
    # not trust the node's (its alert), then plain HTTP.
    refusals = wait_until(lambda: _refusals(log, logged, 8), 10, "node1 logging the refused clients")
    for why in ("unable to get local issuer certificate", "certificate has expired",
                "peer did not return a certificate", "alert unknown ca", "http request"):  # fmt: skip
        assert any(why in r for r in refusals), (why, refusals)
    # Nothing they sent was admitted; a node's own certificate is a consortium certificate too.
    node2 = Client(url, tls=pki.TLSFiles.in_dir(cluster.dir / "node2"))
    assert node2.status()["node"] == "node1"
    time.sleep(1.0)  # a block cut from anything admitted would be committed by now
    with pytest.raises(RemoteNotFoundError):
        cluster.clients["node1"].tx(Transaction.decode(raw).id, linearizable=True)
    # A client that goes away in the middle of its body gets no answer, and logs nothing at ERROR.
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw_sock:
        with cluster.tls.wrap_socket(raw_sock, server_hostname="127.0.0.1") as conn:
            conn.sendall(b"POST /tx HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + bytes(10))
    # HTTP that does not parse, from a client with a good certificate, is answered 400.
    for request in (b"GET /status HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
                    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"):  # fmt: skip
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw_sock:
            with cluster.tls.wrap_socket(raw_sock, server_hostname="127.0.0.1") as conn:
                conn.sendall(request)
                assert conn.recv(64).startswith(b"HTTP/1.0 400 Bad Request"), request[:40]
    # Neither refused handshakes nor requests that do not parse are failures of the node: no
    # traceback and nothing at ERROR (a client could fill the log), a warning for the latter.
    def logged_since() -> str:
        with open(log, "rb") as f:
            f.seek(logged)
            return f.read().decode(errors="replace")

    text = wait_until(lambda: (t := logged_since()).count("Error handling request") >= 2 and t, 10, "the warnings")
    assert "Traceback" not in text and " ERROR " not in text, text
    assert "WARNING node1 ledgercore.node.http.requests: Error handling request from 127.0.0.1: 400 " in text, text
    assert current_leader(cluster.all_clients) is not None


def test_sigkill_the_leader_under_load(cluster: Cluster) -> None:
    clients = cluster.clients
    leader = wait_until(lambda: current_leader(list(clients.values())), 10, "a leader")
    survivors = [name for name in clients if name != leader]
    raws = make_txs(6_000, senders=256)
    acked: dict[str, int] = {}
    lock = threading.Lock()
    stop = threading.Event()
    next_tx = iter(range(len(raws)))

    def load(worker: int) -> None:
        names = list(clients)
        while not stop.is_set():
            with lock:
                i = next(next_tx, None)
            if i is None:
                return
            c = clients[names[(worker + i) % len(names)]]  # every node, the leader too
            try:
                a = c.submit(raws[i], wait=True)
            except (UnavailableError, CommitTimeoutError, RequestRejectedError):
                continue  # not acknowledged: may or may not commit, nothing is promised
            with lock:
                acked[a["txid"]] = a["height"]

    pool = [threading.Thread(target=load, args=(w,), daemon=True) for w in range(24)]
    for t in pool:
        t.start()
    try:
        wait_until(lambda: len(acked) >= 300, 30, "load to flow")
        t_kill = time.monotonic()
        kill_pid(cluster.supervisor.pids[leader])
        wait_until(lambda: not pid_alive(cluster.supervisor.pids[leader]), 10, "the leader to die")
        new_leader = wait_until(lambda: current_leader([clients[s] for s in survivors]), 15, "a new leader")
        elected_after = time.monotonic() - t_kill
        assert new_leader in survivors
        assert elected_after < 10, elected_after
        acked_at_election = len(acked)
        wait_until(lambda: len(acked) >= acked_at_election + 300, 30, "commits under the new leader")
    finally:
        stop.set()
        for t in pool:
            t.join(60)
    assert len(acked) >= 600
    # The supervisor noticed.
    wait_until(lambda: f"{leader} pid={cluster.supervisor.pids[leader]} died unexpectedly: killed by SIGKILL"
               in cluster.supervisor.output(), 5, "the supervisor reporting the death")  # fmt: skip

    # Restart the killed node by hand; it catches up and every node agrees block by block.
    cluster.extra.append(start_node(cluster.configs[leader]))
    everyone = list(clients.values())
    top = max(acked.values())
    height = wait_same_height(everyone, top, timeout=60)
    blocks = assert_identical_chains(everyone, height)
    txids_at = {h + 1: set(b["txids"]) for h, b in enumerate(blocks)}
    lost = [t for t, h in acked.items() if t not in txids_at[h]]
    assert not lost, f"{len(lost)} acknowledged transactions lost"
    restarted = clients[leader]
    for t, h in random.sample(sorted(acked.items()), 50):
        assert restarted.tx(t)["height"] == h
    # Stop everything: the supervisor stops its two nodes cleanly, but says one had died (status 1).
    code, out = cluster.supervisor.stop(signal.SIGINT)
    assert code == 1, out
    assert sorted(re.findall(r"^(node\d) stopped$", out, re.M)) == sorted(survivors), out
    assert cluster.extra[-1].stop(signal.SIGINT) == 0  # Ctrl-C stops a node cleanly too
    print(f"new leader {new_leader} {elected_after:.2f}s after SIGKILL of {leader}; {len(acked)} acknowledged, none lost")


# -- catching up by snapshot ----------------------------------------------------------------------


def raft_log_bounds(config: Path) -> tuple[int, int]:
    """(first index, last index) of a stopped node's Raft log."""
    storage = DurableStorage(NodeConfig.load(config).data_dir / "raft")
    try:
        return storage.first_index(), storage.last_index()
    finally:
        storage.close()


def _missed_transactions_catch_up_by_snapshot(tmp_path: Path, raws: list[bytes], *cluster_args: str) -> None:
    """Node3 stays down while the other two commit ``raws``, then catches up by snapshot (its log
    compacted away: ``--snapshot-every 8`` unless ``cluster_args`` say otherwise)."""
    total = len(raws)
    info = init_cluster(tmp_path, 3, "--snapshot-every", "8", *cluster_args)
    configs = {n["id"]: Path(n["config"]) for n in info["nodes"]}
    clients = clients_of(info)
    # node3 stays down from the start: it misses everything the other two commit.
    sup = start_supervisor(tmp_path, "node1", "node2")
    late: NodeProc | None = None
    try:
        live = [clients["node1"], clients["node2"]]
        wait_until(lambda: current_leader(live), 30, "a leader among node1 and node2")
        _, node3_last = raft_log_bounds(configs["node3"])  # never started: its log ends at bootstrap
        t0 = time.monotonic()
        bulk_submit([c.url for c in live], raws, client_tls(info))
        count = CommitCounter(live[0])
        try:
            wait_until(lambda: count() == total, 120, f"all {total} transactions committed", interval=0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; {count()} committed") from None
        height = wait_same_height(live, 1)
        submitted_s = time.monotonic() - t0

        late = start_node(configs["node3"])
        t1 = time.monotonic()
        wait_same_height(list(clients.values()), height, timeout=120)
        caught_up_s = time.monotonic() - t1
        assert_identical_chains(list(clients.values()), height)
        for raw in random.sample(raws, 20):
            assert clients["node3"].tx(Transaction.decode(raw).id)["height"] >= 1
        # A fresh transaction through the late node commits everywhere.
        extra = make_txs(1)[0]
        h = clients["node3"].submit(extra)["height"]
        wait_same_height(list(clients.values()), h)

        code, out = sup.stop(signal.SIGINT)
        assert code == 0, out  # nothing died: every node it ran stopped cleanly
        assert sorted(re.findall(r"^(node\d) stopped$", out, re.M)) == ["node1", "node2"], out
        assert late.stop() == 0
        # The leader's log was compacted past everything node3 had, so node3 got a snapshot.
        first = min(raft_log_bounds(configs[n])[0] for n in ("node1", "node2"))
        assert first > node3_last + 1, (first, node3_last)
        print(f"{total} txs in {height} blocks: submitted+committed in {submitted_s:.1f}s, "
              f"node3 caught up in {caught_up_s:.1f}s")  # fmt: skip
    except BaseException:
        dump_logs(tmp_path)
        raise
    finally:
        if sup.proc.poll() is None:
            sup.stop()
        for pid in sup.pids.values():
            kill_pid(pid)
        if late is not None and late.proc.poll() is None:
            late.proc.kill()
            late.proc.wait()


def test_a_node_that_missed_thousands_of_transactions_catches_up_by_snapshot(tmp_path: Path) -> None:
    _missed_transactions_catch_up_by_snapshot(tmp_path, make_txs(3_000, senders=512), "--block-txs", "100")


@pytest.mark.slow
def test_a_node_that_missed_100k_transactions_catches_up_by_snapshot(tmp_path: Path) -> None:
    _missed_transactions_catch_up_by_snapshot(tmp_path, make_txs(100_000, senders=512), "--block-txs", "2000")


def test_a_node_stops_at_once_while_a_commit_wait_is_pending(tmp_path: Path) -> None:
    # The leader cannot commit (its followers are frozen with SIGSTOP) while a client waits on
    # ?wait=commit: SIGTERM must answer that client 503 and stop the node at once, not after the
    # 30 s commit wait.
    info = init_cluster(tmp_path, 3)
    procs = {n["id"]: start_node(Path(n["config"])) for n in info["nodes"]}
    clients = clients_of(info)
    try:
        wait_until(lambda: all(_ready(c) for c in clients.values()), 60, "every node's client API")
        leader = wait_until(lambda: current_leader(list(clients.values())), 30, "a leader")
        followers = [procs[name] for name in procs if name != leader]
        for f in followers:
            f.proc.send_signal(signal.SIGSTOP)
        answer: list[BaseException | dict[str, Any]] = []
        waiting = threading.Thread(target=lambda: answer.append(_submit_or_error(clients[leader], make_txs(1)[0])))
        waiting.start()
        # And a request whose body never comes: the node does not wait for it either (aiohttp's
        # default was 60 s, and the supervisor SIGKILLs a node after 20).
        url = next(n["client_url"] for n in info["nodes"] if n["id"] == leader)
        half = client_tls(info).wrap_socket(socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))),
                                            server_hostname="127.0.0.1")  # fmt: skip
        half.sendall(b"POST /tx HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab")
        time.sleep(0.5)
        assert not answer, answer  # it waits for a commit that cannot come
        started = time.monotonic()
        assert procs[leader].stop(signal.SIGTERM, timeout=30) == 0
        assert time.monotonic() - started < 10
        half.close()
        waiting.join(10)
        (got,) = answer
        assert isinstance(got, UnavailableError) and got.status == 503, got
        assert "stopped before it saw the transaction commit (it may still commit" in str(got)
    finally:
        for p in procs.values():
            if p.proc.poll() is None:
                p.proc.send_signal(signal.SIGCONT)
                p.stop()


def _ready(client: Client) -> bool:
    client.status()
    return True


def _submit_or_error(client: Client, raw: bytes) -> BaseException | dict[str, Any]:
    try:
        return client.submit(raw, wait=True)
    except ClientError as exc:
        return exc


def test_a_node_catching_up_while_it_starts_stops_on_sigterm(tmp_path: Path) -> None:
    # A stored snapshot ahead of the ledger (a crash during a snapshot install) makes the node
    # fetch blocks from its peers; it serves (and takes part in Raft) meanwhile. With every peer
    # down it waits for them, and a signal must still stop it.
    info = init_cluster(tmp_path, 3)
    config = Path(info["nodes"][0]["config"])
    storage = DurableStorage(NodeConfig.load(config).data_dir / "raft")
    try:
        snap = {"height": 500, "hash": bytes(32)}
        storage.apply_snapshot(Snapshot(500, 2, ConfState(voters=(1, 2, 3)), encode_value(snap)))
        storage.sync()
    finally:
        storage.close()
    node = start_node(config)
    try:
        time.sleep(3)
        assert node.proc.poll() is None, node.log.read_text()  # still catching up
        assert "installing a snapshot: fetching blocks 1..500 from peers" in node.log.read_text()
        started = time.monotonic()
        assert node.stop(signal.SIGTERM, timeout=30) == 0
        assert time.monotonic() - started < 10
        assert "node1 stopped" in node.log.read_text()
    finally:
        if node.proc.poll() is None:
            node.proc.kill()
