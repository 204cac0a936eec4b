//! Block headers, versions 1 and 2.
//!
//! `u8 version` | `u8 suite code` | `u8 chain id length (1..=64)` + chain id (UTF-8) |
//! `u64 height` | `32 prev_hash` | `32 tx_root` | `32 state_root` | `32 history_root` |
//! (version 2 only) `32 receipts_root` | `u64 timestamp` | `u8 proposer length` + proposer public
//! key (empty, or the suite's public key size) | `u32 tx_count` | `u16 consensus length` +
//! consensus data (opaque). Block hash = suite hash of the whole header encoding. A header holds a
//! receipts root exactly when it is version 2: blocks written before there was one stay version 1.

use super::tx::unknown_suite;
use super::{check_chain_id_len, encode_error, put_short, Reader, MAX_CHAIN_ID_LEN};
use crate::error::Result;
use crate::hash::Digest;
use crate::suite::Suite;

/// The version of a header with a receipts root (the one blocks are written with).
pub const HEADER_VERSION: u8 = 2;
/// The version of a header without one.
pub const HEADER_VERSION_1: u8 = 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    pub suite: Suite,
    pub chain_id: String,
    pub height: u64,
    pub prev_hash: Digest,
    pub tx_root: Digest,
    pub state_root: Digest,
    pub history_root: Digest,
    /// The suite hash of the block's receipts record; None in a version 1 header.
    pub receipts_root: Option<Digest>,
    pub timestamp: u64,
    /// The proposer's public key, or empty (a single-node chain has no proposer).
    pub proposer: Vec<u8>,
    pub tx_count: u32,
    /// Consensus data (opaque to the codec; empty for now), at most 65535 bytes.
    pub consensus: Vec<u8>,
}

impl BlockHeader {
    pub fn encode(&self) -> Result<Vec<u8>> {
        check_chain_id_len(self.chain_id.len()).map_err(|r| encode_error("chain id", r))?;
        let pk_len = self.suite.public_key_len();
        if !self.proposer.is_empty() && self.proposer.len() != pk_len {
            return Err(encode_error(
                "proposer",
                format!(
                    "must be empty or a {pk_len}-byte {} public key, got {} bytes",
                    self.suite.name(),
                    self.proposer.len()
                ),
            ));
        }
        let consensus_len = u16::try_from(self.consensus.len())
            .map_err(|_| encode_error("consensus", format!("at most 65535 bytes, got {}", self.consensus.len())))?;
        let mut out = Vec::with_capacity(
            2 + 1 + self.chain_id.len() + 8 + 5 * 32 + 8 + 1 + self.proposer.len() + 4 + 2 + self.consensus.len(),
        );
        out.push(if self.receipts_root.is_some() { HEADER_VERSION } else { HEADER_VERSION_1 });
        out.push(self.suite.code());
        put_short(&mut out, self.chain_id.as_bytes());
        out.extend_from_slice(&self.height.to_be_bytes());
        for root in [&self.prev_hash, &self.tx_root, &self.state_root, &self.history_root] {
            out.extend_from_slice(root);
        }
        if let Some(root) = &self.receipts_root {
            out.extend_from_slice(root);
        }
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        put_short(&mut out, &self.proposer);
        out.extend_from_slice(&self.tx_count.to_be_bytes());
        out.extend_from_slice(&consensus_len.to_be_bytes());
        out.extend_from_slice(&self.consensus);
        Ok(out)
    }

    /// The block hash: the suite hash of the header encoding.
    pub fn hash(&self) -> Result<Digest> {
        Ok(self.suite.hash().digest(&self.encode()?))
    }

    /// Decodes a whole header encoding.
    pub fn decode(data: &[u8]) -> Result<Self> {
        Self::decode_at(data, 0)
    }

    /// Decodes a header that starts at absolute byte `base` of a larger encoding (for messages).
    pub(crate) fn decode_at(data: &[u8], base: usize) -> Result<Self> {
        let mut r = Reader::at("block header", data, base);
        let version = r.u8(&"version")?;
        if version != HEADER_VERSION && version != HEADER_VERSION_1 {
            return Err(r.error_at(
                &"version",
                base,
                format_args!("unknown version {version} (this build reads {HEADER_VERSION_1} and {HEADER_VERSION})"),
            ));
        }
        let code = r.u8(&"suite")?;
        let suite = Suite::from_code(code).ok_or_else(|| r.error_at(&"suite", base + 1, unknown_suite(code)))?;
        let chain_at = r.offset() + 1;
        let chain = r.short_bytes("chain id", 1, MAX_CHAIN_ID_LEN)?;
        let chain_id = std::str::from_utf8(chain)
            .map_err(|e| r.error_at(&"chain id", chain_at + e.valid_up_to(), "not valid UTF-8"))?
            .to_owned();
        let height = r.u64(&"height")?;
        let prev_hash = r.array(&"prev_hash")?;
        let tx_root = r.array(&"tx_root")?;
        let state_root = r.array(&"state_root")?;
        let history_root = r.array(&"history_root")?;
        let receipts_root = if version == HEADER_VERSION { Some(r.array(&"receipts_root")?) } else { None };
        let timestamp = r.u64(&"timestamp")?;
        let pk_len = suite.public_key_len();
        let proposer_at = r.offset();
        let proposer_len = r.u8(&"proposer length")? as usize;
        if proposer_len != 0 && proposer_len != pk_len {
            return Err(r.error_at(
                &"proposer length",
                proposer_at,
                format_args!("{proposer_len} is neither 0 nor the {pk_len}-byte {} public key size", suite.name()),
            ));
        }
        let proposer = r.take(proposer_len, &"proposer")?.to_vec();
        let tx_count = r.u32(&"tx_count")?;
        let consensus_len = r.u16(&"consensus length")? as usize;
        let consensus = r.take(consensus_len, &"consensus")?.to_vec();
        r.finish("consensus data")?;
        Ok(Self {
            suite,
            chain_id,
            height,
            prev_hash,
            tx_root,
            state_root,
            history_root,
            receipts_root,
            timestamp,
            proposer,
            tx_count,
            consensus,
        })
    }
}
