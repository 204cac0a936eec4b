"""The built-in contracts, executed by native kernels (see native/src/contracts/).

``evidence.put(key, digest, meta=None)`` anchors a digest under a key once and for all.
``cert.issue(cert_id, digest, meta=None)`` and ``cert.revoke(cert_id, reason)`` keep e-certificates;
only the issuer may revoke. Their queries decode the stored records.
"""

from __future__ import annotations

from typing import Any

from .. import _native
from ..codec import decode_value
from .base import Contract, ContractInputError, ContractState, Slice, SliceResult, query


class NativeContract(Contract):
    """A contract whose transactions run in one native pass per block slice."""

    def execute(self, sl: Slice) -> SliceResult:
        def read(keys: list[bytes]) -> list[tuple[bytes, bytes]]:
            return list(sl.state.get_many(keys).items())

        ok, errors, keys, values, txs = _native.run_builtin(self.name, sl.batch, sl.indices, read)
        return SliceResult(ok=ok, errors=dict(errors), keys=keys, values=values, txs=txs, writes_read=True)


def _digest(digest: Any) -> bytes:
    """A presented digest: bytes, as anchored. A hex string would never match, and saying so
    would call a genuine document tampered."""
    if not isinstance(digest, (bytes, bytearray, memoryview)):
        raise ContractInputError(f"digest must be bytes, got {type(digest).__name__}")
    return bytes(digest)


def _record(state: ContractState, key: str) -> dict[str, Any] | None:
    raw = state.get(key)
    return None if raw is None else decode_value(raw)  # type: ignore[return-value]


class Evidence(NativeContract):
    name = "evidence"

    def methods(self) -> frozenset[str]:
        return frozenset({"put"})

    @query
    def get(self, state: ContractState, key: str) -> dict[str, Any] | None:
        """The anchored record ``{"digest", "meta", "owner"}``, or None."""
        return _record(state, key)

    @query
    def verify(self, state: ContractState, key: str, digest: bytes) -> bool:
        """Whether ``digest`` is the one anchored under ``key``."""
        digest = _digest(digest)
        record = _record(state, key)
        return record is not None and record["digest"] == digest


class Cert(NativeContract):
    name = "cert"

    def methods(self) -> frozenset[str]:
        return frozenset({"issue", "revoke"})

    @query
    def status(self, state: ContractState, cert_id: str, digest: bytes | None = None) -> dict[str, Any]:
        """Says whether a certificate is registered, whether it is revoked, and (given a digest)
        whether the presented certificate's digest matches the registered one."""
        digest = None if digest is None else _digest(digest)
        record = _record(state, cert_id)
        if record is None:
            return {"registered": False, "revoked": False, "digest_matches": False if digest is not None else None}
        return {
            "registered": True,
            "revoked": record["revoked"],
            "reason": record["reason"],
            "issuer": record["issuer"],
            "meta": record["meta"],
            "digest_matches": None if digest is None else record["digest"] == digest,
        }


def builtin_contracts() -> list[Contract]:
    return [Evidence(), Cert()]


__all__ = ["Cert", "Evidence", "NativeContract", "builtin_contracts"]
