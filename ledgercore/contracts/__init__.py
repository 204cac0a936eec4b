"""Contracts: the built-ins (``evidence``, ``cert``) and the base for writing your own."""

from .base import Context, Contract, ContractError, ContractInputError, ContractState, method, query
from .builtins import Cert, Evidence, builtin_contracts

__all__ = ["Cert", "Context", "Contract", "ContractError", "ContractInputError", "ContractState", "Evidence", "builtin_contracts", "method", "query"]
