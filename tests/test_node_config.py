"""Node configuration files: what a node refuses to run with, and how it says so."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from ledgercore import Ledger
from ledgercore.cli import main
from ledgercore.client import Client
from ledgercore.errors import InvalidInputError
from ledgercore.net import pki
from ledgercore.net.errors import CertificateFileError
from ledgercore.node import Node, NodeConfig
from ledgercore.node.cluster import load_cluster, start_node, stop_all, wait_ready
from ledgercore.node.config import ConfigError
from ledgercore.node.init_cluster import MAX_NODES, free_base_port, init_cluster


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    layout = init_cluster(tmp_path / "c", 2, base_port=free_base_port(4))
    return layout.config_paths[0]


def with_change(path: Path, change: dict[str, Any]) -> dict[str, Any]:
    d = json.loads(path.read_text())
    d.update(change)
    return d


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"block_txs": 0}, "block_txs must be a positive integer, got 0"),
        ({"block_txs": "10"}, "block_txs must be a positive integer, got '10'"),
        ({"block_ms": True}, "block_ms must be a positive integer, got True"),
        ({"tick_ms": -1}, "tick_ms must be a positive integer, got -1"),
        ({"snapshot_every": 0}, "snapshot_every must be a positive integer"),
        ({"mempool_limit": 0}, "mempool_limit must be a positive integer"),
        ({"max_inflight_blocks": 0}, "max_inflight_blocks must be a positive integer"),
        ({"tx_time_window_ms": 0}, "tx_time_window_ms must be a positive integer"),
        ({"election_ticks": 3, "heartbeat_ticks": 3}, "election_ticks must be more than heartbeat_ticks (3), got 3"),
        ({"port": 70000}, "port must be a TCP port (1..65535), got 70000"),
        ({"client_port": 0}, "client_port must be a TCP port (1..65535), got 0"),
        ({"suite": "rsa"}, "suite must be one of ['ed25519-blake3', 'p256-sha256', 'sm2-sm3'], got 'rsa'"),
        ({"chain_id": ""}, "chain_id must be a string of 1..64 UTF-8 bytes, got ''"),
        ({"id": ""}, "id must be a non-empty string, got ''"),
        ({"extra": []}, "extra must be an object, got []"),
        ({"raft_id": 0}, "raft ids must be distinct integers in 1..2**64 - 1, got [0, 2]"),
        ({"raft_id": 2}, "raft ids must be distinct integers in 1..2**64 - 1, got [2, 2]"),
        ({"id": "node2"}, "peers must be nodes with distinct ids (this node's included), got ['node2', 'node2']"),
        ({"tls": "abc"}, "tls must be an object with ca_cert, cert and key, got 'abc'"),
        ({"tls": {}}, "missing 'ca_cert'"),
        ({"peers": "abc"}, "peers must be a list of objects, got 'abc'"),
        ({"peers": [{"x": 1, "y": 2}]}, "unknown peer field(s) x, y"),
        ({"colour": "red"}, "unknown node field(s) colour"),
        ({"tls": {"ca_cert": "ca.crt", "cert": "n.crt", "key": "n.key", "password": "x"}}, "unknown tls field(s) password"),
        ({"suite": []}, "suite must be one of ['ed25519-blake3', 'p256-sha256', 'sm2-sm3'], got []"),
        ({"raft_id": 2**64}, "raft ids must be distinct integers in 1..2**64 - 1, got [18446744073709551616, 2]"),
        ({"data_dir": ""}, "data_dir must be a non-empty path, got ''"),
        ({"id": "Node1"}, "id: invalid node id 'Node1': expected a lowercase DNS name"),
        ({"host": "bad host"}, "host must be an IP address or a host name (ASCII labels of a-z, 0-9, inner '-'), got 'bad host'"),
        ({"client_host": "例え.jp"}, "client_host must be an IP address or a host name"),
        # Accepted before, then the node died at its first timer (OverflowError) or mkdir (ValueError).
        ({"block_ms": 10**400}, "block_ms must be at most 86400000, got 1000000000"),
        ({"tick_ms": 60_001}, "tick_ms must be at most 60000, got 60001"),
        ({"mempool_bytes": 2**63}, "mempool_bytes must be at most 9223372036854775807"),
        ({"data_dir": "/tmp/a\0b"}, "data_dir must be a path without NUL characters, got '/tmp/a\\x00b'"),
        ({"tls": {"ca_cert": "ca.crt", "cert": "n\0.crt", "key": "n.key"}}, "tls cert must be a path without NUL"),
        ({"contracts": ["invoices"]}, "contracts must be MODULE:NAME (a dotted module path, a colon, an attribute name), got 'invoices'"),
        ({"contracts": [5]}, "contracts must be MODULE:NAME"),
        ({"contracts": "a:B"}, "contracts and authorize must be a list of MODULE:NAME strings and one such string"),
        ({"contracts": None}, "contracts and authorize must be a list of MODULE:NAME strings"),  # was a bare TypeError
        ({"authorize": "a:b:c"}, "authorize must be MODULE:NAME"),
        ({"receipts_roots": "yes"}, "receipts_roots must be true or false, got 'yes'"),
    ],
)
def test_a_config_the_node_cannot_run_with_is_refused_naming_the_field(
    config_file: Path, change: dict[str, Any], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = with_change(config_file, change)
    with pytest.raises(ConfigError, match="invalid node configuration|raft ids") as info:
        NodeConfig.from_dict(bad)
    assert message in str(info.value) and isinstance(info.value, ValueError)
    # The command line says the same and exits 2, before opening anything.
    path = config_file.with_name("bad.json")
    path.write_text(json.dumps(bad))
    assert main(["node", "--config", str(path)]) == 2
    assert message in capsys.readouterr().err
    assert not NodeConfig.load(config_file).data_dir.exists()


def test_clashing_addresses_and_bad_peer_fields_are_refused(config_file: Path) -> None:
    d = json.loads(config_file.read_text())
    peer = d["peers"][0]
    for change, message in [
        ({"client_host": d["host"], "client_port": d["port"]}, "port must be distinct host and port pairs"),
        ({"peers": [{**peer, "host": d["host"], "port": d["port"]}]}, "port must be distinct host and port pairs"),
        ({"peers": [{**peer, "host": ""}]}, "peer 'node2' host must be a non-empty string, got ''"),
        ({"peers": [{**peer, "client_url": 5}]}, "peer 'node2' client_url must be a non-empty string, got 5"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            NodeConfig.from_dict({**d, **change})


def test_a_node_whose_tls_files_are_missing_exits_2_naming_the_file(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Exit 1 tells a supervisor to restart the node; a file the config names that is not there
    # will not appear by restarting.
    key = NodeConfig.load(config_file).tls.key
    key.unlink()
    assert main(["node", "--config", str(config_file)]) == 2
    assert str(key) in capsys.readouterr().err


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [("suite", "sm2-sm3", "uses suite 'ed25519-blake3', not 'sm2-sm3'"), ("chain_id", "other", "is chain 'dev', not 'other'")],
)
def test_a_node_whose_config_names_another_suite_or_chain_than_its_store_exits_2(
    config_file: Path, field: str, value: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # It exited 1, so a supervisor restarted it for ever: the store will not change its chain.
    Ledger.open(NodeConfig.load(config_file).data_dir / "ledger", "ed25519-blake3", chain_id="dev").close()
    path = config_file.with_name("other.json")
    path.write_text(json.dumps(with_change(config_file, {field: value})))
    assert main(["node", "--config", str(path)]) == 2
    assert words in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"contracts": ["no_such_module_here:Invoices"]}, "cannot load contract no_such_module_here:Invoices: ModuleNotFoundError"),
        ({"authorize": "json:no_such_hook"}, "cannot load authorize json:no_such_hook: AttributeError"),
    ],
)
def test_a_node_whose_contract_or_hook_does_not_load_exits_2_naming_it(
    config_file: Path, change: dict[str, Any], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Restarting will not make the module appear: 2, not 1 (a supervisor restarts on 1).
    path = config_file.with_name("other.json")
    path.write_text(json.dumps(with_change(config_file, change)))
    assert main(["node", "--config", str(path)]) == 2
    assert words in capsys.readouterr().err
    assert not (NodeConfig.load(config_file).data_dir / "ledger").exists()


def test_init_cluster_writes_the_chains_contracts_and_hook_into_every_config(tmp_path: Path) -> None:
    d = tmp_path / "c"
    args = ["init-cluster", "--nodes", "2", "--dir", str(d), "--base-port", str(free_base_port(4)),
            "--contract", "invoices:Invoices", "--contract", "permits.v2:Permits", "--authorize", "hooks:admins_only"]  # fmt: skip
    assert main(args) == 0
    for cfg in (NodeConfig.load(d / n / "config.json") for n in ("node1", "node2")):
        assert cfg.contracts == ("invoices:Invoices", "permits.v2:Permits") and cfg.authorize == "hooks:admins_only"


def test_a_config_built_in_code_with_a_path_that_is_not_one_is_refused(config_file: Path) -> None:
    # from_dict makes Paths of what it reads; a NodeConfig built directly got a bare TypeError.
    good = NodeConfig.load(config_file)
    for bad, message in [
        (dataclasses.replace(good, data_dir=None), "data_dir must be a path (str or os.PathLike), got None"),
        (dataclasses.replace(good, data_dir=b"/x"), "data_dir must be a path (str or os.PathLike), got b'/x'"),
        (dataclasses.replace(good, tls=dataclasses.replace(good.tls, key=5)), "tls key must be a path (str or os.PathLike), got 5"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            bad.validate()


def test_relative_paths_in_a_config_are_taken_from_its_directory_not_the_working_one(
    config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `cluster` runs each node in its config's directory; `renew-cert` read the same config against
    # its caller's directory, and wrote a new key wherever it was run from.
    relative = {"data_dir": "data", "tls": {"ca_cert": "ca.crt", "cert": "node.crt", "key": "../keys/node.key"}}
    config_file.write_text(json.dumps(with_change(config_file, relative)))
    monkeypatch.chdir(tmp_path)
    home = config_file.resolve().parent
    cfg = NodeConfig.load(config_file.relative_to(tmp_path))
    assert cfg.data_dir == home / "data"
    assert cfg.tls == pki.TLSFiles(home / "ca.crt", home / "node.crt", home / "../keys/node.key")
    config_file.write_text(json.dumps(with_change(config_file, {"data_dir": "/srv/ledger"})))
    assert NodeConfig.load(config_file).data_dir == Path("/srv/ledger")  # an absolute path stays as it is


def test_the_written_config_is_valid_and_round_trips(config_file: Path) -> None:
    cfg = NodeConfig.load(config_file)
    assert NodeConfig.from_dict(json.loads(cfg.to_json())) == cfg


def test_a_node_whose_start_fails_closes_what_it_opened(config_file: Path) -> None:
    good = NodeConfig.load(config_file)
    missing = dataclasses.replace(good.tls, key=good.tls.key.with_name("absent.key"))
    bad = dataclasses.replace(good, tls=missing)

    async def run() -> None:
        # The ledger and the Raft log open before the transport reads the private key.
        failed = Node(bad)
        with pytest.raises(CertificateFileError, match=r"absent\.key"):
            await failed.start()
        # Nothing stayed open, though the failed node is still referenced (a caller that retries):
        # the data directory's lock and both stores are free for the next start.
        node = Node(good)
        await node.start()
        try:
            assert node.ledger.height == 0
        finally:
            await node.stop()
        await failed.stop()  # stopping it again is harmless

    asyncio.run(run())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "Expecting value"),
        ("{}", "expected an object with a non-empty 'nodes' list"),
        ("[]", "expected an object with a non-empty 'nodes' list"),
        ('{"nodes": []}', "expected an object with a non-empty 'nodes' list"),
        ('{"nodes": [{"id": "a"}]}', "node 0 must be an object with string id, config and client_url"),
        ('{"nodes": [5]}', "node 0 must be an object"),
        ('{"nodes": [{"id": "a", "config": "CONFIG_DIR/none.json", "client_url": "https://h:1"}]}', "is not a file"),
        ('{"nodes": [{"id": "a", "config": "CONFIG_DIR/cluster.json", "client_url": "nonsense"}]}',
         "bad node URL 'nonsense'"),
        ('{"nodes": [{"id": "a", "config": "CONFIG_DIR/cluster.json", "client_url": "http://h:1"}]}',
         "client_url http://h:1 is not https (nodes serve mutual TLS)"),
        ('{"nodes": [{"id": "a", "config": "CONFIG_DIR/cluster.json", "client_url": "https://h:1"}]}',
         "client_tls must be an object with the paths ca_cert, cert and key, got None"),
        ('{"nodes": [{"id": "a", "config": "CONFIG_DIR/cluster.json", "client_url": "https://h:1"}], '
         '"client_tls": {"ca_cert": "CONFIG_DIR/ca.crt", "cert": "CONFIG_DIR/c.crt", "key": "CONFIG_DIR/c.key"}}',
         "invalid node configuration"),  # its config is no node's: refused before any node starts
        ('{"nodes": [{"id": "a", "config": "CONFIG_DIR/cluster.json", "client_url": "https://h:1"}, '
         '{"id": "a", "config": "CONFIG_DIR/cluster.json", "client_url": "https://h:2"}]}',
         "nodes must have distinct ids: a listed more than once"),
        ("[" * 100_000, "its JSON is nested too deeply"),
    ],
)
def test_a_cluster_file_that_names_no_runnable_node_is_refused(
    tmp_path: Path, content: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "cluster.json").write_text(content.replace("CONFIG_DIR", str(tmp_path)))
    assert main(["cluster", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "ledgercore cluster: cannot read" in err and message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster.json"]  # no node log written anywhere


@pytest.mark.parametrize("option", ["--ready-timeout", "--stop-timeout"])
@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf"])
def test_cluster_timeouts_that_are_not_a_positive_number_of_seconds_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    # A nan or negative --stop-timeout SIGKILLed every node right after asking it to stop.
    with pytest.raises(SystemExit) as exited:
        main(["cluster", "--dir", str(tmp_path), option, value])
    assert exited.value.code == 2
    assert f"argument {option}: must be a finite number in (0, inf), got '{value}'" in capsys.readouterr().err


def test_a_cluster_file_naming_a_node_twice_or_a_broken_config_starts_no_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The supervisor used to start the nodes it could, then report the one that died (a second
    # node1 on the same data, a config the node refused), leaving the others running and writing.
    layout = init_cluster(tmp_path / "c", 3, base_port=free_base_port(6))
    good = layout.cluster_file.read_text()
    entries = json.loads(good)["nodes"]
    for change, message in [
        (lambda c: c["nodes"].__setitem__(1, entries[0]), "nodes must have distinct ids: node1 listed more than once"),
        (lambda c: c["nodes"][1].__setitem__("config", entries[0]["config"]),
         "nodes must have distinct configs: "),
        (lambda c: c["nodes"][0].update(id="node9"), f"node node9: its config {entries[0]['config']} is for node 'node1'"),
        (lambda c: layout.config_paths[2].write_text('{"id": 5}'), "invalid node configuration"),
    ]:
        cluster = json.loads(good)
        change(cluster)
        layout.cluster_file.write_text(json.dumps(cluster))
        assert main(["cluster", "--dir", str(layout.dir)]) == 2
        assert message in capsys.readouterr().err
        assert not any((layout.dir / n).joinpath("data").exists() or (layout.dir / n / "node.log").exists()
                       for n in ("node1", "node2", "node3"))  # fmt: skip


def test_a_config_file_that_is_not_utf8_or_is_nested_too_deeply_or_holds_a_huge_int_is_refused(tmp_path: Path) -> None:
    for name, data, message in [
        ("latin1.json", b'{"id": "n\xe9ud"}', "cannot read node configuration"),
        ("deep.json", b"[" * 100_000, "is not valid JSON: nested too deeply"),
        ("digits.json", b'{"block_ms": 1' + b"0" * 5000 + b"}", "is not valid JSON: Exceeds the limit (4300 digits)"),
    ]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ConfigError, match=re.escape(message)):
            NodeConfig.load(tmp_path / name)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--chain-id", ""], "chain_id must be a string of 1..64 UTF-8 bytes"),
        (["--block-txs", "0"], "block_txs must be a positive integer, got 0"),
        (["--block-ms", "-5"], "block_ms must be a positive integer, got -5"),
        (["--host", "bad host"], "host must be an IP address or a host name"),
        (["--host", "例え.jp"], "host must be an IP address or a host name"),
        (["--host", "0.0.0.0"], "--host 0.0.0.0 listens on every interface, which no peer or client can dial: give --advertise"),
        (["--host", "::"], "--host :: listens on every interface"),
        (["--host", "0.0.0.0", "--advertise", "::"], "advertise must be an address others can reach, not a wildcard"),
        (["--advertise", "bad host"], "advertise must be an IP address or a host name"),
    ],
)
def test_init_cluster_refuses_a_cluster_its_nodes_could_not_run_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    d = tmp_path / "c"
    assert main(["init-cluster", "--nodes", "2", "--dir", str(d), "--base-port", str(free_base_port(4)), *args]) == 2
    assert message in capsys.readouterr().err and not d.exists()


def test_init_cluster_never_overwrites_nor_leaves_half_a_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A lone ca.key (the consortium's CA, kept aside) was silently replaced; and a run that failed
    # midway left the CA and node directories but no cluster.json, so a retry was refused.
    d = tmp_path / "c"
    d.mkdir()
    (d / "ca.key").write_text("the consortium's only CA key")
    (d / "notes.txt").write_text("kept")
    with pytest.raises(InvalidInputError, match=r"already holds ca\.key; choose an empty directory"):
        init_cluster(d, 2, base_port=free_base_port(4))
    (d / "ca.key").unlink()

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pki, "issue_client_certificate", disk_full)  # fails after the CA and nodes
    with pytest.raises(OSError, match="No space left"):
        init_cluster(d, 2, base_port=free_base_port(4))
    assert sorted(p.name for p in d.iterdir()) == ["notes.txt"]  # nothing written stays
    monkeypatch.undo()
    layout = init_cluster(d, 2, base_port=free_base_port(4))  # and a retry goes through
    assert sorted(p.name for p in d.iterdir()) == ["ca.crt", "ca.key", "client", "cluster.json", "node1", "node2", "notes.txt"]
    assert NodeConfig.load(layout.config_paths[1]).tls.cert == d.resolve() / "node2" / "node.crt"
    assert load_cluster(d).nodes[0]["config"] == str(layout.config_paths[0])


def test_relative_paths_in_cluster_json_are_taken_from_its_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A cluster directory moved or written by hand: the paths in it read against the working
    # directory pointed at files that are not there.
    d = tmp_path / "c"
    layout = init_cluster(d, 2, base_port=free_base_port(4))
    data = json.loads(layout.cluster_file.read_text())
    for n in data["nodes"]:
        n["config"] = str(Path(n["config"]).relative_to(d.resolve()))
    data["client_tls"] = {k: str(Path(v).relative_to(d.resolve())) for k, v in data["client_tls"].items()}
    layout.cluster_file.write_text(json.dumps(data))
    monkeypatch.chdir(tmp_path)
    cluster = load_cluster("c")
    assert [n["config"] for n in cluster.nodes] == [str(p) for p in layout.config_paths]
    assert cluster.client_tls == layout.client_tls
    cluster.client_context()  # the client's files are found and check out


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda d: init_cluster(str(d) + "/nul\0dir", 2), "holds a NUL character"),
        (lambda d: init_cluster(d, 2.5), "--nodes must be an integer of 1..100, got 2.5"),  # type: ignore[arg-type]
        (lambda d: init_cluster(d, "3"), "--nodes must be an integer of 1..100, got '3'"),  # type: ignore[arg-type]
        (lambda d: init_cluster(d, True), "--nodes must be an integer of 1..100, got True"),
        (lambda d: init_cluster(d, 0), "--nodes must be an integer of 1..100, got 0"),
        (lambda d: init_cluster(d, MAX_NODES + 1), "--nodes must be an integer of 1..100, got 101"),  # configs grow as N²
        (lambda d: init_cluster(d, 2, base_port=True), "--base-port must be an integer, got True"),
        (lambda d: init_cluster(d, 2, settings={"bogus": 1}), "settings must be a dict of NodeConfig tunables"),
        (lambda d: init_cluster(d, 2, settings=[1]), "got list"),  # type: ignore[arg-type]
    ],
)
def test_init_cluster_refuses_arguments_of_the_wrong_kind_with_a_typed_error(tmp_path: Path, call: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        call(tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_an_ipv6_cluster_gets_client_urls_with_brackets(tmp_path: Path) -> None:
    layout = init_cluster(tmp_path / "c", 2, base_port=free_base_port(4), host="::1")
    urls = [c.client_url for c in layout.configs]
    assert all(u.startswith("https://[::1]:") for u in urls)
    assert [p.client_url for p in layout.configs[0].peers] == urls[1:]
    Client(urls[0], tls=layout.client_tls)  # a URL the client takes


def test_a_cluster_listening_on_every_interface_is_reached_at_its_advertised_address(tmp_path: Path) -> None:
    layout = init_cluster(tmp_path / "c", 3, base_port=free_base_port(6), host="0.0.0.0", advertise="127.0.0.1")
    assert {(c.host, c.client_host) for c in layout.configs} == {("0.0.0.0", "0.0.0.0")}
    assert {p.host for c in layout.configs for p in c.peers} == {"127.0.0.1"}  # what peers dial
    urls = [n["client_url"] for n in json.loads(layout.cluster_file.read_text())["nodes"]]
    assert all(u.startswith("https://127.0.0.1:") for u in urls), urls
    for c in layout.configs:  # clients check the name they dial
        assert "127.0.0.1" in str(pki.load_certificate(c.tls.cert).extensions), c.id
    cluster = load_cluster(layout.dir)
    tls = cluster.client_context()
    nodes = [start_node(entry, tls) for entry in cluster.nodes]
    try:
        assert wait_ready(nodes, [], 30.0)
        with Client(urls[1], timeout=10, tls=tls) as c:
            deadline = time.monotonic() + 20
            while c.status()["leader"] is None and time.monotonic() < deadline:
                time.sleep(0.1)  # the nodes elect a leader over the advertised addresses
            assert c.status()["leader"] in {"node1", "node2", "node3"}
    finally:
        stop_all(nodes, 10.0, announce=False)


def test_a_cluster_whose_client_certificate_nodes_would_refuse_is_not_started(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nodes refuse an expired client certificate without a word: the supervisor would wait for
    # answers that never come. It names the certificate before it starts anything.
    layout = init_cluster(tmp_path / "c", 1, base_port=free_base_port(2))
    ca = pki.load_credentials(layout.dir / "ca.crt", layout.dir / "ca.key")
    long_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
    stale = pki.issue_client_certificate(ca, "client", not_before=long_ago, validity=datetime.timedelta(days=1))
    pki.write_credentials(stale, layout.client_tls.cert, layout.client_tls.key)
    assert main(["cluster", "--dir", str(layout.dir)]) == 2
    err = capsys.readouterr().err
    assert "client.crt expired on" in err and "issue this client a new certificate" in err, err
    assert not (layout.dir / "node1" / "node.log").exists()  # no node started
