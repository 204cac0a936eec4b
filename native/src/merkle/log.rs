//! An append-only Merkle log that keeps the hash of every complete, aligned subtree, so roots and
//! proofs for any earlier size cost O(log n) lookups plus at most O(log n) hashes on the right edge.

use rayon::prelude::*;

use super::{empty_root, leaf_hash, node_hash, split_point};
use crate::error::{Error, Result};
use crate::hash::{Digest, HashAlgo, DIGEST_LEN};

/// Levels with fewer new nodes than this are hashed on the calling thread.
const PARALLEL_MIN_NODES: usize = 4096;
const MAGIC: &[u8; 4] = b"LCML";
const FORMAT_VERSION: u8 = 1;
const HEADER_LEN: usize = 4 + 1 + 1 + 8;

pub struct MerkleLog {
    algo: HashAlgo,
    /// `levels[k][i]` is the root of leaves `i * 2^k .. (i + 1) * 2^k`; level 0 holds leaf hashes.
    levels: Vec<Vec<Digest>>,
}

impl MerkleLog {
    pub fn new(algo: HashAlgo) -> Self {
        Self { algo, levels: vec![Vec::new()] }
    }

    pub fn from_leaves<T: AsRef<[u8]> + Sync>(algo: HashAlgo, leaves: &[T]) -> Self {
        let mut log = Self::new(algo);
        log.extend(leaves);
        log
    }

    pub fn algo(&self) -> HashAlgo {
        self.algo
    }

    pub fn size(&self) -> u64 {
        self.levels[0].len() as u64
    }

    /// Appends one leaf (its data, not its hash) and returns its index.
    pub fn append(&mut self, leaf: &[u8]) -> u64 {
        let index = self.size();
        self.levels[0].push(leaf_hash(self.algo, leaf));
        self.rebuild_from(index as usize);
        index
    }

    pub fn extend<T: AsRef<[u8]> + Sync>(&mut self, leaves: &[T]) {
        let start = self.levels[0].len();
        let algo = self.algo;
        let hashed: Vec<Digest> = if leaves.len() < PARALLEL_MIN_NODES {
            leaves.iter().map(|l| leaf_hash(algo, l.as_ref())).collect()
        } else {
            leaves.par_iter().with_min_len(512).map(|l| leaf_hash(algo, l.as_ref())).collect()
        };
        self.levels[0].extend(hashed);
        self.rebuild_from(start);
    }

    /// Adds the parents completed by leaves appended from index `first_new` on.
    fn rebuild_from(&mut self, first_new: usize) {
        let algo = self.algo;
        let mut first_new = first_new;
        let mut k = 0;
        while self.levels[k].len() >= 2 {
            if self.levels.len() == k + 1 {
                self.levels.push(Vec::new());
            }
            let (lower, upper) = self.levels.split_at_mut(k + 1);
            let (children, parents) = (&lower[k], &mut upper[0]);
            let from = (first_new / 2).min(parents.len());
            let to = children.len() / 2;
            let pair = |i: usize| node_hash(algo, &children[2 * i], &children[2 * i + 1]);
            if to - from < PARALLEL_MIN_NODES {
                parents.extend((from..to).map(pair));
            } else {
                let fresh: Vec<Digest> = (from..to).into_par_iter().with_min_len(512).map(pair).collect();
                parents.extend(fresh);
            }
            first_new = from;
            k += 1;
        }
    }

    fn check_size(&self, size: u64) -> Result<()> {
        if size > self.size() {
            return Err(Error::OutOfRange {
                what: "tree size",
                value: size,
                bound: format!("the log holds {} leaves", self.size()),
            });
        }
        Ok(())
    }

    /// Root of the first `size` leaves (`MTH(D[0:size])`).
    pub fn root(&self, size: u64) -> Result<Digest> {
        self.check_size(size)?;
        Ok(if size == 0 { empty_root(self.algo) } else { self.subtree(0, size) })
    }

