"""Objects a user's own module provides, named ``MODULE:NAME``: contracts and a permission hook,
for the nodes of a chain (each must run the same code) and for the audit that replays it."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

from .contracts.base import Contract
from .errors import LedgerError
from .execution import Authorizer


class UserCodeError(LedgerError, ValueError):
    """A ``MODULE:NAME`` that cannot be loaded: malformed, naming nothing, or whose import or
    construction raised (the user's code, not the ledger's)."""


def load_named(spec: object, what: str, *, instantiate: bool = False) -> Any:
    """The object ``spec`` (``MODULE:NAME``) names; a class is instantiated if ``instantiate``.
    ``what`` says in errors what the object is for."""
    try:
        if not isinstance(spec, str):
            raise TypeError(f"wants a MODULE:NAME string, got {type(spec).__name__}")
        module, _, name = spec.partition(":")
        if not module or not name:
            raise ValueError("wants MODULE:NAME")
        obj = getattr(importlib.import_module(module), name)
        return obj() if instantiate and isinstance(obj, type) else obj
    except Exception as exc:  # the user's module can raise anything
        named = spec[:200] if isinstance(spec, str) else repr(spec)[:200]
        raise UserCodeError(f"cannot load {what} {named}: {type(exc).__name__}: {exc}") from exc


def load_contracts(specs: Iterable[str], what: str = "contract") -> list[Contract]:
    """The contracts ``specs`` name (a Contract subclass, instantiated, or an instance)."""
    return [load_named(spec, what, instantiate=True) for spec in specs]


def load_authorizer(spec: str | None, what: str = "authorize") -> Authorizer | None:
    """The permission hook ``spec`` names, or None for none."""
    return None if not spec else load_named(spec, what)
