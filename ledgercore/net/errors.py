"""Errors of the network layer (certificates, TLS, framing, peers).

All derive from :class:`ledgercore.errors.LedgerError`; the ones caused by the caller's input (a bad
node id, an unknown peer, an oversize payload) also derive from ``ValueError`` through
:class:`ledgercore.errors.InvalidInputError`.
"""

from __future__ import annotations

from ledgercore.errors import InvalidInputError, LedgerError, MalformedInputError


class TransportError(LedgerError):
    """Base class of the errors the transport raises or logs."""


class TransportClosedError(TransportError):
    """The transport was stopped (or never started, for :meth:`Transport.recv`)."""


class UnknownPeerError(TransportError, InvalidInputError):
    """A node id that is not in the transport's peer set."""


class MalformedFrameError(TransportError, MalformedInputError):
    """Bytes on a connection that are not a well-formed frame (e.g. a stream cut mid-frame)."""


class FrameTooLargeError(MalformedFrameError):
    """A frame longer than the configured maximum, announced by a peer or passed to ``send``."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"frame of {size} bytes exceeds the limit of {limit} bytes")


class HandshakeError(TransportError):
    """A TLS handshake that failed: no certificate, one not issued by the consortium CA, an
    expired one, or bytes that are not TLS at all."""


class PeerRejectedError(TransportError):
    """A peer whose verified certificate names a node outside the configured peer set, or not the
    node that was dialled."""


class PkiError(LedgerError):
    """Base class of certificate and key errors."""


class InvalidNodeIdError(PkiError, InvalidInputError):
    """A node id that cannot be a certificate subject and DNS name (see ``validate_node_id``)."""


class CertificateFileError(PkiError, InvalidInputError):
    """A PEM file that does not hold what it should, or a key that does not match its certificate."""


class InsecureKeyFileError(PkiError, InvalidInputError):
    """A private-key file readable or writable by users other than its owner."""


class PeerIdentityError(PkiError):
    """A peer certificate that is missing or does not carry a node identity."""
