"""Typed errors for the native calls' argument conversion, kept off the hot path.

The native functions take exactly ``bytes``, ``int`` and ``str``; PyO3 refuses anything else with a
bare ``TypeError`` (``UnicodeEncodeError`` for a str that is not UTF-8). A wrapper calls the native function first and, only where that raises
``TypeError``, asks :func:`retry_args` for the arguments to call again with (each bytearray or
memoryview copied to bytes) or for the typed error naming the wrong one.
"""

from __future__ import annotations

import sys
from typing import Any

from .errors import InvalidInputError, MalformedInputError, UnknownNameError

REFUSED = (TypeError, UnicodeEncodeError)
"""What a native call raises for an argument it cannot convert (a str with a lone surrogate is no
UTF-8): the wrappers then ask :func:`retry_args`."""

# What a native call takes, argument by argument, for ``retry_args``: (name, kind), where kind is
# ``bytes``, a tuple of the names a str may be, or None (checked by the native side itself: row
# columns and integer positions, which raise typed errors of their own).
Params = tuple[tuple[str, Any], ...]


def retry_args(params: Params, *args: Any) -> tuple[Any, ...]:
    """Called where a native call's argument conversion raised one of :data:`REFUSED` (it takes exactly
    ``bytes``, ``int`` and ``str``): ``args`` with each bytearray or memoryview copied to bytes, to
    call again with. Raises the typed error naming the first argument of a wrong type instead, and
    ``InvalidInputError`` where no argument was wrong and none was copied. Kept off the hot path:
    callers only reach it once the native call has refused its arguments."""
    fixed = []
    for (name, kind), value in zip(params, args, strict=True):
        if kind is bytes:
            if isinstance(value, (bytearray, memoryview)):
                value = bytes(value)
            elif not isinstance(value, bytes):
                raise MalformedInputError(f"{name} must be bytes, got {type(value).__name__}") from None
        elif kind is not None and value not in kind:  # not a str, or one holding a lone surrogate
            names = ", ".join(f'"{n}"' for n in kind)
            got = repr(value)[:80] if isinstance(value, str) else type(value).__name__
            raise UnknownNameError(f"{name} must be a str, one of {names}; got {got}") from None
        fixed.append(value)
    if all(new is old for new, old in zip(fixed, args)):
        raise InvalidInputError(f"invalid arguments: {sys.exc_info()[1]}") from None
    return tuple(fixed)