    /// `MTH(D[lo:hi])` for `hi > lo`, where `lo` is a multiple of the largest power of two below `hi - lo`
    /// (always true for the subtrees RFC 9162's recursions visit).
    fn subtree(&self, lo: u64, hi: u64) -> Digest {
        let n = hi - lo;
        if n.is_power_of_two() {
            let level = n.trailing_zeros() as usize;
            return self.levels[level][(lo >> level) as usize];
        }
        let k = split_point(n);
        node_hash(self.algo, &self.subtree(lo, lo + k), &self.subtree(lo + k, hi))
    }

    /// RFC 9162 inclusion proof (audit path) of leaf `index` in the tree of the first `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Digest>> {
        self.check_size(size)?;
        if index >= size {
            return Err(Error::OutOfRange {
                what: "leaf index",
                value: index,
                bound: format!("the tree has {size} leaves"),
            });
        }
        let mut path = Vec::with_capacity(64);
        let (mut lo, mut hi) = (0, size);
        // Walk down from the root, collecting siblings, then reverse into leaf-to-root order.
        while hi - lo > 1 {
            let k = split_point(hi - lo);
            if index < lo + k {
                path.push(self.subtree(lo + k, hi));
                hi = lo + k;
            } else {
                path.push(self.subtree(lo, lo + k));
                lo += k;
            }
        }
        path.reverse();
        Ok(path)
    }

    /// RFC 9162 consistency proof between the trees of the first `old_size` and `new_size` leaves.
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Digest>> {
        self.check_size(new_size)?;
        if old_size > new_size {
            return Err(Error::OutOfRange {
                what: "old size",
                value: old_size,
                bound: format!("it must not exceed the new size {new_size}"),
            });
        }
        let mut path = Vec::with_capacity(64);
        if old_size == 0 || old_size == new_size {
            return Ok(path);
        }
        // SUBPROOF(m, D[lo:hi], complete), unrolled; nodes are found root-first and reversed.
        let (mut m, mut lo, mut hi, mut complete) = (old_size, 0, new_size, true);
        while m != hi - lo {
            let k = split_point(hi - lo);
            if m <= k {
                path.push(self.subtree(lo + k, hi));
                hi = lo + k;
            } else {
                path.push(self.subtree(lo, lo + k));
                m -= k;
                lo += k;
                complete = false;
            }
        }
        if !complete {
            path.push(self.subtree(lo, hi));
        }
        path.reverse();
        Ok(path)
    }

    /// Compact form: a header and the leaf hashes; interior nodes are recomputed on load.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.levels[0].len() * DIGEST_LEN);
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        out.push(algo_code(self.algo));
        out.extend_from_slice(&self.size().to_be_bytes());
        for h in &self.levels[0] {
            out.extend_from_slice(h);
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bad = |reason: String| Error::Malformed { what: "Merkle log encoding", reason };
        if bytes.len() < HEADER_LEN || &bytes[..4] != MAGIC {
            return Err(bad("missing the LCML header".into()));
        }
        if bytes[4] != FORMAT_VERSION {
            return Err(bad(format!("unsupported format version {}", bytes[4])));
        }
        let algo = algo_from_code(bytes[5]).ok_or_else(|| bad(format!("unknown hash code {}", bytes[5])))?;
        let size = u64::from_be_bytes(bytes[6..14].try_into().expect("8 bytes"));
        let body = &bytes[HEADER_LEN..];
        if (body.len() as u64) != size.saturating_mul(DIGEST_LEN as u64) {
            return Err(bad(format!("header says {size} leaves but {} bytes of hashes follow", body.len())));
        }
        let mut log = Self::new(algo);
        log.levels[0] = body.chunks_exact(DIGEST_LEN).map(|c| c.try_into().expect("32 bytes")).collect();
        log.rebuild_from(0);
        Ok(log)
    }
}

fn algo_code(algo: HashAlgo) -> u8 {
    match algo {
        HashAlgo::Blake3 => 1,
        HashAlgo::Sha256 => 2,
        HashAlgo::Sm3 => 3,
    }
}

fn algo_from_code(code: u8) -> Option<HashAlgo> {
    [HashAlgo::Blake3, HashAlgo::Sha256, HashAlgo::Sm3].into_iter().find(|a| algo_code(*a) == code)
}
