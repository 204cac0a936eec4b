//! Named signature schemes: Ed25519 (ZIP-215), SM2 (GB/T 32918, SM3, default ID) and P-256 ECDSA.
//!
//! Formats: Ed25519 keys are 32 bytes, signatures 64 (RFC 8032). SM2 and P-256 public keys are
//! 65-byte uncompressed SEC1 points, signatures 64-byte raw `r || s`. Every scheme's private key
//! is 32 bytes (the Ed25519 seed, or the big-endian secret scalar).

mod ecdsa;
mod ed25519;

use std::sync::OnceLock;

use rayon::prelude::*;

use crate::error::{Error, Result};

pub const PRIVATE_KEY_LEN: usize = 32;
pub const SIGNATURE_LEN: usize = 64;
/// Batch checks' own threads are named this, then their number (`ledgercore-verify-0`, ...).
pub const CHECK_THREAD_NAME: &str = "ledgercore-verify";
/// Under this many items a batch is checked on the calling thread.
const PARALLEL_MIN_ITEMS: usize = 64;

/// How many of the checks' threads one batch check uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spread {
    /// All of them: the answer soonest.
    AllThreads,
    /// One: the least CPU per signature (one batch equation instead of one per thread), for a
    /// caller that keeps as many checks running as there are threads.
    OneThread,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    Ed25519,
    Sm2,
    P256,
}

impl Scheme {
    pub const NAMES: &'static str = "\"ed25519\", \"sm2\", \"p256\"";

    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "ed25519" => Ok(Self::Ed25519),
            "sm2" => Ok(Self::Sm2),
            "p256" => Ok(Self::P256),
            _ => Err(Error::UnknownName { kind: "signature scheme", name: name.to_owned(), expected: Self::NAMES }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::Sm2 => "sm2",
            Self::P256 => "p256",
        }
    }

    pub fn public_key_len(self) -> usize {
        match self {
            Self::Ed25519 => 32,
            Self::Sm2 | Self::P256 => 65,
        }
    }

    /// Whether every signature could verify under `public_key`, so that it names no signer: an
    /// Ed25519 key of small order (ZIP-215 accepts them). The ECDSA schemes' keys cannot encode
    /// the point at infinity, and a key off the curve verifies nothing. `public_key` is of this
    /// scheme's length.
    pub fn names_no_signer(self, public_key: &[u8]) -> bool {
        self == Self::Ed25519 && ed25519::is_small_order_key(public_key)
    }

    fn check_lengths(self, public_key: &[u8], signature: &[u8]) -> Result<()> {
        check_len("public key", self.public_key_len(), public_key)?;
        check_len("signature", SIGNATURE_LEN, signature)
    }

    /// Verifies one signature. Malformed lengths are errors; anything else invalid is `false`.
    pub fn verify(self, public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<bool> {
        self.check_lengths(public_key, signature)?;
        Ok(self.verify_unchecked(public_key, message, signature))
    }

    fn verify_unchecked(self, public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Ed25519 => ed25519::verify(public_key, message, signature),
            Self::Sm2 => ecdsa::verify_sm2(public_key, message, signature),
            Self::P256 => ecdsa::verify_p256(public_key, message, signature),
        }
    }

    /// Verifies a batch; element i says whether signature i is valid. Ed25519 uses randomised batch
    /// equations (randomness expanded from `seed`, which the caller must draw fresh from the OS) and
    /// bisects failing groups, so the answer for each item is exactly what `verify` would say.
    pub fn verify_batch<K, M, S>(
        self,
        public_keys: &[K],
        messages: &[M],
        signatures: &[S],
        seed: [u8; 32],
        spread: Spread,
    ) -> Result<Vec<bool>>
    where
        K: AsRef<[u8]> + Sync,
        M: AsRef<[u8]> + Sync,
        S: AsRef<[u8]> + Sync,
    {
        let n = public_keys.len();
        if messages.len() != n || signatures.len() != n {
            return Err(Error::BatchMismatch(format!(
                "{n} public keys, {} messages, {} signatures",
                messages.len(),
                signatures.len()
            )));
        }
        for (i, (k, s)) in public_keys.iter().zip(signatures).enumerate() {
            self.check_lengths(k.as_ref(), s.as_ref()).map_err(|e| at_index(e, i))?;
        }
        // Called on the checks' pool, so the thread count is that pool's.
        let parts = || match spread {
            Spread::AllThreads => rayon::current_num_threads(),
            Spread::OneThread => 1,
        };
        let check = || match self {
            Self::Ed25519 => ed25519::verify_batch(public_keys, messages, signatures, seed, parts()),
            _ => {
                let one = |i: usize| {
                    self.verify_unchecked(public_keys[i].as_ref(), messages[i].as_ref(), signatures[i].as_ref())
                };
                if n < PARALLEL_MIN_ITEMS || parts() == 1 {
                    (0..n).map(one).collect()
                } else {
                    (0..n).into_par_iter().with_min_len(16).map(one).collect()
                }
            }
        };
        Ok(match workers() {
            Some(pool) => pool.install(check),
            None => check(),
        })
    }
}

