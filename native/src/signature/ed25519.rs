//! Ed25519 under the ZIP-215 validation rules, via `ed25519-zebra`: single and batch checks agree.

use ed25519_zebra::{batch, Signature, SigningKey, VerificationKey, VerificationKeyBytes};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use rayon::prelude::*;

/// Groups at most this small are checked one signature at a time when bisecting a failed batch.
const SINGLE_CHECK_MAX: usize = 4;
/// Smallest group handed to one worker: batch equations amortise better over larger groups.
const MIN_CHUNK: usize = 256;

pub(super) fn secret_key(seed: &[u8]) -> SigningKey {
    let seed: [u8; 32] = seed.try_into().expect("length checked by caller");
    SigningKey::from(seed)
}

pub(super) fn public_key(key: &SigningKey) -> [u8; 32] {
    VerificationKey::from(key).into()
}

pub(super) fn sign(key: &SigningKey, message: &[u8]) -> [u8; 64] {
    key.sign(message).to_bytes()
}

fn signature(bytes: &[u8]) -> Signature {
    Signature::from_bytes(bytes.try_into().expect("length checked by caller"))
}

fn key_bytes(bytes: &[u8]) -> VerificationKeyBytes {
    let bytes: [u8; 32] = bytes.try_into().expect("length checked by caller");
    VerificationKeyBytes::from(bytes)
}

pub(super) fn verify(public_key: &[u8], message: &[u8], sig: &[u8]) -> bool {
    VerificationKey::try_from(key_bytes(public_key)).is_ok_and(|vk| vk.verify(&signature(sig), message).is_ok())
}

/// Checks the batch in at most `parts` groups, one batch equation each, checked in parallel.
pub(super) fn verify_batch<K, M, S>(keys: &[K], messages: &[M], sigs: &[S], seed: [u8; 32], parts: usize) -> Vec<bool>
where
    K: AsRef<[u8]> + Sync,
    M: AsRef<[u8]> + Sync,
    S: AsRef<[u8]> + Sync,
{
    let n = keys.len();
    let mut out = vec![false; n];
    if n == 0 {
        return out;
    }
    let chunk = n.div_ceil(parts.max(1)).max(MIN_CHUNK);
    out.par_chunks_mut(chunk).enumerate().for_each(|(c, slots)| {
        let start = c * chunk;
        let mut rng = ChaCha20Rng::from_seed(seed);
        rng.set_stream(c as u64);
        let group = Group { keys, messages, sigs };
        group.check(start, slots, &mut rng);
    });
    out
}

struct Group<'a, K, M, S> {
    keys: &'a [K],
    messages: &'a [M],
    sigs: &'a [S],
}

impl<K: AsRef<[u8]>, M: AsRef<[u8]>, S: AsRef<[u8]>> Group<'_, K, M, S> {
    /// Fills `slots` (items `start..start + slots.len()`): one batch equation, bisected on failure.
    fn check(&self, start: usize, slots: &mut [bool], rng: &mut ChaCha20Rng) {
        let end = start + slots.len();
        if slots.len() <= SINGLE_CHECK_MAX {
            for (i, slot) in (start..end).zip(slots.iter_mut()) {
                *slot = verify(self.keys[i].as_ref(), self.messages[i].as_ref(), self.sigs[i].as_ref());
            }
            return;
        }
        let mut verifier = batch::Verifier::new();
        for i in start..end {
            verifier.queue((
                key_bytes(self.keys[i].as_ref()),
                signature(self.sigs[i].as_ref()),
                self.messages[i].as_ref(),
            ));
        }
        if verifier.verify(&mut *rng).is_ok() {
            slots.fill(true);
            return;
        }
        let half = slots.len() / 2;
        let (left, right) = slots.split_at_mut(half);
        self.check(start, left, rng);
        self.check(start + half, right, rng);
    }
}
