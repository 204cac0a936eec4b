"""Every error ledgercore raises derives from :class:`LedgerError`.

Errors caused by the caller's input also derive from :class:`ValueError`, so code that already
catches ``ValueError`` for bad input keeps working.
"""


class LedgerError(Exception):
    """Base class of all ledgercore errors."""


class InvalidInputError(LedgerError, ValueError):
    """The caller passed something ledgercore cannot accept."""


class UnknownNameError(InvalidInputError):
    """An unknown hash algorithm, signature scheme, suite, contract or method name."""


class InvalidLengthError(InvalidInputError):
    """Bytes of the wrong length (a key, a signature, a digest)."""


class InvalidKeyError(InvalidInputError):
    """Bytes of the right length that are not a valid key."""


class OutOfRangeError(InvalidInputError):
    """An index or size outside what exists."""


class MalformedInputError(InvalidInputError):
    """Bytes or containers that do not decode as what they claim to be."""


class InvalidSignatureError(InvalidInputError):
    """A block carries transactions whose signatures do not verify; nothing was written."""

    def __init__(self, indices: list[int]) -> None:
        self.indices = indices
        shown = ", ".join(map(str, indices[:10])) + (" ..." if len(indices) > 10 else "")
        super().__init__(f"{len(indices)} transaction(s) with invalid signatures, at index {shown}")


class NotFoundError(LedgerError, KeyError):
    """A block, transaction or key that the ledger does not hold."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ChainMismatchError(InvalidInputError):
    """A store opened with a suite or chain id other than the one it was created with."""


class DecodeError(MalformedInputError):
    """Bytes that are not a canonical encoding (truncated, trailing bytes, unknown version or suite
    code, non-canonical form, wrong chain). The message says what and where; ``index`` is the
    position in a batch the bad item had, or ``None``."""

    index: int | None = None


class EncodeError(InvalidInputError):
    """Something that cannot be encoded: an unsupported type, an integer out of range, a bad name,
    an oversize field. The message starts with the path of the culprit, e.g. ``args["meta"][2]``."""


class IntegrityError(LedgerError):
    """A stored ledger disagrees with what its own blocks re-derive (``Ledger.audit``).

    ``height`` is the first block that disagrees (None when the disagreement is not tied to a
    block, e.g. chain metadata) and ``field`` what disagrees there (``tx_root``, ``state_root``,
    ``prev_hash``, ``state``, ...)."""

    def __init__(self, height: int | None, field: str, detail: str) -> None:
        self.height, self.field, self.detail = height, field, detail
        where = "chain metadata" if height is None else f"height {height}"
        super().__init__(f"{where}: {field}: {detail}")

    def __reduce__(self) -> tuple:
        return (type(self), (self.height, self.field, self.detail))
