//! The two ECDSA-family schemes: SM2 (GB/T 32918 with SM3 and the default ID) and P-256 with SHA-256.

use p256::ecdsa::signature::{Signer, Verifier};

use crate::error::{Error, Result};

/// GB/T 32918's default distinguishing identifier, as GmSSL and most 国密 stacks use it.
pub const SM2_DEFAULT_ID: &str = "1234567812345678";

fn invalid_secret(reason: impl std::fmt::Display) -> Error {
    Error::InvalidKey { what: "private key", reason: format!("not a scalar in [1, n): {reason}") }
}

/// Both schemes take only uncompressed points (0x04 || x || y); the caller checked the length.
fn is_uncompressed(public_key: &[u8]) -> bool {
    public_key.first() == Some(&0x04)
}

/// n - 1 for the SM2 curve, big-endian. GB/T 32918.1 takes private keys in [1, n - 2]: signing needs
/// (1 + d)^-1 mod n, which does not exist for d = n - 1 (the `sm2` crate accepts it, then fails to sign).
const SM2_N_MINUS_1: [u8; 32] = [
    0xff, 0xff, 0xff, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x72, 0x03, 0xdf,
    0x6b, 0x21, 0xc6, 0x05, 0x2b, 0x53, 0xbb, 0xf4, 0x09, 0x39, 0xd5, 0x41, 0x22,
];

pub(super) fn secret_key_sm2(bytes: &[u8]) -> Result<sm2::dsa::SigningKey> {
    if bytes == SM2_N_MINUS_1 {
        return Err(Error::InvalidKey {
            what: "private key",
            reason: "SM2 private keys must lie in [1, n - 2]; n - 1 has no signing inverse".into(),
        });
    }
    sm2::dsa::SigningKey::from_slice(SM2_DEFAULT_ID, bytes).map_err(invalid_secret)
}

pub(super) fn public_key_sm2(key: &sm2::dsa::SigningKey) -> Vec<u8> {
    key.verifying_key().to_sec1_bytes().into_vec()
}

pub(super) fn sign_sm2(key: &sm2::dsa::SigningKey, message: &[u8]) -> [u8; 64] {
    let sig: sm2::dsa::Signature = key.sign(message);
    sig.to_bytes()
}

pub(super) fn verify_sm2(public_key: &[u8], message: &[u8], sig: &[u8]) -> bool {
    if !is_uncompressed(public_key) {
        return false;
    }
    let Ok(vk) = sm2::dsa::VerifyingKey::from_sec1_bytes(SM2_DEFAULT_ID, public_key) else {
        return false;
    };
    let Ok(sig) = sm2::dsa::Signature::from_slice(sig) else {
        return false;
    };
    vk.verify(message, &sig).is_ok()
}

pub(super) fn secret_key_p256(bytes: &[u8]) -> Result<p256::ecdsa::SigningKey> {
    p256::ecdsa::SigningKey::from_slice(bytes).map_err(invalid_secret)
}

pub(super) fn public_key_p256(key: &p256::ecdsa::SigningKey) -> Vec<u8> {
    key.verifying_key().to_encoded_point(false).as_bytes().to_vec()
}

pub(super) fn sign_p256(key: &p256::ecdsa::SigningKey, message: &[u8]) -> [u8; 64] {
    let sig: p256::ecdsa::Signature = key.sign(message);
    sig.to_bytes().into()
}

pub(super) fn verify_p256(public_key: &[u8], message: &[u8], sig: &[u8]) -> bool {
    if !is_uncompressed(public_key) {
        return false;
    }
    let Ok(vk) = p256::ecdsa::VerifyingKey::from_sec1_bytes(public_key) else {
        return false;
    };
    let Ok(sig) = p256::ecdsa::Signature::from_slice(sig) else {
        return false;
    };
    vk.verify(message, &sig).is_ok()
}
