//! Canonical binary encodings of values, transactions, block headers and blocks (docs/FORMAT.md).
//!
//! Every encoding is big-endian and has exactly one valid form: decoders reject truncated input,
//! trailing bytes, unknown version or suite codes and non-canonical forms, and say what and where
//! (field name or value path, and the byte offset from the start of the outermost encoding).

pub mod block;
pub mod header;
pub mod tx;
pub mod value;

use std::fmt::Display;

use crate::error::{Error, Result};

pub use block::{decode_block, BlockFrame, DecodedBlock};
pub use header::{BlockHeader, HEADER_VERSION};
pub use tx::{decode_batch, Transaction, TxFields, TX_VERSION};
pub use value::Value;

/// Largest encoded transaction (payload and signature), in bytes: 1 MiB.
pub const MAX_TX_SIZE: usize = 1 << 20;
/// Longest chain id, in UTF-8 bytes (the shortest is 1).
pub const MAX_CHAIN_ID_LEN: usize = 64;
/// Longest contract or method name, in bytes (the shortest is 1).
pub const MAX_NAME_LEN: usize = 64;
/// Deepest nesting of lists and maps in a value.
pub const MAX_DEPTH: usize = 32;

/// A cursor over bytes being decoded, which names what and where when input is bad.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset of `data[0]` in the outermost encoding, so messages give absolute byte offsets.
    base: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(what: &'static str, data: &'a [u8]) -> Self {
        Self::at(what, data, 0)
    }

    pub(crate) fn at(what: &'static str, data: &'a [u8], base: usize) -> Self {
        Self { data, pos: 0, base, what }
    }

    /// Absolute offset of the next unread byte.
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// An error about the encoding as a whole.
    pub(crate) fn error(&self, reason: impl Into<String>) -> Error {
        Error::Decode { what: self.what, index: None, reason: reason.into() }
    }

    /// An error about `field`, which starts at absolute byte `offset`.
    pub(crate) fn error_at(&self, field: &dyn Display, offset: usize, reason: impl Display) -> Error {
        self.error(format!("{field} at byte {offset}: {reason}"))
    }

    pub(crate) fn take(&mut self, n: usize, field: &dyn Display) -> Result<&'a [u8]> {
        let left = self.remaining();
        if n > left {
            return Err(self.error_at(field, self.offset(), format_args!("truncated: needs {n} bytes, {left} left")));
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(&mut self, field: &dyn Display) -> Result<[u8; N]> {
        Ok(self.take(N, field)?.try_into().expect("took N bytes"))
    }

    pub(crate) fn u8(&mut self, field: &dyn Display) -> Result<u8> {
        Ok(self.take(1, field)?[0])
    }

    pub(crate) fn u16(&mut self, field: &dyn Display) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn u32(&mut self, field: &dyn Display) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: &dyn Display) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// A `u8` length in `min..=max` followed by that many bytes.
    pub(crate) fn short_bytes(&mut self, field: &'static str, min: usize, max: usize) -> Result<&'a [u8]> {
        let at = self.offset();
        let len = self.u8(&format_args!("{field} length"))? as usize;
        if len < min || len > max {
            return Err(self.error_at(
                &format_args!("{field} length"),
                at,
                format_args!("{len} is outside {min}..={max}"),
            ));
        }
        self.take(len, &field)
    }

    /// Rejects anything left after the last field.
    pub(crate) fn finish(&self, last_field: &str) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(self.error(format!("{n} trailing bytes at byte {} after the {last_field}", self.offset()))),
        }
    }
}

/// Checks a contract or method name: 1 to 64 bytes of ASCII `[a-z0-9_]`, starting with a letter.
/// The error is a reason, for the caller to attach to a field.
pub fn check_name(name: &[u8]) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!("must be 1 to {MAX_NAME_LEN} bytes, got {}", name.len()));
    }
    if !name[0].is_ascii_lowercase() {
        return Err(format!("{:?} must start with a lowercase ASCII letter", String::from_utf8_lossy(name)));
    }
    if let Some(bad) = name.iter().position(|&b| !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')) {
        return Err(format!("{:?} has a character outside [a-z0-9_] at position {bad}", String::from_utf8_lossy(name)));
    }
    Ok(())
}

/// Checks a chain id: 1 to 64 bytes (its UTF-8 is checked where it is decoded).
pub(crate) fn check_chain_id_len(len: usize) -> std::result::Result<(), String> {
    if (1..=MAX_CHAIN_ID_LEN).contains(&len) {
        Ok(())
    } else {
        Err(format!("must be 1 to {MAX_CHAIN_ID_LEN} bytes of UTF-8, got {len}"))
    }
}

pub(crate) fn encode_error(what: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Encode { what: what.into(), reason: reason.into() }
}

/// Appends a `u8` length and the bytes (the caller has checked the length fits).
pub(crate) fn put_short(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(u8::try_from(bytes.len()).expect("checked length"));
    out.extend_from_slice(bytes);
}

/// Appends a `u32` length and the bytes.
pub(crate) fn put_long(out: &mut Vec<u8>, what: &str, bytes: &[u8]) -> Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| encode_error(what, format!("{} bytes do not fit a u32 length", bytes.len())))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

#[cfg(test)]
mod tests;
