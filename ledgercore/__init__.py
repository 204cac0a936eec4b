"""ledgercore: a ledger core for government-service consortium blockchains (政务区块链)."""

from . import errors, hashing, merkle, signing
from ._native import thread_count
from .errors import LedgerError

__all__ = ["LedgerError", "errors", "hashing", "merkle", "signing", "thread_count"]
__version__ = "0.1.0"
