"""The consortium PKI: a CA, node and client certificates, PEM files, mutual-TLS contexts.

One CA per consortium (created by ``ledgercore init-cluster``) issues every node's certificate. A
node certificate names its node id three ways, all checked by the transport:

* subject CN = node id and OU = ``node`` (read back by :func:`peer_node_id` on accepted connections),
* SAN DNS = node id (checked by TLS hostname verification when a node dials ``server_hostname=id``),
* extended key usage serverAuth + clientAuth (a node both listens and dials).

Client certificates (for the client API) carry OU = ``client`` and clientAuth only, so a client
certificate can never pass for a node, whatever its CN.

Keys are ECDSA P-256, signatures ECDSA-SHA256. TLS contexts trust the consortium CA and nothing
else, require a certificate from both sides and refuse anything older than TLS 1.3 (1.2 where the
OpenSSL build has no 1.3).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import ipaddress
import os
import re
import ssl
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ledgercore.net.errors import (
    CertificateFileError,
    InsecureKeyFileError,
    InvalidNodeIdError,
    PeerIdentityError,
)

__all__ = [
    "ROLE_CLIENT",
    "ROLE_NODE",
    "Credentials",
    "Identity",
    "TLSFiles",
    "certificate_identity",
    "client_context",
    "create_ca",
    "issue_client_certificate",
    "issue_node_certificate",
    "load_certificate",
    "load_credentials",
    "peer_identity",
    "peer_node_id",
    "server_context",
    "validate_node_id",
    "write_credentials",
    "write_tls_files",
]

PathLike = Union[str, "os.PathLike[str]"]

ROLE_NODE = "node"
ROLE_CLIENT = "client"

DEFAULT_ORGANIZATION = "ledgercore consortium"
DEFAULT_CA_VALIDITY = _dt.timedelta(days=3650)
DEFAULT_CERT_VALIDITY = _dt.timedelta(days=365)
# Certificates start a little in the past so that peers whose clocks lag slightly accept them.
_CLOCK_SKEW = _dt.timedelta(minutes=5)

# A node id is a lowercase DNS name (labels of a-z, 0-9 and inner hyphens, dot-separated): it is
# the SAN DNS entry that hostname verification matches, so it must be one.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_NODE_ID_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
# Names every node certificate also carries in its SAN, so they cannot be node ids.
_RESERVED_IDS = frozenset({"localhost"})


def validate_node_id(node_id: str) -> str:
    """Return ``node_id`` if it can name a node, else raise :class:`InvalidNodeIdError`.

    Allowed: a lowercase DNS name of at most 253 characters that is not an IP address and not
    ``localhost`` (every node certificate lists ``localhost``, so it would match any node)."""
    if not isinstance(node_id, str):
        raise InvalidNodeIdError(f"node id must be a str, not {type(node_id).__name__}")
    if len(node_id) > 253 or not _NODE_ID_RE.fullmatch(node_id):
        raise InvalidNodeIdError(
            f"invalid node id {node_id!r}: expected a lowercase DNS name "
            "(a-z, 0-9, inner '-', dot-separated labels of at most 63 characters)"
        )
    if node_id in _RESERVED_IDS:
        raise InvalidNodeIdError(f"node id {node_id!r} is reserved")
    try:
        ipaddress.ip_address(node_id)
    except ValueError:
        return node_id
    raise InvalidNodeIdError(f"node id {node_id!r} looks like an IP address")


@dataclass(frozen=True)
class Credentials:
    """A certificate and its private key (the CA's, a node's or a client's)."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def common_name(self) -> str:
        """The subject's CN (the node id for a node certificate)."""
        return _single_attr(self.cert.subject, NameOID.COMMON_NAME)

    def cert_pem(self) -> bytes:
        """The certificate as PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, password: bytes | None = None) -> bytes:
        """The private key as PKCS#8 PEM, encrypted when ``password`` is given."""
        enc: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc
        )


