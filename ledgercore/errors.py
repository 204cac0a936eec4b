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
