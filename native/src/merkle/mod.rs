//! RFC 9162 section 2.1 Merkle trees: leaf hash `H(0x00 || data)`, node hash `H(0x01 || l || r)`,
//! empty tree `H("")`, for any of the chain's hash algorithms.

mod log;
mod root;
mod verify;

pub use log::MerkleLog;
pub use root::root;
pub use verify::{verify_consistency, verify_inclusion};

use crate::hash::{Digest, HashAlgo};

const LEAF_PREFIX: &[u8] = &[0x00];
const NODE_PREFIX: &[u8] = &[0x01];

pub fn leaf_hash(algo: HashAlgo, data: &[u8]) -> Digest {
    algo.digest_parts(&[LEAF_PREFIX, data])
}

pub fn node_hash(algo: HashAlgo, left: &Digest, right: &Digest) -> Digest {
    algo.digest_parts(&[NODE_PREFIX, left, right])
}

pub fn empty_root(algo: HashAlgo) -> Digest {
    algo.digest(b"")
}

/// The largest power of two strictly less than `n` (n >= 2): RFC 9162's split point `k`.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

#[cfg(test)]
mod tests;
