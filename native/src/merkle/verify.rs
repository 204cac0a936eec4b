//! Proof verification exactly as RFC 9162 sections 2.1.3.2 and 2.1.4.2 state it.

use super::{empty_root, leaf_hash, node_hash};
use crate::hash::{Digest, HashAlgo};

/// Does `proof` show that leaf data `leaf` sits at `index` in the tree of `tree_size` leaves with `root`?
pub fn verify_inclusion(
    algo: HashAlgo,
    leaf: &[u8],
    index: u64,
    tree_size: u64,
    proof: &[Digest],
    root: &Digest,
) -> bool {
    if index >= tree_size {
        return false;
    }
    let (mut f, mut s) = (index, tree_size - 1);
    let mut r = leaf_hash(algo, leaf);
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(algo, p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(algo, &r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && &r == root
}

/// Does `proof` show that the tree of `old_size` leaves with `old_root` is a prefix of the tree of
/// `new_size` leaves with `new_root`?
pub fn verify_consistency(
    algo: HashAlgo,
    old_size: u64,
    new_size: u64,
    old_root: &Digest,
    new_root: &Digest,
    proof: &[Digest],
) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == 0 {
        // Every tree extends the empty one; there is nothing to prove, unless the new one is
        // empty too: then its root is the same.
        return proof.is_empty() && old_root == &empty_root(algo) && (new_size > 0 || new_root == old_root);
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    if proof.is_empty() {
        return false;
    }
    let mut path = proof.iter().copied();
    // A power-of-two old tree is itself a node of the new one, so the proof omits it.
    let first = if old_size.is_power_of_two() { *old_root } else { path.next().expect("proof is not empty") };
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (first, first);
    for c in path {
        let c = &c;
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(algo, c, &fr);
            sr = node_hash(algo, c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(algo, &sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    &fr == old_root && &sr == new_root && s == 0
}
