"""``ledgercore renew-cert``: a node's next certificate, before (or after) its current one expires.

Node certificates from ``init-cluster`` are valid for a year; a node refuses to start on an
expired one, and its peers refuse it. This issues a fresh key and certificate from the
consortium CA (``D/ca.crt``, ``D/ca.key``) for one node of ``D/cluster.json``, with the same
names (node id, its host), and writes them over the node's files, the two together (a failure
keeps the old pair). The node takes them at its next start.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from ..net import pki
from ..net.errors import CertificateFileError, PeerIdentityError
from .cluster import load_cluster
from .config import NodeConfig

MAX_DAYS = pki.DEFAULT_CA_VALIDITY.days


def _check_days(days: int) -> None:
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise InvalidInputError(f"days must be an integer of 1..{MAX_DAYS} (the CA's own validity), got {days!r}")


def renew_certificate(directory: str | Path, node_id: str, *, days: int = 365) -> pki.TLSFiles:
    """Issues ``node_id`` of the cluster in ``directory`` a certificate valid for ``days`` and
    writes it, with its new key, where the node's config names its TLS files."""
    _check_days(days)
    d = Path(directory)
    entry = next((n for n in load_cluster(d).nodes if n["id"] == node_id), None)
    if entry is None:
        raise InvalidInputError(f"no node {node_id!r} in {d / 'cluster.json'}")
    cfg = NodeConfig.load(entry["config"])
    ca = pki.load_credentials(d / "ca.crt", d / "ca.key")
    creds = pki.issue_node_certificate(ca, cfg.id, hosts=cfg.hosts, validity=dt.timedelta(days=days))
    _write(creds, cfg.tls)
    cfg.tls.check_node(cfg.id)
    return cfg.tls


def renew_client_certificate(directory: str | Path, *, days: int = 365) -> pki.TLSFiles:
    """Issues the client of the cluster in ``directory`` (``cluster.json``'s ``client_tls``) a
    certificate valid for ``days``, for the same name, and writes it with its new key."""
    _check_days(days)
    d = Path(directory)
    tls = load_cluster(d).client_tls
    ca = pki.load_credentials(d / "ca.crt", d / "ca.key")
    try:
        name = pki.certificate_identity(pki.load_certificate(tls.cert)).name
    except (CertificateFileError, PeerIdentityError):
        name = "client"  # the certificate is gone or unreadable: the name init-cluster gives
    creds = pki.issue_client_certificate(ca, name, validity=dt.timedelta(days=days))
    _write(creds, tls)
    tls.check_client()
    return tls


def _write(creds: pki.Credentials, tls: pki.TLSFiles) -> None:
    """Writes the new key and certificate over ``tls``'s, the two together (or neither)."""
    try:
        pki.write_credentials(creds, tls.cert, tls.key)
    except OSError as exc:  # a full disk, say: what is on disk now?
        try:
            replaced = tls.key.read_bytes() == creds.key_pem()
        except OSError:
            replaced = True  # unknown: never claim the old pair is whole
        after = "the key may be new and the certificate old: run this again" if replaced else "the old ones are kept"
        raise OSError(exc.errno, f"cannot write {tls.key} and {tls.cert}: {exc.strerror or exc}; {after}") from exc


def _run(args: argparse.Namespace) -> int:
    try:
        if args.client:
            tls = renew_client_certificate(args.dir, days=args.days)
        else:
            tls = renew_certificate(args.dir, args.node, days=args.days)
    except (InvalidInputError, OSError, ValueError) as exc:
        print(f"ledgercore renew-cert: {exc}", file=sys.stderr)
        return 2
    until = pki.load_certificate(tls.cert).not_valid_after_utc
    who = "clients" if args.client else args.node
    print(f"wrote {tls.cert} and {tls.key}, valid until {until:%Y-%m-%d %H:%M} UTC; restart {who} to use them")
    return 0


def register(commands: Any) -> None:
    """Adds ``ledgercore renew-cert`` to the top-level sub-parsers."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "renew-cert",
        help="issue one node (or the client) of a cluster a new certificate and key from the consortium CA",
        description="Issue NODE of the cluster in DIR (written by init-cluster), or with --client its client, "
        "a new key and certificate from DIR/ca.crt and DIR/ca.key, and write them over its TLS files. "
        "Restart the node (or the client) to use them.",
    )
    parser.add_argument("--dir", required=True, metavar="DIR", help="the directory init-cluster wrote")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--node", metavar="ID", help="the node's id (e.g. node1)")
    who.add_argument("--client", action="store_true", help="the client certificate (cluster.json's client_tls)")
    parser.add_argument("--days", type=int, default=365, metavar="N", help="validity in days (default 365)")
    parser.set_defaults(handler=_run)