@dataclass(frozen=True)
class Identity:
    """Who a verified peer certificate names: ``role`` is ``"node"`` or ``"client"``."""

    name: str
    role: str


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _single_attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    attrs = name.get_attributes_for_oid(oid)
    if len(attrs) != 1:
        raise PeerIdentityError(
            f"certificate subject has {len(attrs)} {oid.dotted_string} attributes, not 1"
        )
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode()


def _validity(
    validity: _dt.timedelta, not_before: _dt.datetime | None
) -> tuple[_dt.datetime, _dt.datetime]:
    if validity <= _dt.timedelta(0):
        raise CertificateFileError(f"validity must be positive, got {validity}")
    start = not_before if not_before is not None else _now() - _CLOCK_SKEW
    if start.tzinfo is None:
        raise CertificateFileError("not_before must be timezone-aware")
    return start, start + validity


def create_ca(
    organization: str = DEFAULT_ORGANIZATION,
    *,
    validity: _dt.timedelta = DEFAULT_CA_VALIDITY,
    not_before: _dt.datetime | None = None,
) -> Credentials:
    """Create the consortium CA: a fresh P-256 key and a self-signed certificate.

    BasicConstraints ca=True with path length 0 (it signs leaf certificates only) and KeyUsage
    keyCertSign + cRLSign, both critical."""
    key = _new_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{organization} CA"),
        ]
    )
    start, end = _validity(validity, not_before)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return Credentials(cert, key)


def _check_ca(ca: Credentials) -> None:
    try:
        bc = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is None or not bc.ca:
        raise CertificateFileError("the issuing certificate is not a CA certificate")


def _issue(
    ca: Credentials,
    name: str,
    role: str,
    usages: list[x509.ObjectIdentifier],
    sans: list[x509.GeneralName],
    validity: _dt.timedelta,
    not_before: _dt.datetime | None,
) -> Credentials:
    _check_ca(ca)
    ca_end = ca.cert.not_valid_after_utc
    if _now() >= ca_end:  # nothing it signs is trusted any more, whatever its own dates
        raise CertificateFileError(
            f"the CA certificate expired on {ca_end:%Y-%m-%d %H:%M} UTC: a new consortium CA is needed, "
            "and certificates from it for every node and client"
        )
    key = _new_key()
    org = _single_attr(ca.cert.subject, NameOID.ORGANIZATION_NAME)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    start, end = _validity(validity, not_before)
    # A leaf never outlives its CA: clients would reject the tail anyway.
    end = min(end, ca_end)
    ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return Credentials(builder.sign(ca.key, hashes.SHA256()), key)


def _host_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def issue_node_certificate(
    ca: Credentials,
    node_id: str,
    *,
    hosts: Iterable[str] = (),
    validity: _dt.timedelta = DEFAULT_CERT_VALIDITY,
    not_before: _dt.datetime | None = None,
) -> Credentials:
    """Issue a certificate and fresh key for node ``node_id``, signed by ``ca``.

    CN = node id, OU = ``node``; SAN = DNS node id, DNS localhost, IP 127.0.0.1 and ``hosts``
    (DNS names or IP addresses the node is also reached by); EKU serverAuth + clientAuth."""
    validate_node_id(node_id)
    sans = _host_names([node_id, "localhost", "127.0.0.1", *hosts])
    # Dedupe while keeping order (a host list may repeat the defaults).
    sans = list(dict.fromkeys(sans))
    return _issue(
        ca,
        node_id,
        ROLE_NODE,
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        sans,
        validity,
        not_before,
    )


def issue_client_certificate(
    ca: Credentials,
    name: str,
    *,
    validity: _dt.timedelta = DEFAULT_CERT_VALIDITY,
    not_before: _dt.datetime | None = None,
) -> Credentials:
    """Issue a client-API certificate for ``name`` (CN = name, OU = ``client``, SAN DNS = name,
    EKU clientAuth only), which the node transport refuses. ``name`` follows the node-id rules
    (RFC 5280 verifiers such as cryptography's want a SAN, and a SAN DNS name must be one)."""
    validate_node_id(name)
    return _issue(
        ca, name, ROLE_CLIENT, [ExtendedKeyUsageOID.CLIENT_AUTH], [x509.DNSName(name)],
        validity, not_before,
    )


