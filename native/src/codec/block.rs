//! Blocks as stored: `u32 header length` + header | `u32 tx count` (equal to the header's
//! `tx_count`) | for each transaction `u32 length` (1..=MAX_TX_SIZE) + raw transaction.
//!
//! Decoding a block checks its framing and its header; the transactions themselves are decoded
//! (and checked against the chain) by [`super::decode_batch`].

use super::{encode_error, BlockHeader, Reader, MAX_TX_SIZE};
use crate::error::Result;

/// A decoded block: the header, its exact encoding, and the raw transactions (borrowed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedBlock<'a> {
    pub header: BlockHeader,
    pub header_bytes: &'a [u8],
    pub txs: Vec<&'a [u8]>,
}

/// A block's framing, checked: the encoded header and the raw transactions, ready to be written
/// into a buffer of [`BlockFrame::encoded_len`] bytes (a caller's own, so the block is copied once).
pub struct BlockFrame<'a, R> {
    header_bytes: Vec<u8>,
    raws: &'a [R],
    len: usize,
}

impl<'a, R: AsRef<[u8]>> BlockFrame<'a, R> {
    /// Checks that the header counts the transactions and that each is 1..=MAX_TX_SIZE bytes.
    pub fn new(header: &BlockHeader, raws: &'a [R]) -> Result<Self> {
        if raws.len() != header.tx_count as usize {
            return Err(encode_error(
                "block",
                format!("the header's tx_count is {}, but {} transactions were given", header.tx_count, raws.len()),
            ));
        }
        let header_bytes = header.encode()?;
        let mut len = 8 + header_bytes.len();
        for (i, raw) in raws.iter().enumerate() {
            let raw = raw.as_ref();
            if raw.is_empty() || raw.len() > MAX_TX_SIZE {
                return Err(encode_error(
                    format!("transaction {i}"),
                    format!("is {} bytes; a transaction is 1 to {MAX_TX_SIZE} bytes", raw.len()),
                ));
            }
            len += 4 + raw.len();
        }
        Ok(Self { header_bytes, raws, len })
    }

    /// The block encoding's length in bytes.
    pub fn encoded_len(&self) -> usize {
        self.len
    }

    /// Writes the block encoding into `out`, which must be exactly [`Self::encoded_len`] bytes.
    pub fn write(&self, out: &mut [u8]) {
        assert_eq!(out.len(), self.len, "a block is written into a buffer of its own length");
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        put(&(self.header_bytes.len() as u32).to_be_bytes());
        put(&self.header_bytes);
        put(&(self.raws.len() as u32).to_be_bytes());
        for raw in self.raws {
            let raw = raw.as_ref();
            put(&(raw.len() as u32).to_be_bytes());
            put(raw);
        }
    }
}

pub fn decode_block(data: &[u8]) -> Result<DecodedBlock<'_>> {
    let mut r = Reader::new("block", data);
    let header_len = r.u32(&"header length")? as usize;
    let header_at = r.offset();
    let header_bytes = r.take(header_len, &"header")?;
    let header = BlockHeader::decode_at(header_bytes, header_at)?;
    let count_at = r.offset();
    let count = r.u32(&"tx count")?;
    if count != header.tx_count {
        return Err(r.error_at(
            &"tx count",
            count_at,
            format_args!("{count} differs from the header's tx_count {}", header.tx_count),
        ));
    }
    // Each transaction takes at least 5 bytes: never reserve more than the input could hold.
    let mut txs = Vec::with_capacity((count as usize).min(r.remaining() / 5));
    for i in 0..count as usize {
        let len_at = r.offset();
        let len = r.u32(&format_args!("transaction {i} length"))? as usize;
        if len == 0 || len > MAX_TX_SIZE {
            return Err(r.error_at(
                &format_args!("transaction {i} length"),
                len_at,
                format_args!("{len} is outside 1..={MAX_TX_SIZE}"),
            ));
        }
        txs.push(r.take(len, &format_args!("transaction {i}"))?);
    }
    r.finish(if count == 0 { "tx count" } else { "last transaction" })?;
    Ok(DecodedBlock { header, header_bytes, txs })
}
