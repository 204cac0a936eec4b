"""Crypto suites: the signature scheme and hash function a chain picks at genesis.

Every signature and hash of a chain follows its suite; encodings carry it as a one-byte code.

========================  ==========  =========  ====  ===============
name                      scheme      hash       code  public key size
========================  ==========  =========  ====  ===============
``ed25519-blake3``        ed25519     blake3     1     32
``sm2-sm3`` (国密)         sm2         sm3        2     65
``p256-sha256``           p256        sha256     3     65
========================  ==========  =========  ====  ===============
"""

from __future__ import annotations

from dataclasses import dataclass

from . import _native
from .errors import UnknownNameError


@dataclass(frozen=True)
class Suite:
    name: str
    scheme: str
    hash: str
    code: int
    public_key_size: int


# From the native core, so the codes the codec writes and these can never disagree.
SUITES: dict[str, Suite] = {row[0]: Suite(*row) for row in _native.suites()}
DEFAULT_SUITE = "ed25519-blake3"

_BY_SCHEME = {s.scheme: s for s in SUITES.values()}
_BY_CODE = {s.code: s for s in SUITES.values()}


def get_suite(name: str | Suite) -> Suite:
    """The suite called ``name`` (a registered :class:`Suite` passes through: one made by hand
    may pair a name with another scheme or hash, and what is encoded carries only the name)."""
    if isinstance(name, Suite):
        if SUITES.get(name.name) != name:
            raise UnknownNameError(f"{name!r} is not a registered suite; expected one of {', '.join(map(repr, SUITES))}")
        return name
    try:
        return SUITES[name]
    except (KeyError, TypeError):
        valid = ", ".join(repr(n) for n in SUITES)
        raise UnknownNameError(f"unknown suite {name!r}; expected one of {valid}") from None


def suite_for_scheme(scheme: str) -> Suite:
    """The suite whose signature scheme is ``scheme`` (each scheme belongs to exactly one)."""
    try:
        return _BY_SCHEME[scheme]
    except (KeyError, TypeError):
        valid = ", ".join(repr(s) for s in _BY_SCHEME)
        raise UnknownNameError(f"no suite uses signature scheme {scheme!r}; expected one of {valid}") from None


def suite_for_code(code: int) -> Suite:
    """The suite with the one-byte ``code`` that encodings carry."""
    try:
        return _BY_CODE[code]
    except (KeyError, TypeError):
        raise UnknownNameError(f"unknown suite code {code!r}; expected one of {sorted(_BY_CODE)}") from None