# ---------------------------------------------------------------------------------------------
# Files


def _write_atomic(*files: tuple[Path, bytes, int]) -> None:
    """Writes each ``(path, data, mode)`` to a temp file created with ``mode`` and fsync'd, then
    renames them all into place: a reader never sees a half-written file, a key is never briefly
    world-readable, and a failure while writing (a full disk) leaves every old file as it was, so
    a key and its certificate never part. Only a crash between the renames could."""
    staged: list[str] = []
    try:
        for path, data, mode in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            staged.append(tmp)
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), mode)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        for tmp, (path, _, _) in zip(staged, files):
            os.replace(tmp, path)
    except BaseException:
        for tmp in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    for parent in dict.fromkeys(path.parent for path, _, _ in files):
        dfd = os.open(parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def write_credentials(
    creds: Credentials, cert_path: PathLike, key_path: PathLike, *, password: bytes | None = None
) -> None:
    """Write the certificate (mode 0644) and private key (mode 0600, encrypted if ``password``)
    as PEM, the two together (:func:`_write_atomic`)."""
    _write_atomic((Path(key_path), creds.key_pem(password), 0o600), (Path(cert_path), creds.cert_pem(), 0o644))


def _check_key_file_mode(path: Path) -> None:
    if os.name == "nt":  # POSIX modes mean nothing there
        return
    mode = os.stat(path).st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InsecureKeyFileError(
            f"private key {path} has mode {stat.S_IMODE(mode):04o}; it must not be accessible "
            "to group or others (chmod 600)"
        )


def load_certificate(path: PathLike) -> x509.Certificate:
    """Read one PEM certificate (the first, where the file holds several)."""
    return _load_certificates(path)[0]


def _load_certificates(path: PathLike) -> list[x509.Certificate]:
    """Every PEM certificate in ``path`` (a CA file may hold several, during a change of CA)."""
    try:
        return x509.load_pem_x509_certificates(Path(path).read_bytes())
    except ValueError as e:
        raise CertificateFileError(f"{path}: not a PEM certificate ({e})") from None
    except OSError as e:
        raise CertificateFileError(f"cannot read the certificate {path}: {e}") from None


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def load_credentials(
    cert_path: PathLike, key_path: PathLike, *, password: bytes | None = None
) -> Credentials:
    """Read a PEM certificate and its PEM private key, checking the key file is 0600-like and the
    key matches the certificate."""
    cert = load_certificate(cert_path)
    kp = Path(key_path)
    _check_key_file_mode(kp)
    try:
        key = serialization.load_pem_private_key(kp.read_bytes(), password=password)
    except (ValueError, TypeError) as e:
        raise CertificateFileError(f"{kp}: cannot load the private key ({e})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateFileError(f"{kp}: expected an EC private key, got {type(key).__name__}")
    if key.public_key() != cert.public_key():
        raise CertificateFileError(f"{kp} does not match the certificate in {cert_path}")
    return Credentials(cert, key)


@dataclass(frozen=True)
class TLSFiles:
    """Where a node (or client) keeps its TLS material: the consortium CA certificate, its own
    certificate and its private key."""

    ca_cert: Path
    cert: Path
    key: Path

    @classmethod
    def in_dir(cls, directory: PathLike, *, stem: str = "node") -> TLSFiles:
        """Where :func:`write_tls_files` puts them: ``ca.crt``, ``<stem>.crt``, ``<stem>.key``."""
        d = Path(directory)
        return cls(d / "ca.crt", d / f"{stem}.crt", d / f"{stem}.key")

    def server_context(self) -> ssl.SSLContext:
        """A mutual-TLS server context from these files."""
        return server_context(self.ca_cert, self.cert, self.key)

    def client_context(self) -> ssl.SSLContext:
        """A mutual-TLS client context from these files."""
        return client_context(self.ca_cert, self.cert, self.key)

    def check_node(self, node_id: str, now: _dt.datetime | None = None) -> None:
        """Refuses (``CertificateFileError``) a node certificate every peer would refuse, naming
        why: not issued by the CA in ``ca_cert``, not valid yet (this machine's clock) or any
        more, or issued to another node. Without this a node starts and only logs failed
        handshakes."""
        ident, cert = self._check_current(now, "this node")
        if ident != Identity(node_id, ROLE_NODE):
            raise CertificateFileError(f"{self.cert} is a {ident.role} certificate for {ident.name!r}, not node {node_id!r}")
        self._check_usage(cert, ExtendedKeyUsageOID.SERVER_AUTH, "serverAuth (a node listens)")

    def check_client(self, now: _dt.datetime | None = None) -> Identity:
        """Refuses (``CertificateFileError``) a certificate every node's client API would refuse:
        not issued by the CA in ``ca_cert``, not valid yet or any more, not for client
        authentication. A node closes such a connection without a word (asyncio sends no TLS
        alert), so the client says why here."""
        return self._check_current(now, "this client")[0]

    def _check_usage(self, cert: x509.Certificate, usage: x509.ObjectIdentifier, what: str) -> None:
        try:
            usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            usages = None
        if usages is not None and usage not in usages:  # without the extension, any usage goes
            raise CertificateFileError(f"{self.cert} is not for {what}: its extended key usage leaves it out")

    def _check_current(self, now: _dt.datetime | None, holder: str) -> tuple[Identity, x509.Certificate]:
        """Who ``cert`` names, and the certificate, once it is checked to be issued by (one of) the CAs in ``ca_cert``,
        valid ``now``, for client authentication (nodes dial too), and with the authority key
        identifier the strict RFC 5280 checks of every TLS context here want."""
        cas, cert = _load_certificates(self.ca_cert), load_certificate(self.cert)
        if not any(_issued_by(cert, ca) for ca in cas):
            raise CertificateFileError(f"{self.cert} is not issued by the CA in {self.ca_cert}")
        try:
            cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
        except x509.ExtensionNotFound:
            raise CertificateFileError(
                f"{self.cert} has no authority key identifier: nodes refuse it (strict RFC 5280 checks)"
            ) from None
        now = now or _dt.datetime.now(_dt.timezone.utc)
        if now < cert.not_valid_before_utc - _CLOCK_SKEW:
            raise CertificateFileError(
                f"{self.cert} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC: check this clock"
            )
        if now > cert.not_valid_after_utc:
            raise CertificateFileError(
                f"{self.cert} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: issue {holder} a new "
                "certificate from the consortium CA"
            )
        try:
            ident = certificate_identity(cert)
        except PeerIdentityError as exc:
            raise CertificateFileError(f"{self.cert}: {exc}") from None
        self._check_usage(cert, ExtendedKeyUsageOID.CLIENT_AUTH, "client authentication (clientAuth)")
        return ident, cert

    def to_dict(self) -> dict[str, str]:
        """JSON-friendly form (for a node config file)."""
        return {"ca_cert": str(self.ca_cert), "cert": str(self.cert), "key": str(self.key)}

    @classmethod
    def from_dict(cls, d: dict[str, str]) -> TLSFiles:
        """Inverse of :meth:`to_dict`."""
        return cls(Path(d["ca_cert"]), Path(d["cert"]), Path(d["key"]))

    def under(self, home: PathLike) -> TLSFiles:
        """These files with each relative path taken from ``home`` (absolute ones stay as they are):
        how a config file's paths are read, whatever the working directory."""
        return TLSFiles(*(Path(home) / p for p in (self.ca_cert, self.cert, self.key)))


def write_tls_files(
    directory: PathLike, ca: Credentials, creds: Credentials, *, stem: str = "node"
) -> TLSFiles:
    """Write ``ca.crt``, ``<stem>.crt`` and ``<stem>.key`` (0600) into ``directory``: everything a
    node needs, and not the CA's private key."""
    files = TLSFiles.in_dir(directory, stem=stem)
    _write_atomic(
        (files.ca_cert, ca.cert_pem(), 0o644), (files.key, creds.key_pem(), 0o600), (files.cert, creds.cert_pem(), 0o644)
    )
    return files


# ---------------------------------------------------------------------------------------------
# TLS contexts


def _harden(ctx: ssl.SSLContext, ca_cert: PathLike) -> None:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3 if ssl.HAS_TLSv1_3 else ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    # Strict RFC 5280 checks (our certificates carry the key identifiers strict mode wants).
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    # Trust the consortium CA only: never load the system store.
    try:
        ctx.load_verify_locations(cafile=os.fspath(ca_cert))
    except (OSError, ssl.SSLError) as exc:  # neither names the file
        raise CertificateFileError(f"cannot load the CA certificate {os.fspath(ca_cert)}: {exc}") from None


def _load_chain(
    ctx: ssl.SSLContext, cert: PathLike, key: PathLike, password: bytes | None
) -> None:
    def no_password() -> bytes:  # OpenSSL's own fallback asks on the terminal and waits for ever
        raise CertificateFileError(f"private key {os.fspath(key)} is encrypted and no password was given")

    try:
        _check_key_file_mode(Path(key))
        ctx.load_cert_chain(os.fspath(cert), os.fspath(key), password=no_password if password is None else password)
    except (OSError, ssl.SSLError) as exc:  # neither names the files
        raise CertificateFileError(
            f"cannot load the certificate {os.fspath(cert)} with its key {os.fspath(key)}: {exc}"
        ) from None


def server_context(
    ca_cert: PathLike, cert: PathLike, key: PathLike, *, password: bytes | None = None
) -> ssl.SSLContext:
    """A server-side context that presents ``cert`` and requires a client certificate issued by
    the CA in ``ca_cert`` (TLS 1.3 minimum where available)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(ctx, ca_cert)
    _load_chain(ctx, cert, key, password)
    return ctx


def client_context(
    ca_cert: PathLike,
    cert: PathLike | None = None,
    key: PathLike | None = None,
    *,
    password: bytes | None = None,
) -> ssl.SSLContext:
    """A client-side context that trusts only the CA in ``ca_cert``, checks the server's name and
    presents ``cert`` (omit ``cert``/``key`` only for a client the server will then refuse)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname on by default
    _harden(ctx, ca_cert)
    ctx.check_hostname = True
    if (cert is None) != (key is None):
        raise CertificateFileError("client_context needs both cert and key, or neither")
    if cert is not None and key is not None:
        _load_chain(ctx, cert, key, password)
    return ctx


# ---------------------------------------------------------------------------------------------
# Peer identity


def _peer_cert(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> x509.Certificate:
    if ssl_object is None:
        raise PeerIdentityError("connection is not TLS")
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        raise PeerIdentityError("peer presented no certificate")
    return x509.load_der_x509_certificate(der)


def certificate_identity(cert: x509.Certificate) -> Identity:
    """The name and role ``cert`` names (``PeerIdentityError`` if it names none); not a check of it."""
    name = _single_attr(cert.subject, NameOID.COMMON_NAME)
    role = _single_attr(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME)
    if role not in (ROLE_NODE, ROLE_CLIENT):
        raise PeerIdentityError(f"certificate role {role!r} is neither node nor client")
    return Identity(name, role)


def peer_identity(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> Identity:
    """The name and role in the certificate the peer of a completed handshake presented.

    Only meaningful on a context that verified it (``CERT_REQUIRED``, as built above); this reads
    the certificate, it does not verify it again."""
    return certificate_identity(_peer_cert(ssl_object))


def peer_node_id(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str:
    """The node id in a verified peer's node certificate.

    Raises :class:`PeerIdentityError` if there is no certificate or it is not a node certificate
    (OU ``node``, EKU serverAuth, a valid node id as CN)."""
    cert = _peer_cert(ssl_object)
    ident = certificate_identity(cert)
    if ident.role != ROLE_NODE:
        raise PeerIdentityError(f"certificate for {ident.name!r} is a {ident.role} certificate")
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise PeerIdentityError("node certificate without extended key usage") from None
    if ExtendedKeyUsageOID.SERVER_AUTH not in eku:
        raise PeerIdentityError("node certificate without serverAuth usage")
    try:
        return validate_node_id(ident.name)
    except InvalidNodeIdError as e:
        raise PeerIdentityError(str(e)) from None
