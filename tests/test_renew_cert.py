"""``ledgercore renew-cert``: a node whose certificate expired refuses to start, and starts again
on the certificate the command issues."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509

from ledgercore import Transaction, signing
from ledgercore.cli import main
from ledgercore.net import pki
from ledgercore.node import Node, NodeConfig
from ledgercore.node.init_cluster import free_base_port, init_cluster


def test_a_node_whose_certificate_expired_starts_again_once_renewed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = init_cluster(tmp_path / "c", 2, base_port=free_base_port(4), settings={"tick_ms": 10, "block_ms": 10})
    d, path, cfg = layout.dir, layout.config_paths[0], layout.configs[0]
    ca = pki.load_credentials(d / "ca.crt", d / "ca.key")
    year_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=400)
    expired = pki.issue_node_certificate(ca, "node1", hosts=[cfg.host], not_before=year_ago)
    pki.write_credentials(expired, cfg.tls.cert, cfg.tls.key)

    assert main(["node", "--config", str(path)]) == 2  # a supervisor's restart would not help
    assert "node.crt expired on " in capsys.readouterr().err
    assert not cfg.data_dir.exists()  # refused before anything was created

    assert main(["renew-cert", "--dir", str(d), "--node", "node9"]) == 2
    assert "no node 'node9'" in capsys.readouterr().err
    for days in ("0", "3000000"):
        assert main(["renew-cert", "--dir", str(d), "--node", "node1", "--days", days]) == 2
        assert f"days must be an integer of 1..3650 (the CA's own validity), got {days}" in capsys.readouterr().err
    assert main(["renew-cert", "--dir", str(d), "--node", "node1", "--days", "30"]) == 0
    assert "restart node1 to use them" in capsys.readouterr().out
    until = pki.load_certificate(cfg.tls.cert).not_valid_after_utc
    assert dt.timedelta(days=29) < until - dt.datetime.now(dt.timezone.utc) <= dt.timedelta(days=30)

    async def run() -> None:
        # Its peer takes the new certificate: together they elect a leader and commit.
        nodes = [Node(NodeConfig.load(p)) for p in layout.config_paths]
        for n in nodes:
            await n.start()
        try:
            kp = signing.generate("ed25519")
            tx = Transaction.create(kp, "evidence", "put", {"key": "k", "digest": bytes(32)}, 1)
            deadline = asyncio.get_running_loop().time() + 15
            while not any(n.is_leader for n in nodes):
                assert asyncio.get_running_loop().time() < deadline, "no leader"
                await asyncio.sleep(0.02)
            _, height = await nodes[0].submit(tx.encode(), wait=True)
            assert height is not None and height >= 1
        finally:
            for n in nodes:
                await n.stop()

    asyncio.run(run())


def test_the_client_certificate_is_renewed_and_node_certificates_name_the_client_api_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = init_cluster(tmp_path / "c", 1, base_port=free_base_port(2))
    d, tls = layout.dir, layout.client_tls
    ca = pki.load_credentials(d / "ca.crt", d / "ca.key")
    year_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=400)
    pki.write_credentials(pki.issue_client_certificate(ca, "client", not_before=year_ago), tls.cert, tls.key)
    with pytest.raises(pki.CertificateFileError, match="client.crt expired on"):
        tls.check_client()
    with pytest.raises(SystemExit):  # one or the other
        main(["renew-cert", "--dir", str(d), "--node", "node1", "--client"])
    assert "not allowed with argument" in capsys.readouterr().err
    assert main(["renew-cert", "--dir", str(d), "--client", "--days", "10"]) == 0
    assert "restart clients to use them" in capsys.readouterr().out
    assert tls.check_client() == pki.Identity("client", "client")
    # A node whose client API listens on another address than its transport: clients dial that
    # address, so its certificate must name it (it named the transport's only).
    path = layout.config_paths[0]
    cfg = dataclasses.replace(NodeConfig.load(path), client_host="127.0.0.2")
    cfg.save(path)
    assert main(["renew-cert", "--dir", str(d), "--node", "node1"]) == 0
    sans = pki.load_certificate(cfg.tls.cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "127.0.0.2"}
    other = init_cluster(tmp_path / "i", 1, base_port=free_base_port(2), host="::1")
    sans = pki.load_certificate(other.configs[0].tls.cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}


def test_renew_cert_writes_where_the_config_names_relative_to_itself_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # It wrote a fresh key and certificate into its caller's directory, and left the node's as they were.
    layout = init_cluster(tmp_path / "c", 1, base_port=free_base_port(2))
    path, cfg = layout.config_paths[0], layout.configs[0]
    relative = dataclasses.replace(cfg, tls=pki.TLSFiles(Path("ca.crt"), Path("node.crt"), Path("node.key")))
    relative.save(path)
    before = cfg.tls.cert.read_bytes()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["renew-cert", "--dir", str(layout.dir), "--node", "node1"]) == 0, capsys.readouterr().err
    assert f"wrote {cfg.tls.cert} and {cfg.tls.key}" in capsys.readouterr().out
    assert list(elsewhere.iterdir()) == []
    assert cfg.tls.cert.read_bytes() != before
    cfg.tls.check_node("node1")


def test_renew_cert_with_an_expired_ca_says_a_new_ca_is_needed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layout = init_cluster(tmp_path / "c", 1, base_port=free_base_port(2))
    month_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30)
    ca = pki.create_ca(validity=dt.timedelta(days=1), not_before=month_ago)
    pki.write_credentials(ca, layout.dir / "ca.crt", layout.dir / "ca.key")
    before = layout.configs[0].tls.cert.read_bytes()
    for who in (["--node", "node1"], ["--client"]):
        assert main(["renew-cert", "--dir", str(layout.dir), *who]) == 2
        err = capsys.readouterr().err
        assert err.startswith("ledgercore renew-cert: the CA certificate expired on ") and "a new consortium CA is needed" in err, err
    assert layout.configs[0].tls.cert.read_bytes() == before  # nothing written


def test_renew_cert_that_cannot_write_both_files_keeps_the_old_pair(tmp_path: Path) -> None:
    # Regression: the key was written, then the certificate; out of room for the certificate (a
    # full disk), the old key was gone and the new one did not match: the node could not start.
    import hashlib
    import resource
    import signal
    import subprocess
    import sys

    layout = init_cluster(tmp_path, 1, base_port=free_base_port(2))
    cfg = layout.configs[0]
    digests = lambda: [hashlib.sha256(p.read_bytes()).digest() for p in (cfg.tls.key, cfg.tls.cert)]  # noqa: E731
    before = digests()
    limit = (cfg.tls.key.stat().st_size + cfg.tls.cert.stat().st_size) // 2  # a key fits, a certificate not

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    out = subprocess.run([sys.executable, "-m", "ledgercore", "renew-cert", "--dir", str(tmp_path), "--node", cfg.id],
                         capture_output=True, text=True, preexec_fn=small_files, timeout=60)  # fmt: skip
    assert out.returncode == 2 and out.stderr.startswith(f"ledgercore renew-cert: [Errno 27] cannot write {cfg.tls.key} and "), out
    assert out.stderr.rstrip().endswith("File too large; the old ones are kept"), out.stderr
    assert digests() == before
    cfg.tls.check_node(cfg.id)  # the pair still matches
    assert not [p for p in cfg.tls.key.parent.iterdir() if p.name.endswith(".tmp")]
