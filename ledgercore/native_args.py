"""Typed errors for the native calls' argument conversion, kept off the hot path.

The native functions take exactly ``bytes``, ``int`` and ``str``; PyO3 refuses anything else with a
bare ``TypeError`` (``UnicodeEncodeError`` for a str that is not UTF-8). The wrappers go through
:func:`call`: the native function first and, only where that refuses its arguments, again with each
bytearray or memoryview copied to bytes, or the typed error naming the wrong argument.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import InvalidInputError, LedgerError, MalformedInputError, UnknownNameError

_R = TypeVar("_R")

# What a native call raises for an argument it cannot convert (a str with a lone surrogate is no UTF-8).
_REFUSED = (TypeError, UnicodeEncodeError)

# What a native call takes, argument by argument, for ``call``: (name, kind), where kind is
# ``bytes``, a tuple of the names a str may be, or None (checked by the native side itself: row
# columns and integer positions, which raise typed errors of their own).
Params = tuple[tuple[str, Any], ...]


def call(fn: Callable[..., _R], params: Params, *args: Any) -> _R:
    """``fn(*args)``; where its argument conversion refuses them, ``fn`` again with
    :func:`_retry_args`'s (or the typed error it raises). ``params`` names ``fn``'s arguments."""
    try:
        return fn(*args)
    except _REFUSED:
        fixed = _retry_args(params, *args)
    return fn(*fixed)


def bytes_of(value: object, what: str, error: type[LedgerError] = MalformedInputError) -> bytes:
    """``value`` itself if bytes, a copy if a bytearray or memoryview; anything else (``bytes(5)``
    would be five zero bytes, ``bytes(10**10)`` ten gigabytes) or a released view is ``error``,
    naming ``what``."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        try:
            return bytes(value)
        except ValueError as exc:  # a released memoryview
            raise error(f"{what}: {exc}") from None
    raise error(f"{what} must be bytes, got {type(value).__name__}") from None


def _retry_args(params: Params, *args: Any) -> tuple[Any, ...]:
    """Called where a native call's argument conversion refused ``args`` (it takes exactly
    ``bytes``, ``int`` and ``str``): ``args`` with each bytearray or memoryview copied to bytes, to
    call again with. Raises the typed error naming the first argument of a wrong type instead, and
    ``InvalidInputError`` where no argument was wrong and none was copied. Kept off the hot path:
    only reached once the native call has refused its arguments."""
    fixed = []
    for (name, kind), value in zip(params, args, strict=True):
        if kind is bytes:
            value = bytes_of(value, name)
        elif kind is not None and value not in kind:  # not a str, or one holding a lone surrogate
            names = ", ".join(f'"{n}"' for n in kind)
            got = repr(value)[:80] if isinstance(value, str) else type(value).__name__
            raise UnknownNameError(f"{name} must be a str, one of {names}; got {got}") from None
        fixed.append(value)
    if all(new is old for new, old in zip(fixed, args)):
        raise InvalidInputError(f"invalid arguments: {sys.exc_info()[1]}") from None
    return tuple(fixed)
