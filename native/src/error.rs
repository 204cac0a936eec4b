//! The native layer's one error type. `bindings` converts it to Python exceptions in one place.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// A hash algorithm or signature scheme name that ledgercore does not know.
    #[error("unknown {kind} {name:?}; expected one of {expected}")]
    UnknownName { kind: &'static str, name: String, expected: &'static str },
    /// An input of the wrong byte length (key, signature, digest, ...).
    #[error("{what} must be {expected} bytes, got {got}")]
    BadLength { what: &'static str, expected: usize, got: usize },
    /// Well-sized bytes that do not encode a valid key.
    #[error("invalid {what}: {reason}")]
    InvalidKey { what: &'static str, reason: String },
    /// An index or size outside what the tree holds.
    #[error("{what} {value} out of range: {bound}")]
    OutOfRange { what: &'static str, value: u64, bound: String },
    /// Columns of a batch that do not line up.
    #[error("batch columns differ in length: {0}")]
    BatchMismatch(String),
    /// Bytes that do not decode as what they claim to be.
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    /// Bytes that are not a canonical encoding of `what` (truncated, trailing bytes, unknown version
    /// or suite code, non-canonical form). `index` names the item of a batch it came from; the
    /// message then reads `transaction 3: ...`.
    #[error("{what}{}: {reason}", .index.map(|i| format!(" {i}")).unwrap_or_default())]
    Decode { what: &'static str, index: Option<usize>, reason: String },
    /// Something that cannot be encoded: `what` is a field name or a path into a value
    /// (`args["meta"][2]`), `reason` says why (wrong type, out of range, too long, bad name).
    #[error("{what}: {reason}")]
    Encode { what: String, reason: String },
}

pub type Result<T> = std::result::Result<T, Error>;
