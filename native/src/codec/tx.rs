//! Transactions, version 1.
//!
//! payload = `u8 version (1)` | `u8 suite code` | `u8 chain id length (1..=64)` + chain id (UTF-8) |
//! sender public key (32 or 65 bytes, per suite) | `u64 nonce` | `u64 timestamp` (ms since the Unix
//! epoch) | `u8 length (1..=64)` + contract name | `u8 length (1..=64)` + method name |
//! `u32 length` + args (a canonical value that is a map).
//! transaction = payload | 64-byte signature over the payload. Id = suite hash of the payload, so a
//! malleated signature cannot make a replay look like a new transaction.

use rayon::prelude::*;

use super::value::{validate_map, CanonicalMap};
use super::{
    check_chain_id_len, check_name, encode_error, put_short, Reader, MAX_CHAIN_ID_LEN, MAX_NAME_LEN, MAX_TX_SIZE,
};
use crate::error::{Error, Result};
use crate::hash::Digest;
use crate::signature::{SecretKey, SIGNATURE_LEN};
use crate::suite::Suite;

pub const TX_VERSION: u8 = 1;

/// Why a sender key of small order is refused (ZIP-215 accepts such keys for signatures).
const NO_SIGNER: &str = "an Ed25519 key of small order, under which any signature verifies: it names no signer";

/// Below this many transactions a batch is decoded on the calling thread.
const PARALLEL_MIN_ITEMS: usize = 256;

/// The fields of a transaction to encode, borrowed. `args` is the canonical encoding of a map.
#[derive(Clone, Copy, Debug)]
pub struct TxFields<'a> {
    pub suite: Suite,
    pub chain_id: &'a str,
    pub sender: &'a [u8],
    pub nonce: u64,
    pub timestamp: u64,
    pub contract: &'a str,
    pub method: &'a str,
    pub args: &'a [u8],
}

impl TxFields<'_> {
    /// The payload: the bytes that are signed and hashed into the id. Checks every field, so a
    /// payload that encodes also decodes.
    pub fn encode_payload(&self) -> Result<Vec<u8>> {
        check_chain_id_len(self.chain_id.len()).map_err(|r| encode_error("chain id", r))?;
        let pk_len = self.suite.public_key_len();
        if self.sender.len() != pk_len {
            return Err(encode_error(
                "sender",
                format!("a {} public key must be {pk_len} bytes, got {}", self.suite.name(), self.sender.len()),
            ));
        }
        if self.suite.scheme().names_no_signer(self.sender) {
            return Err(encode_error("sender", NO_SIGNER));
        }
        check_name(self.contract.as_bytes()).map_err(|r| encode_error("contract name", r))?;
        check_name(self.method.as_bytes()).map_err(|r| encode_error("method name", r))?;
        let size = payload_len_without_args(self.suite, self.chain_id.len(), self.contract.len(), self.method.len())
            + self.args.len()
            + SIGNATURE_LEN;
        if size > MAX_TX_SIZE {
            return Err(encode_error(
                "transaction",
                format!("encoding would be {size} bytes, over the {MAX_TX_SIZE}-byte maximum"),
            ));
        }
        validate_map("args", "args", self.args, 0).map_err(|e| match e {
            Error::Decode { reason, .. } => encode_error("args", format!("not a canonical map: {reason}")),
            other => other,
        })?;
        let mut out = Vec::with_capacity(size);
        out.push(TX_VERSION);
        out.push(self.suite.code());
        put_short(&mut out, self.chain_id.as_bytes());
        out.extend_from_slice(self.sender);
        out.extend_from_slice(&self.nonce.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        put_short(&mut out, self.contract.as_bytes());
        put_short(&mut out, self.method.as_bytes());
        out.extend_from_slice(&(self.args.len() as u32).to_be_bytes());
        out.extend_from_slice(self.args);
        debug_assert_eq!(out.len() + SIGNATURE_LEN, size);
        Ok(out)
    }

    /// Encodes and signs with `key`, whose scheme must be the suite's and whose public key must be
    /// `sender`.
    pub fn sign(&self, key: &SecretKey) -> Result<Transaction> {
        if key.scheme() != self.suite.scheme() {
            return Err(encode_error(
                "key",
                format!("a {} key cannot sign for suite {}", key.scheme().name(), self.suite.name()),
            ));
        }
        if key.public_key() != self.sender {
            return Err(encode_error("sender", "is not the signing key's public key"));
        }
        let mut raw = self.encode_payload()?;
        let signature = key.sign(&raw);
        raw.extend_from_slice(&signature);
        Transaction::decode(raw)
    }
}

