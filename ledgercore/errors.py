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


class HeaderMismatchError(InvalidInputError):
    """A block re-executed to a header other than the one its caller expected (a block served by a
    peer whose chain, or whose contracts' results, differ from this ledger's); nothing was written."""


class NotFoundError(LedgerError, KeyError):
    """A block, transaction or key that the ledger does not hold."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ChainMismatchError(InvalidInputError):
    """A store opened with a suite or chain id other than the one it was created with, or a block
    checked by a ledger of another chain."""


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


class ConcurrentWriteError(LedgerError):
    """Another ``Ledger`` (in another process) committed blocks to the store since this one read
    its head. Nothing was written: any read catches this one up to the stored head."""


class ReentrantCallError(LedgerError):
    """A ledger write or ``close()`` called from inside one of that ledger's writes (by a
    contract or an authorize hook, which run on its write thread): it would wait for itself."""


class ClientError(LedgerError):
    """An error answered by (or on the way to) a node's client API (``ledgercore.client``).

    ``status`` is the HTTP status (None when no answer came), ``retry_after`` the seconds the node
    asked to wait (503), and ``retryable`` whether sending the same request again may succeed."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message, self.status, self.retry_after = message, status, retry_after

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple:
        return (_rebuild_client_error, (type(self), self.message, self.status, self.retry_after))


def _rebuild_client_error(
    cls: type[ClientError], message: str, status: int | None, retry_after: float | None
) -> ClientError:
    return cls(message, status=status, retry_after=retry_after)


class RequestRejectedError(ClientError, InvalidInputError):
    """The node refused the request as bad input (HTTP 400, 405, 413, ...): a malformed or badly
    signed transaction, bad hex, an oversize body."""


class RemoteNotFoundError(ClientError, NotFoundError):
    """The node does not hold the block, transaction or route asked for (HTTP 404)."""


class UnavailableError(ClientError):
    """The node cannot take the request now (HTTP 503: no leader known, mempool full) or cannot be
    reached at all (``status`` None). Retry, after ``retry_after`` seconds when given."""

    retryable = True


class CommitTimeoutError(ClientError, TimeoutError):
    """The transaction was not committed in time (HTTP 504), or the node did not answer within the
    client's timeout. It may still commit: look it up with ``Client.tx`` before sending it again."""

    retryable = True


class TLSRefusedError(ClientError):
    """The TLS handshake with the node failed: this client does not trust the node's certificate
    (not issued by the CA it was given), or the node sent an alert refusing this client's. Sending
    again will not help: fix the certificates."""


class ServerError(ClientError):
    """The node failed while handling the request (HTTP 5xx other than 503 and 504)."""
