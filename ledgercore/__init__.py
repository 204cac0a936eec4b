"""ledgercore: a ledger core for government-service consortium blockchains (政务区块链)."""

from . import codec, errors, hashing, merkle, signing, suites
from ._native import thread_count
from .block import BlockHeader
from .errors import LedgerError
from .ledger import Block, BlockInput, CheckedBlock, Ledger
from .transaction import Transaction

__all__ = [
    "Block",
    "BlockHeader",
    "BlockInput",
    "CheckedBlock",
    "Ledger",
    "LedgerError",
    "Transaction",
    "codec",
    "errors",
    "hashing",
    "merkle",
    "signing",
    "suites",
    "thread_count",
]
__version__ = "0.1.0"