/// Runs `job` on the batch checks' worker threads without waiting for it: a caller starts a
/// check and goes on with other work (executing the block) until it needs the answer.
pub fn spawn_check(job: impl FnOnce() + Send + 'static) {
    match workers() {
        Some(pool) => pool.spawn(job),
        None => rayon::spawn(job),
    }
}

/// Batch checks' own worker threads, as many as rayon's shared pool has. A check splits into one
/// long task per worker; on the shared workers it would hold them all, and other batch work
/// started meanwhile (a block executing while its signatures are checked) would wait for it in
/// their queue instead of running beside it. None if the threads cannot be started: checks then
/// run on the shared pool.
fn workers() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(rayon::current_num_threads())
            .thread_name(|i| format!("{CHECK_THREAD_NAME}-{i}"))
            .build()
            .ok()
    })
    .as_ref()
}

/// A private key of one scheme: derives its public key and signs.
pub enum SecretKey {
    Ed25519(ed25519_zebra::SigningKey),
    Sm2(sm2::dsa::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

impl SecretKey {
    /// Loads a 32-byte private key (an Ed25519 seed or a secret scalar in `[1, n)`).
    pub fn from_bytes(scheme: Scheme, bytes: &[u8]) -> Result<Self> {
        check_len("private key", PRIVATE_KEY_LEN, bytes)?;
        match scheme {
            Scheme::Ed25519 => Ok(Self::Ed25519(ed25519::secret_key(bytes))),
            Scheme::Sm2 => ecdsa::secret_key_sm2(bytes).map(Self::Sm2),
            Scheme::P256 => ecdsa::secret_key_p256(bytes).map(Self::P256),
        }
    }

    pub fn scheme(&self) -> Scheme {
        match self {
            Self::Ed25519(_) => Scheme::Ed25519,
            Self::Sm2(_) => Scheme::Sm2,
            Self::P256(_) => Scheme::P256,
        }
    }

    pub fn public_key(&self) -> Vec<u8> {
        match self {
            Self::Ed25519(k) => ed25519::public_key(k).to_vec(),
            Self::Sm2(k) => ecdsa::public_key_sm2(k),
            Self::P256(k) => ecdsa::public_key_p256(k),
        }
    }

    pub fn to_bytes(&self) -> [u8; PRIVATE_KEY_LEN] {
        match self {
            Self::Ed25519(k) => k.as_ref().try_into().expect("an Ed25519 seed is 32 bytes"),
            Self::Sm2(k) => k.to_bytes().into(),
            Self::P256(k) => k.to_bytes().into(),
        }
    }

    /// Signs `message`; deterministic for Ed25519 (RFC 8032) and for the ECDSA schemes (RFC 6979 nonces).
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        match self {
            Self::Ed25519(k) => ed25519::sign(k, message),
            Self::Sm2(k) => ecdsa::sign_sm2(k, message),
            Self::P256(k) => ecdsa::sign_p256(k, message),
        }
    }
}

fn check_len(what: &'static str, expected: usize, bytes: &[u8]) -> Result<()> {
    if bytes.len() == expected {
        Ok(())
    } else {
        Err(Error::BadLength { what, expected, got: bytes.len() })
    }
}

/// Names the batch row an error came from.
fn at_index(err: Error, index: usize) -> Error {
    match err {
        Error::BadLength { what, expected, got } => Error::Malformed {
            what: "batch",
            reason: format!("item {index}: {what} must be {expected} bytes, got {got}"),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests;
