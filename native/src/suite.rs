//! Crypto suites: the (signature scheme, hash function) pair a chain picks at genesis. Every
//! signature and every hash of that chain follows it. Encodings carry the suite as a one-byte code.

use crate::error::{Error, Result};
use crate::hash::HashAlgo;
use crate::signature::Scheme;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Suite {
    /// Code 1: Ed25519 (ZIP-215) signatures, BLAKE3 hashes. The default.
    Ed25519Blake3,
    /// Code 2: SM2 signatures, SM3 hashes (国密, GB/T 32918 and GB/T 32905).
    Sm2Sm3,
    /// Code 3: ECDSA P-256 signatures, SHA-256 hashes.
    P256Sha256,
}

impl Suite {
    pub const ALL: [Suite; 3] = [Self::Ed25519Blake3, Self::Sm2Sm3, Self::P256Sha256];
    pub const NAMES: &'static str = "\"ed25519-blake3\", \"sm2-sm3\", \"p256-sha256\"";
    pub const DEFAULT: Suite = Self::Ed25519Blake3;

    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name).ok_or_else(|| Error::UnknownName {
            kind: "suite",
            name: name.to_owned(),
            expected: Self::NAMES,
        })
    }

    /// The suite a one-byte code stands for, if any.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Ed25519Blake3 => "ed25519-blake3",
            Self::Sm2Sm3 => "sm2-sm3",
            Self::P256Sha256 => "p256-sha256",
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Self::Ed25519Blake3 => 1,
            Self::Sm2Sm3 => 2,
            Self::P256Sha256 => 3,
        }
    }

    pub fn scheme(self) -> Scheme {
        match self {
            Self::Ed25519Blake3 => Scheme::Ed25519,
            Self::Sm2Sm3 => Scheme::Sm2,
            Self::P256Sha256 => Scheme::P256,
        }
    }

    pub fn hash(self) -> HashAlgo {
        match self {
            Self::Ed25519Blake3 => HashAlgo::Blake3,
            Self::Sm2Sm3 => HashAlgo::Sm3,
            Self::P256Sha256 => HashAlgo::Sha256,
        }
    }

    /// Public key size in bytes: 32 for Ed25519, 65 (uncompressed SEC1) for SM2 and P-256.
    pub fn public_key_len(self) -> usize {
        self.scheme().public_key_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_codes_and_parts_round_trip() {
        for suite in Suite::ALL {
            assert_eq!(Suite::from_name(suite.name()).unwrap(), suite);
            assert_eq!(Suite::from_code(suite.code()), Some(suite));
            assert!(Suite::NAMES.contains(suite.name()));
        }
        assert_eq!(Suite::Sm2Sm3.scheme(), Scheme::Sm2);
        assert_eq!(Suite::Sm2Sm3.hash(), HashAlgo::Sm3);
        assert_eq!(Suite::Ed25519Blake3.public_key_len(), 32);
        assert_eq!(Suite::P256Sha256.public_key_len(), 65);
        assert_eq!(Suite::from_code(0), None);
        assert_eq!(Suite::from_code(4), None);
        let err = Suite::from_name("rsa").unwrap_err().to_string();
        assert!(err.contains("rsa") && err.contains("sm2-sm3"), "{err}");
    }
}