fn payload_len_without_args(suite: Suite, chain_id: usize, contract: usize, method: usize) -> usize {
    2 + 1 + chain_id + suite.public_key_len() + 8 + 8 + 1 + contract + 1 + method + 4
}

/// A decoded transaction: its encoding, where each field lies in it, and its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    raw: Vec<u8>,
    suite: Suite,
    nonce: u64,
    timestamp: u64,
    chain_id: (usize, usize),
    sender: (usize, usize),
    contract: (usize, usize),
    method: (usize, usize),
    args: (usize, usize),
    payload_len: usize,
    id: Digest,
}

fn span(r: &Reader<'_>, len: usize) -> (usize, usize) {
    (r.pos() - len, r.pos())
}

impl Transaction {
    /// Decodes a whole transaction, rejecting anything non-canonical; computes its id.
    pub fn decode(raw: Vec<u8>) -> Result<Self> {
        let mut tx = Self::parse(&raw)?;
        tx.raw = raw;
        Ok(tx)
    }

    pub fn decode_slice(raw: &[u8]) -> Result<Self> {
        Self::decode(raw.to_vec())
    }

    /// Everything but the owned bytes (left empty).
    fn parse(raw: &[u8]) -> Result<Self> {
        let mut r = Reader::new("transaction", raw);
        if raw.len() > MAX_TX_SIZE {
            return Err(r.error(format!("{} bytes, over the {MAX_TX_SIZE}-byte maximum", raw.len())));
        }
        let version = r.u8(&"version")?;
        if version != TX_VERSION {
            return Err(r.error_at(
                &"version",
                0,
                format_args!("unknown version {version} (this build reads {TX_VERSION})"),
            ));
        }
        let code = r.u8(&"suite")?;
        let suite = Suite::from_code(code).ok_or_else(|| r.error_at(&"suite", 1, unknown_suite(code)))?;
        let chain_at = r.offset() + 1;
        let chain = r.short_bytes("chain id", 1, MAX_CHAIN_ID_LEN)?;
        std::str::from_utf8(chain)
            .map_err(|e| r.error_at(&"chain id", chain_at + e.valid_up_to(), "not valid UTF-8"))?;
        let chain_id = span(&r, chain.len());
        let pk_len = suite.public_key_len();
        let sender_at = r.offset();
        let key = r.take(pk_len, &format_args!("sender ({} public key, {pk_len} bytes)", suite.name()))?;
        if suite.scheme().names_no_signer(key) {
            return Err(r.error_at(&"sender", sender_at, NO_SIGNER));
        }
        let sender = span(&r, pk_len);
        let nonce = r.u64(&"nonce")?;
        let timestamp = r.u64(&"timestamp")?;
        let contract = name(&mut r, "contract name")?;
        let method = name(&mut r, "method name")?;
        let args_len = r.u32(&"args length")? as usize;
        let args_at = r.offset();
        let args_bytes = r.take(args_len, &"args")?;
        validate_map("transaction", "args", args_bytes, args_at)?;
        let args = span(&r, args_len);
        let payload_len = r.pos();
        r.take(SIGNATURE_LEN, &"signature")?;
        r.finish("signature")?;
        let id = suite.hash().digest(&raw[..payload_len]);
        Ok(Self { raw: Vec::new(), suite, nonce, timestamp, chain_id, sender, contract, method, args, payload_len, id })
    }

