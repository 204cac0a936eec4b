"""The error hierarchy: everything derives from LedgerError, caller mistakes also from ValueError."""

from __future__ import annotations

import inspect

import pytest

import ledgercore
from ledgercore import errors

INPUT_ERRORS = [
    errors.InvalidInputError,
    errors.UnknownNameError,
    errors.InvalidLengthError,
    errors.InvalidKeyError,
    errors.OutOfRangeError,
    errors.MalformedInputError,
]


def all_error_classes() -> list[type]:
    return [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, BaseException) and obj.__module__ == errors.__name__
    ]


def test_every_error_class_derives_from_ledger_error():
    classes = all_error_classes()
    assert set(INPUT_ERRORS) <= set(classes)
    for cls in classes:
        assert issubclass(cls, errors.LedgerError), cls


def test_input_errors_are_value_errors():
    for cls in INPUT_ERRORS:
        assert issubclass(cls, ValueError), cls
        assert issubclass(cls, errors.InvalidInputError), cls


def test_ledger_error_is_exported_at_top_level():
    assert ledgercore.LedgerError is errors.LedgerError
    assert issubclass(errors.LedgerError, Exception)


@pytest.mark.parametrize(
    "call, cls",
    [
        (lambda: ledgercore.hashing.digest(b"", "md5"), errors.UnknownNameError),
        (lambda: ledgercore.signing.verify("ed25519", b"\0" * 31, b"", b"\0" * 64), errors.InvalidLengthError),
        (lambda: ledgercore.signing.from_private_bytes("p256", b"\0" * 32), errors.InvalidKeyError),
        (lambda: ledgercore.merkle.MerkleLog("sha256").root(1), errors.OutOfRangeError),
        (lambda: ledgercore.merkle.MerkleLog.from_bytes(b"garbage"), errors.MalformedInputError),
    ],
)
def test_native_errors_arrive_as_the_python_classes(call, cls):
    """The native layer raises the classes defined in ledgercore.errors, catchable as LedgerError."""
    with pytest.raises(cls) as info:
        call()
    assert type(info.value) is cls
    assert isinstance(info.value, errors.LedgerError)
    assert isinstance(info.value, ValueError)
    assert str(info.value)
