//! `MTH(D[0:n])` straight from the leaves, without building a log: parallel over aligned subtrees,
//! each folded on a small stack of perfect-subtree roots, so the working set stays in cache and
//! nothing of size O(n) is allocated.

use super::{empty_root, leaf_hash, node_hash, split_point};
use crate::hash::{Digest, HashAlgo};

/// Subtrees of at most this many leaves are hashed on one thread: a block's tx root (~1 ms for
/// 10k leaves) is computed while the block's signature check holds every core, where handing
/// halves to rayon's workers cost more in waiting for them than it saved.
pub(super) const SEQUENTIAL_MAX_LEAVES: usize = 1 << 16;

/// The RFC 9162 root of `leaves` (leaf data, hashed here as `H(0x00 || data)`).
pub fn root<T: AsRef<[u8]> + Sync>(algo: HashAlgo, leaves: &[T]) -> Digest {
    if leaves.is_empty() {
        empty_root(algo)
    } else {
        subtree_root(algo, leaves)
    }
}

/// `MTH(D[n])` for `n >= 1`, splitting at RFC 9162's `k` (a power of two) and joining the halves.
fn subtree_root<T: AsRef<[u8]> + Sync>(algo: HashAlgo, leaves: &[T]) -> Digest {
    let n = leaves.len();
    if n <= SEQUENTIAL_MAX_LEAVES {
        return sequential_root(algo, leaves);
    }
    let k = split_point(n as u64) as usize;
    let (left, right) = rayon::join(|| subtree_root(algo, &leaves[..k]), || subtree_root(algo, &leaves[k..]));
    node_hash(algo, &left, &right)
}

/// One pass over the leaves keeping the roots of the perfect subtrees seen so far (largest first);
/// the tree's root is their fold from the right.
fn sequential_root<T: AsRef<[u8]>>(algo: HashAlgo, leaves: &[T]) -> Digest {
    let mut stack: Vec<Digest> = Vec::with_capacity(64);
    for (i, leaf) in leaves.iter().enumerate() {
        let mut node = leaf_hash(algo, leaf.as_ref());
        // Leaf i completes one perfect subtree per trailing one bit of i.
        for _ in 0..(i + 1).trailing_zeros() {
            let left = stack.pop().expect("a completed subtree has a left sibling");
            node = node_hash(algo, &left, &node);
        }
        stack.push(node);
    }
    let mut acc = stack.pop().expect("at least one leaf");
    while let Some(left) = stack.pop() {
        acc = node_hash(algo, &left, &acc);
    }
    acc
}