    fn str_at(&self, (start, end): (usize, usize)) -> &str {
        std::str::from_utf8(&self.raw[start..end]).expect("checked when decoded")
    }

    /// The whole encoding: payload and signature.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    pub fn into_raw(self) -> Vec<u8> {
        self.raw
    }

    /// The signed bytes.
    pub fn payload(&self) -> &[u8] {
        &self.raw[..self.payload_len]
    }

    pub fn signature(&self) -> &[u8] {
        &self.raw[self.payload_len..]
    }

    /// The suite hash of the payload.
    pub fn id(&self) -> &Digest {
        &self.id
    }

    pub fn suite(&self) -> Suite {
        self.suite
    }

    pub fn chain_id(&self) -> &str {
        self.str_at(self.chain_id)
    }

    pub fn sender(&self) -> &[u8] {
        &self.raw[self.sender.0..self.sender.1]
    }

    pub fn nonce(&self) -> u64 {
        self.nonce
    }

    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    pub fn contract(&self) -> &str {
        self.str_at(self.contract)
    }

    pub fn method(&self) -> &str {
        self.str_at(self.method)
    }

    /// The canonical encoding of the args map.
    pub fn args(&self) -> CanonicalMap<'_> {
        CanonicalMap::checked(&self.raw[self.args.0..self.args.1])
    }

    /// Offset of the args encoding in [`Transaction::raw`].
    pub fn args_offset(&self) -> usize {
        self.args.0
    }

    /// Whether the signature is valid for the sender over the payload.
    pub fn verify(&self) -> bool {
        self.suite.scheme().verify(self.sender(), self.payload(), self.signature()).unwrap_or(false)
    }
}

fn name(r: &mut Reader<'_>, field: &'static str) -> Result<(usize, usize)> {
    let at = r.offset() + 1;
    let bytes = r.short_bytes(field, 1, MAX_NAME_LEN)?;
    check_name(bytes).map_err(|reason| r.error_at(&field, at, reason))?;
    Ok(span(r, bytes.len()))
}

pub(crate) fn unknown_suite(code: u8) -> String {
    let known: Vec<String> = Suite::ALL.iter().map(|s| format!("{} {}", s.code(), s.name())).collect();
    format!("unknown suite code {code} (known: {})", known.join(", "))
}

/// Decodes a block's transactions in parallel. Each must decode and belong to `suite` and
/// `chain_id`; the first bad one (lowest index) fails the batch with an error naming its index.
pub fn decode_batch<R: AsRef<[u8]> + Sync>(suite: Suite, chain_id: &str, raws: &[R]) -> Result<Vec<Transaction>> {
    let one = |(i, raw): (usize, &R)| {
        let raw = raw.as_ref();
        let tx = Transaction::decode_slice(raw).and_then(|tx| {
            if tx.suite != suite {
                return Err(Error::Decode {
                    what: "transaction",
                    index: None,
                    reason: format!(
                        "suite is {} (code {}), but this chain uses {} (code {})",
                        tx.suite.name(),
                        tx.suite.code(),
                        suite.name(),
                        suite.code()
                    ),
                });
            }
            if tx.chain_id() != chain_id {
                return Err(Error::Decode {
                    what: "transaction",
                    index: None,
                    reason: format!("chain id is {:?}, but this chain is {chain_id:?}", tx.chain_id()),
                });
            }
            Ok(tx)
        });
        tx.map_err(|e| at_index(e, i))
    };
    let results: Vec<Result<Transaction>> = if raws.len() < PARALLEL_MIN_ITEMS {
        raws.iter().enumerate().map(one).collect()
    } else {
        raws.par_iter().enumerate().with_min_len(64).map(one).collect()
    };
    results.into_iter().collect()
}

fn at_index(err: Error, i: usize) -> Error {
    match err {
        Error::Decode { what, reason, .. } => Error::Decode { what, index: Some(i), reason },
        other => other,
    }
}
