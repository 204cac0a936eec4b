"""Canonical values: the deterministic encoding of transaction args and contract state values.

One value has exactly one encoding (docs/FORMAT.md), so equal values hash equally on every node.

==================================  =============================================================
Python                              encoded as
==================================  =============================================================
``None``                            null
``bool``                            false / true
``int`` in [-2**63, 2**63 - 1]      int (i64); outside that range: :class:`~.errors.EncodeError`
``bytes``, ``bytearray``,           bytes (decodes to ``bytes``)
``memoryview``
``str``                             str (UTF-8)
``list``, ``tuple``                 list (decodes to ``list``)
``dict`` with ``str`` keys          map, keys sorted by their UTF-8 bytes
==================================  =============================================================

Lists and maps nest at most :data:`MAX_VALUE_DEPTH` deep. Anything else raises
:class:`~.errors.EncodeError` naming the type and where it is: ``value["meta"][2]: float is not
encodable``. Decoding rejects anything that is not exactly one canonical value with
:class:`~.errors.DecodeError`.
"""

from __future__ import annotations

from . import _native
from .errors import DecodeError, EncodeError, LedgerError
from .native_args import bytes_of

MAX_VALUE_DEPTH: int = _native.MAX_VALUE_DEPTH
_LIST_TAG = 0x06  # docs/FORMAT.md, section 2


def utf8(text: object, what: str, error: type[LedgerError] = EncodeError) -> bytes:
    """The UTF-8 bytes of a name, key or chain id given as ``str``. Anything else, or a ``str``
    holding a lone surrogate (which no UTF-8 encodes), raises ``error`` naming ``what``."""
    if not isinstance(text, str):
        raise error(f"{what} must be a str, got {type(text).__name__}")
    try:
        return text.encode()
    except UnicodeEncodeError:
        raise error(f"{what} {text!r:.80} is not valid UTF-8 (it holds a lone surrogate)") from None


def encode_value(obj: object) -> bytes:
    """The canonical encoding of ``obj``."""
    return _native.encode_value(obj)


def list_length(data: bytes) -> int | None:
    """The item count a list's encoding declares in its header (tag ``0x06``, ``u32`` count), or
    None where ``data`` does not start with one: to refuse an oversize list before decoding it."""
    if len(data) < 5 or data[0] != _LIST_TAG:
        return None
    return int.from_bytes(data[1:5], "big")


def decode_value(data: bytes) -> object:
    """The value ``data`` encodes (maps become dicts in key order, lists lists). A bytearray or
    memoryview is copied to bytes first; anything else is a ``DecodeError``."""
    try:
        return _native.decode_value(data)
    except TypeError:  # the native call takes bytes only: the other types are checked off the hot path
        return _native.decode_value(bytes_of(data, "a value to decode", DecodeError))
