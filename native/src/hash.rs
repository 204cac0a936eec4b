//! The three hash functions a chain may be built on, behind one enum.

use rayon::prelude::*;
use sha2::Digest as _;

use crate::error::{Error, Result};

pub const DIGEST_LEN: usize = 32;
pub type Digest = [u8; DIGEST_LEN];

/// Below this many items a batch is hashed on the calling thread: spawning costs more than it saves.
const PARALLEL_MIN_ITEMS: usize = 2048;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlgo {
    Blake3,
    Sha256,
    Sm3,
}

impl HashAlgo {
    pub const NAMES: &'static str = "\"blake3\", \"sha256\", \"sm3\"";

    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "blake3" => Ok(Self::Blake3),
            "sha256" => Ok(Self::Sha256),
            "sm3" => Ok(Self::Sm3),
            _ => Err(Error::UnknownName { kind: "hash algorithm", name: name.to_owned(), expected: Self::NAMES }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Blake3 => "blake3",
            Self::Sha256 => "sha256",
            Self::Sm3 => "sm3",
        }
    }

    /// Hash of the concatenation of `parts`, without building the concatenation.
    pub fn digest_parts(self, parts: &[&[u8]]) -> Digest {
        match self {
            Self::Blake3 => {
                let mut h = blake3::Hasher::new();
                for p in parts {
                    h.update(p);
                }
                *h.finalize().as_bytes()
            }
            Self::Sha256 => {
                let mut h = sha2::Sha256::new();
                for p in parts {
                    h.update(p);
                }
                h.finalize().into()
            }
            Self::Sm3 => {
                let mut h = sm3::Sm3::new();
                for p in parts {
                    h.update(p);
                }
                h.finalize().into()
            }
        }
    }

    pub fn digest(self, data: &[u8]) -> Digest {
        self.digest_parts(&[data])
    }

    /// Digests of many items, concatenated (N * 32 bytes), in parallel for large batches.
    pub fn digest_many<T: AsRef<[u8]> + Sync>(self, items: &[T]) -> Vec<u8> {
        let mut out = vec![0u8; items.len() * DIGEST_LEN];
        let work = |(slot, item): (&mut [u8], &T)| slot.copy_from_slice(&self.digest(item.as_ref()));
        if items.len() < PARALLEL_MIN_ITEMS {
            out.chunks_mut(DIGEST_LEN).zip(items).for_each(work);
        } else {
            out.par_chunks_mut(DIGEST_LEN).zip(items.par_iter()).with_min_len(256).for_each(work);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(d: Digest) -> String {
        hex::encode(d)
    }

    #[test]
    fn known_answers() {
        assert_eq!(
            hex(HashAlgo::Sha256.digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // GB/T 32905-2016 appendix A.1
        assert_eq!(
            hex(HashAlgo::Sm3.digest(b"abc")),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        assert_eq!(
            hex(HashAlgo::Blake3.digest(b"")),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn parts_equal_whole_and_many_equals_single() {
        for algo in [HashAlgo::Blake3, HashAlgo::Sha256, HashAlgo::Sm3] {
            assert_eq!(algo.digest_parts(&[b"ab", b"", b"c"]), algo.digest(b"abc"));
            let items: Vec<Vec<u8>> = (0..5000u32).map(|i| i.to_le_bytes().repeat(i as usize % 7)).collect();
            let many = algo.digest_many(&items);
            for (i, item) in items.iter().enumerate() {
                assert_eq!(&many[i * 32..(i + 1) * 32], &algo.digest(item));
            }
        }
    }

    #[test]
    fn unknown_name_is_an_error() {
        let err = HashAlgo::from_name("md5").unwrap_err();
        assert!(err.to_string().contains("md5"));
    }
}
