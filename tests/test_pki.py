"""ledgercore.net.pki: the consortium CA, node and client certificates, PEM files, TLS contexts.

Certificates are checked with cryptography's own RFC 5280 path validator (an independent verifier)
and with OpenSSL through real in-memory TLS 1.3 handshakes between the contexts we build.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import ssl
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from ledgercore.errors import InvalidInputError, LedgerError
from ledgercore.net import pki
from ledgercore.net.errors import (
    CertificateFileError,
    InsecureKeyFileError,
    InvalidNodeIdError,
    PeerIdentityError,
)


@pytest.fixture(scope="module")
def ca() -> pki.Credentials:
    return pki.create_ca("Dept of Test")


@pytest.fixture(scope="module")
def node1(ca: pki.Credentials) -> pki.Credentials:
    return pki.issue_node_certificate(ca, "node1")


def ext(cert: x509.Certificate, cls: type[Any]) -> x509.Extension[Any]:
    return cert.extensions.get_extension_for_class(cls)


# -- CA --------------------------------------------------------------------------------------


def test_ca_is_a_self_signed_p256_ca_with_path_length_0(ca: pki.Credentials) -> None:
    cert = ca.cert
    assert isinstance(ca.key.curve, ec.SECP256R1)
    cert.verify_directly_issued_by(cert)
    bc = ext(cert, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Dept of Test"
    assert ext(cert, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(
        ca.key.public_key()
    )


def test_ca_validity_is_configurable() -> None:
    start = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    ca = pki.create_ca(validity=dt.timedelta(days=30), not_before=start)
    assert ca.cert.not_valid_before_utc == start
    assert ca.cert.not_valid_after_utc == start + dt.timedelta(days=30)


# -- node and client certificates ------------------------------------------------------------


def test_node_certificate_fields(ca: pki.Credentials, node1: pki.Credentials) -> None:
    cert = node1.cert
    cert.verify_directly_issued_by(ca.cert)
    assert node1.common_name == "node1"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "node"
    assert cert.issuer == ca.cert.subject
    san = ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["node1", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    eku = ext(cert, x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    bc = ext(cert, x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    ku = ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    assert isinstance(node1.key.curve, ec.SECP256R1)
    assert node1.key.public_key() == cert.public_key()


def test_node_certificate_extra_hosts_and_validity(ca: pki.Credentials) -> None:
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    creds = pki.issue_node_certificate(
        ca, "n2.dept-a", hosts=["10.0.0.7", "n2.example.org", "127.0.0.1"],
        validity=dt.timedelta(days=7), not_before=start,
    )
    san = ext(creds.cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["n2.dept-a", "localhost", "n2.example.org"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("10.0.0.7")
    ]
    assert creds.cert.not_valid_before_utc == start
    assert creds.cert.not_valid_after_utc - creds.cert.not_valid_before_utc == dt.timedelta(days=7)


def test_leaf_never_outlives_its_ca() -> None:
    ca = pki.create_ca(validity=dt.timedelta(days=10))
    leaf = pki.issue_node_certificate(ca, "n1", validity=dt.timedelta(days=365))
    assert leaf.cert.not_valid_after_utc == ca.cert.not_valid_after_utc


def test_an_expired_ca_issues_nothing_and_says_it_expired() -> None:
    # The leaf's end was clipped to the CA's, before its start: cryptography's "The not valid after
    # date must be after the not valid before date." named neither the CA nor its expiry.
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30)
    ca = pki.create_ca(validity=dt.timedelta(days=1), not_before=start)
    said = f"the CA certificate expired on {start + dt.timedelta(days=1):%Y-%m-%d %H:%M} UTC: a new consortium CA is needed"
    with pytest.raises(CertificateFileError, match=re.escape(said)):
        pki.issue_node_certificate(ca, "node1")
    with pytest.raises(CertificateFileError, match=re.escape(said)):
        pki.issue_client_certificate(ca, "client")


def test_rfc5280_path_validation_by_an_independent_verifier(
    ca: pki.Credentials, node1: pki.Credentials
) -> None:
    store = Store([ca.cert])
    policy = PolicyBuilder().store(store)
    chain = policy.build_server_verifier(x509.DNSName("node1")).verify(node1.cert, [])
    assert chain[-1] == ca.cert
    policy.build_server_verifier(x509.IPAddress(ipaddress.ip_address("127.0.0.1"))).verify(
        node1.cert, []
    )
    with pytest.raises(VerificationError):
        policy.build_server_verifier(x509.DNSName("node2")).verify(node1.cert, [])
    client = pki.issue_client_certificate(ca, "alice")
    policy.build_client_verifier().verify(client.cert, [])
    other = pki.issue_node_certificate(pki.create_ca(), "node1")
    with pytest.raises(VerificationError):
        policy.build_server_verifier(x509.DNSName("node1")).verify(other.cert, [])


def test_client_certificate_fields(ca: pki.Credentials) -> None:
    creds = pki.issue_client_certificate(ca, "registry-office-3")
    cert = creds.cert
    cert.verify_directly_issued_by(ca.cert)
    assert creds.common_name == "registry-office-3"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "client"
    assert list(ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    san = ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["registry-office-3"]
    assert san.get_values_for_type(x509.IPAddress) == []
    with pytest.raises(InvalidNodeIdError):
        pki.issue_client_certificate(ca, "Registry Office #3")


def test_only_a_ca_can_issue(node1: pki.Credentials) -> None:
    with pytest.raises(CertificateFileError):
        pki.issue_node_certificate(node1, "node9")


@pytest.mark.parametrize("good", ["n1", "node-1", "a", "node1.dept-a.gov", "0x1", "9" * 63])
def test_valid_node_ids(good: str) -> None:
    assert pki.validate_node_id(good) == good


@pytest.mark.parametrize(
    "bad",
    ["", "Node1", "node_1", "-n1", "n1-", "n1.", ".n1", "n 1", "n1..x", "localhost",
     "127.0.0.1", "::1", "a" * 64, ".".join(["a" * 63] * 4) + "x" * 10, "nœd"],
)
def test_invalid_node_ids(bad: str, ca: pki.Credentials) -> None:
    with pytest.raises(InvalidNodeIdError) as ei:
        pki.validate_node_id(bad)
    assert isinstance(ei.value, InvalidInputError) and isinstance(ei.value, ValueError)
    assert isinstance(ei.value, LedgerError)
    with pytest.raises(InvalidNodeIdError):
        pki.issue_node_certificate(ca, bad)


def test_node_id_must_be_str() -> None:
    with pytest.raises(InvalidNodeIdError):
        pki.validate_node_id(7)  # type: ignore[arg-type]


# -- files -----------------------------------------------------------------------------------


def mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_write_and_load_round_trip(tmp_path: Path, node1: pki.Credentials) -> None:
    cert_p, key_p = tmp_path / "sub" / "n1.crt", tmp_path / "sub" / "n1.key"
    pki.write_credentials(node1, cert_p, key_p)
    assert mode(key_p) == 0o600
    assert mode(cert_p) == 0o644
    assert key_p.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    back = pki.load_credentials(cert_p, key_p)
    assert back.cert == node1.cert
    assert back.key.private_numbers() == node1.key.private_numbers()
    assert pki.load_certificate(cert_p) == node1.cert
    # no stray temp files
    assert sorted(p.name for p in cert_p.parent.iterdir()) == ["n1.crt", "n1.key"]


def test_rewrite_keeps_key_private(tmp_path: Path, node1: pki.Credentials) -> None:
    key_p = tmp_path / "n1.key"
    key_p.write_bytes(b"old")
    key_p.chmod(0o644)
    pki.write_credentials(node1, tmp_path / "n1.crt", key_p)
    assert mode(key_p) == 0o600


def test_encrypted_key_round_trip(tmp_path: Path, node1: pki.Credentials) -> None:
    pki.write_credentials(node1, tmp_path / "c", tmp_path / "k", password=b"s3cret")
    assert b"ENCRYPTED" in (tmp_path / "k").read_bytes()
    back = pki.load_credentials(tmp_path / "c", tmp_path / "k", password=b"s3cret")
    assert back.key.private_numbers() == node1.key.private_numbers()
    with pytest.raises(CertificateFileError):
        pki.load_credentials(tmp_path / "c", tmp_path / "k", password=b"wrong")
    ctx = pki.server_context(tmp_path / "c", tmp_path / "c", tmp_path / "k", password=b"s3cret")
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    # Without the password: a typed error naming the key, not OpenSSL asking on the terminal.
    with pytest.raises(CertificateFileError, match="private key .*k is encrypted and no password was given"):
        pki.client_context(tmp_path / "c", tmp_path / "c", tmp_path / "k")


def test_load_refuses_group_readable_key(tmp_path: Path, node1: pki.Credentials) -> None:
    pki.write_credentials(node1, tmp_path / "c", tmp_path / "k")
    (tmp_path / "k").chmod(0o640)
    with pytest.raises(InsecureKeyFileError) as ei:
        pki.load_credentials(tmp_path / "c", tmp_path / "k")
    assert isinstance(ei.value, ValueError)
    with pytest.raises(InsecureKeyFileError):
        pki.server_context(tmp_path / "c", tmp_path / "c", tmp_path / "k")


def test_load_refuses_mismatched_or_garbage_files(
    tmp_path: Path, ca: pki.Credentials, node1: pki.Credentials
) -> None:
    pki.write_credentials(node1, tmp_path / "n1.crt", tmp_path / "n1.key")
    pki.write_credentials(ca, tmp_path / "ca.crt", tmp_path / "ca.key")
    with pytest.raises(CertificateFileError, match="does not match"):
        pki.load_credentials(tmp_path / "n1.crt", tmp_path / "ca.key")
    (tmp_path / "junk").write_bytes(b"not a pem")
    (tmp_path / "junk").chmod(0o600)
    with pytest.raises(CertificateFileError):
        pki.load_certificate(tmp_path / "junk")
    with pytest.raises(CertificateFileError):
        pki.load_credentials(tmp_path / "n1.crt", tmp_path / "junk")


def test_write_tls_files_layout(tmp_path: Path, ca: pki.Credentials, node1: pki.Credentials) -> None:
    files = pki.write_tls_files(tmp_path / "node1", ca, node1)
    assert files == pki.TLSFiles.from_dict(files.to_dict())
    assert sorted(p.name for p in (tmp_path / "node1").iterdir()) == ["ca.crt", "node.crt", "node.key"]
    assert mode(files.key) == 0o600
    assert pki.load_certificate(files.ca_cert) == ca.cert
    assert pki.load_credentials(files.cert, files.key).cert == node1.cert


# -- TLS contexts and peer identity (real handshakes over memory BIOs) -----------------------


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory, ca: pki.Credentials,
            node1: pki.Credentials) -> dict[str, pki.TLSFiles]:
    d = tmp_path_factory.mktemp("tls")
    out = {"node1": pki.write_tls_files(d / "node1", ca, node1)}
    out["node2"] = pki.write_tls_files(d / "node2", ca, pki.issue_node_certificate(ca, "node2"))
    out["alice"] = pki.write_tls_files(d / "alice", ca, pki.issue_client_certificate(ca, "alice"))
    foreign = pki.create_ca("Dept of Test")  # same name, different key
    out["forged"] = pki.write_tls_files(d / "forged", foreign,
                                        pki.issue_node_certificate(foreign, "node1"))
    expired = pki.issue_node_certificate(
        ca, "node1", validity=dt.timedelta(days=1),
        not_before=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=10))
    out["expired"] = pki.write_tls_files(d / "expired", ca, expired)
    return out


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, server_hostname: str
              ) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    """Run a TLS handshake between the two contexts in memory; raise what either side raises."""
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    s = server.wrap_bio(s_in, s_out, server_side=True)
    c = client.wrap_bio(c_in, c_out, server_side=False, server_hostname=server_hostname)
    s_done = c_done = False
    for _ in range(10):
        if not c_done:
            try:
                c.do_handshake()
                c_done = True
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        if not s_done:
            try:
                s.do_handshake()
                s_done = True
            except ssl.SSLWantReadError:
                pass
        c_in.write(s_out.read())
        if s_done and c_done:
            return s, c
    raise AssertionError("handshake did not finish")


def test_contexts_are_hardened(tls_dir: dict[str, pki.TLSFiles], ca: pki.Credentials) -> None:
    f = tls_dir["node1"]
    srv, cli = f.server_context(), f.client_context()
    for ctx in (srv, cli):
        assert ctx.verify_mode == ssl.CERT_REQUIRED
        assert ctx.minimum_version == (
            ssl.TLSVersion.TLSv1_3 if ssl.HAS_TLSv1_3 else ssl.TLSVersion.TLSv1_2)
        # the consortium CA and nothing else (no system store)
        cas = ctx.get_ca_certs(binary_form=True)
        assert [x509.load_der_x509_certificate(der) for der in cas] == [ca.cert]
    assert srv.protocol == ssl.PROTOCOL_TLS_SERVER
    assert cli.protocol == ssl.PROTOCOL_TLS_CLIENT and cli.check_hostname
    with pytest.raises(CertificateFileError):
        pki.client_context(f.ca_cert, f.cert)


def test_mutual_tls_names_both_nodes(tls_dir: dict[str, pki.TLSFiles]) -> None:
    s, c = handshake(tls_dir["node2"].server_context(), tls_dir["node1"].client_context(), "node2")
    assert s.version() == ("TLSv1.3" if ssl.HAS_TLSv1_3 else s.version())
    assert pki.peer_node_id(s) == "node1"  # the server learns who dialled
    assert pki.peer_node_id(c) == "node2"  # the dialler learns whom it reached
    assert pki.peer_identity(s) == pki.Identity("node1", "node")


def test_dialling_the_wrong_node_fails_hostname_check(tls_dir: dict[str, pki.TLSFiles]) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        handshake(tls_dir["node2"].server_context(), tls_dir["node1"].client_context(), "node3")


def test_foreign_ca_certificate_is_refused(tls_dir: dict[str, pki.TLSFiles]) -> None:
    forged = tls_dir["forged"]
    # a dialler presenting a node1 certificate from another CA (it trusts the real CA)
    cli = pki.client_context(tls_dir["node1"].ca_cert, forged.cert, forged.key)
    with pytest.raises(ssl.SSLError):
        handshake(tls_dir["node2"].server_context(), cli, "node2")
    # a server presenting it
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(pki.server_context(tls_dir["node1"].ca_cert, forged.cert, forged.key),
                  tls_dir["node2"].client_context(), "node1")


def test_missing_client_certificate_is_refused(tls_dir: dict[str, pki.TLSFiles]) -> None:
    cli = pki.client_context(tls_dir["node1"].ca_cert)
    with pytest.raises(ssl.SSLError):
        handshake(tls_dir["node2"].server_context(), cli, "node2")


def test_expired_certificate_is_refused(tls_dir: dict[str, pki.TLSFiles]) -> None:
    with pytest.raises(ssl.SSLError):
        handshake(tls_dir["node2"].server_context(), tls_dir["expired"].client_context(), "node2")


def test_client_certificate_is_not_a_node(tls_dir: dict[str, pki.TLSFiles]) -> None:
    s, _ = handshake(tls_dir["node2"].server_context(), tls_dir["alice"].client_context(), "node2")
    assert pki.peer_identity(s) == pki.Identity("alice", "client")
    with pytest.raises(PeerIdentityError, match="client certificate"):
        pki.peer_node_id(s)


def test_peer_node_id_without_certificate() -> None:
    with pytest.raises(PeerIdentityError):
        pki.peer_node_id(None)


def test_a_node_refuses_its_own_certificate_where_its_peers_would(
    tls_dir: dict[str, pki.TLSFiles], ca: pki.Credentials, tmp_path: Path
) -> None:
    node1 = tls_dir["node1"]
    node1.check_node("node1")
    early = pki.write_tls_files(tmp_path, ca, pki.issue_node_certificate(
        ca, "node1", not_before=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)))
    for files, node_id, words in [
        (pki.TLSFiles(node1.ca_cert, tls_dir["forged"].cert, tls_dir["forged"].key), "node1",
         f"{tls_dir['forged'].cert} is not issued by the CA in {node1.ca_cert}"),
        (tls_dir["expired"], "node1", "expired on"),
        (early, "node1", "is not valid before"),
        (tls_dir["node2"], "node1", "is a node certificate for 'node2', not node 'node1'"),
        (tls_dir["alice"], "alice", "is a client certificate for 'alice', not node 'alice'"),
        (pki.TLSFiles(node1.ca_cert, tmp_path / "absent.crt", node1.key), "node1", "cannot read the certificate"),
    ]:
        with pytest.raises(CertificateFileError, match=re.escape(words)):
            files.check_node(node_id)


def test_a_client_refuses_its_own_certificate_where_a_node_would(
    tls_dir: dict[str, pki.TLSFiles], ca: pki.Credentials, tmp_path: Path
) -> None:
    assert tls_dir["alice"].check_client() == pki.Identity("alice", "client")
    assert tls_dir["node2"].check_client() == pki.Identity("node2", "node")  # a consortium certificate too
    early = pki.write_tls_files(tmp_path, ca, pki.issue_client_certificate(
        ca, "alice", not_before=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)), stem="alice")
    alice = tls_dir["alice"]
    for files, words in [
        (pki.TLSFiles(alice.ca_cert, tls_dir["forged"].cert, tls_dir["forged"].key),
         f"{tls_dir['forged'].cert} is not issued by the CA in {alice.ca_cert}"),
        (tls_dir["expired"], "UTC: issue this client a new certificate from the consortium CA"),
        (early, "is not valid before"),
        (pki.TLSFiles(alice.ca_cert, tmp_path / "absent.crt", alice.key), "cannot read the certificate"),
    ]:
        with pytest.raises(CertificateFileError, match=re.escape(words)):
            files.check_client()


def _leaf(ca: pki.Credentials, usages: list[x509.ObjectIdentifier], *, key_identifier: bool = True) -> pki.Credentials:
    """A client certificate from ``ca`` as another tool might make it: other usages, no AKI."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "client"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "alice")])  # fmt: skip
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(ca.cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1)).add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )  # fmt: skip
    if key_identifier:
        ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    return pki.Credentials(builder.sign(ca.key, hashes.SHA256()), key)


