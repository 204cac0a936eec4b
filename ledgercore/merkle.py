"""RFC 9162 Merkle trees (section 2.1) over the chain's hash: roots, inclusion and consistency proofs.

Leaves are data; the tree hashes them as ``H(0x00 || data)`` and nodes as ``H(0x01 || left || right)``.
The module functions take a bytearray or memoryview wherever they take bytes; :class:`MerkleLog`, the
native class itself, takes bytes only (anything else is a ``MalformedInputError``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import _native
from .hashing import ALGORITHMS
from .native_args import Params, call

MerkleLog = _native.MerkleLog
"""Append-only log: ``append``, ``extend``, ``size``, ``root(size=None)``, ``inclusion_proof(index, size=None)``,
``consistency_proof(old_size, new_size=None)``, ``to_bytes()`` and ``MerkleLog.from_bytes(data)``."""

Leaves = Sequence[bytes] | np.ndarray

# The native calls' arguments, for call (the proofs' are this module's order: algo first).
_ALGO = ("algo", ALGORITHMS)
_ROOT: Params = (_ALGO, ("leaves", None))
_VERIFY_INCLUSION: Params = (
    _ALGO, ("leaf", bytes), ("index", None), ("tree_size", None), ("proof", None), ("root", bytes)
)  # fmt: skip
_VERIFY_CONSISTENCY: Params = (
    _ALGO, ("old_size", None), ("new_size", None), ("old_root", bytes), ("new_root", bytes), ("proof", None)
)  # fmt: skip


def _log(leaves: Leaves, algo: str) -> _native.MerkleLog:
    log = call(MerkleLog, (_ALGO,), algo)  # which checks the leaves and positions itself
    log.extend(leaves)
    return log


def root(leaves: Leaves, algo: str = "sha256") -> bytes:
    """The root of the tree over ``leaves``, computed without building a log (in parallel above
    65,536 leaves)."""
    return call(_native.merkle_root, _ROOT, algo, leaves)


def inclusion_proof(leaves: Leaves, index: int, algo: str = "sha256") -> list[bytes]:
    """The audit path of leaf ``index``, leaf to root."""
    return _log(leaves, algo).inclusion_proof(index)


def consistency_proof(leaves: Leaves, old_size: int, algo: str = "sha256") -> list[bytes]:
    """Proof that the tree over ``leaves[:old_size]`` is a prefix of the tree over ``leaves``."""
    return _log(leaves, algo).consistency_proof(old_size)


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes, algo: str = "sha256"
) -> bool:
    """Whether ``proof`` places leaf data ``leaf`` at ``index`` in the tree of ``tree_size`` leaves."""
    return call(_native.merkle_verify_inclusion, _VERIFY_INCLUSION, algo, leaf, index, tree_size, proof, root)


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes], algo: str = "sha256"
) -> bool:
    """Whether ``proof`` shows the tree of ``old_size`` leaves is a prefix of the one of ``new_size``."""
    return call(
        _native.merkle_verify_consistency, _VERIFY_CONSISTENCY, algo, old_size, new_size, old_root, new_root, proof
    )
