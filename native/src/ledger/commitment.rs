//! The state root for now: a hash chain over each block's ordered writes. A sparse Merkle tree
//! replaces it in a later issue; everything that needs a state root goes through `state_root`.

use super::writes::Write;
use crate::hash::{Digest, HashAlgo};

/// `H(prev_root || for each write: u32 len(key) || key || flag || [u32 len(value) || value])`.
pub fn state_root(algo: HashAlgo, prev_root: &Digest, writes: &[Write<'_>]) -> Digest {
    let size: usize = writes.iter().map(|w| 9 + w.key.len() + w.value.map_or(0, <[u8]>::len)).sum();
    let mut buf = Vec::with_capacity(32 + size);
    buf.extend_from_slice(prev_root);
    for w in writes {
        buf.extend_from_slice(&(w.key.len() as u32).to_be_bytes());
        buf.extend_from_slice(w.key);
        match w.value {
            Some(v) => {
                buf.push(1);
                buf.extend_from_slice(&(v.len() as u32).to_be_bytes());
                buf.extend_from_slice(v);
            }
            None => buf.push(0),
        }
    }
    algo.digest(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_depends_on_previous_root_order_and_deletes() {
        let a = Write { key: b"c/a", value: Some(b"1"), tx: 0 };
        let b = Write { key: b"c/b", value: Some(b"2"), tx: 1 };
        let d = Write { key: b"c/a", value: None, tx: 1 };
        let algo = HashAlgo::Blake3;
        let r = state_root(algo, &[0; 32], &[a, b]);
        assert_ne!(r, state_root(algo, &[1; 32], &[a, b]));
        assert_ne!(r, state_root(algo, &[0; 32], &[b, a]));
        assert_ne!(r, state_root(algo, &[0; 32], &[a, d]));
        assert_eq!(r, state_root(algo, &[0; 32], &[a, b]));
    }
}