def test_a_client_certificate_nodes_would_refuse_is_named_before_any_connection(
    tls_dir: dict[str, pki.TLSFiles], ca: pki.Credentials, tmp_path: Path
) -> None:
    alice = tls_dir["alice"]
    for name, creds, words in [
        ("server_only", _leaf(ca, [ExtendedKeyUsageOID.SERVER_AUTH]), "is not for client authentication"),
        ("no_aki", _leaf(ca, [ExtendedKeyUsageOID.CLIENT_AUTH], key_identifier=False), "has no authority key identifier"),
    ]:
        files = pki.TLSFiles(alice.ca_cert, tmp_path / f"{name}.crt", tmp_path / f"{name}.key")
        pki.write_credentials(creds, files.cert, files.key)
        with pytest.raises(CertificateFileError, match=words):
            files.check_client()
        # The nodes' own TLS check refuses it too: the check above is no stricter than they are.
        with pytest.raises(ssl.SSLError):
            handshake(tls_dir["node2"].server_context(), files.client_context(), "node2")
    # A CA file holding two CAs (a change of CA under way): issued by either one passes.
    bundle = tmp_path / "bundle.crt"
    bundle.write_bytes(pki.create_ca("next").cert_pem() + alice.ca_cert.read_bytes())
    assert pki.TLSFiles(bundle, alice.cert, alice.key).check_client() == pki.Identity("alice", "client")
    assert tls_dir["node1"].check_client() == pki.Identity("node1", "node")  # nodes dial: clientAuth too
