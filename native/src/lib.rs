//! ledgercore's native core: pure Rust, no Python and no I/O. Hashing, signatures, RFC 9162
//! Merkle logs, the canonical transaction and block codecs and Raft's entry runs, parallel over
//! batches with rayon (on whatever pool the caller installs).

pub mod codec;
pub mod consensus;
pub mod contracts;
pub mod error;
pub mod hash;
pub mod ledger;
pub mod merkle;
pub mod signature;
pub mod suite;

pub use error::{Error, Result};
pub use hash::{Digest, HashAlgo, DIGEST_LEN};
pub use merkle::MerkleLog;
pub use signature::{Scheme, SecretKey, Spread};
pub use suite::Suite;
