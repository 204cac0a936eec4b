//! Locator runs: the tx locator's older part, kept on disk as sorted arrays instead of in memory.
//!
//! A run is the concatenation of 12-byte records `id prefix (first 8 bytes) || u32 height`, both
//! big-endian, sorted as bytes (so by prefix, then height), each pair once. The ledger writes one
//! into its store, sequentially and in the commit of the block that fills the in-memory map, then
//! empties the map: memory and the work of opening a ledger stay bounded by the map's size, not
//! the chain's. Looking an id up is a binary search per run; runs are merged as they accumulate
//! so there are few of them.

use crate::error::{Error, Result};

pub const PREFIX_LEN: usize = 8;
pub const RECORD_LEN: usize = PREFIX_LEN + 4;
pub type Record = [u8; RECORD_LEN];

pub fn record(prefix: &[u8], height: u32) -> Record {
    let mut r = [0u8; RECORD_LEN];
    r[..PREFIX_LEN].copy_from_slice(&prefix[..PREFIX_LEN]);
    r[PREFIX_LEN..].copy_from_slice(&height.to_be_bytes());
    r
}

/// Sorts and deduplicates records into a run's bytes. The sort is the stable one because it finds
/// runs already in order and merges them: runs being merged come as a few sorted stretches.
pub fn from_records(mut records: Vec<Record>) -> Vec<u8> {
    records.sort();
    records.dedup();
    records.concat()
}

/// The number of records in `run`, which must be a whole number of them.
pub fn count(run: &[u8]) -> Result<usize> {
    if run.len() % RECORD_LEN != 0 {
        return Err(Error::BadLength { what: "a locator run", expected: RECORD_LEN, got: run.len() % RECORD_LEN });
    }
    Ok(run.len() / RECORD_LEN)
}

/// Checks that `run` is a whole number of records in strictly ascending order: a run read back
/// from a store that is not is corrupt, and a binary search over it would miss ids silently.
pub fn check(run: &[u8]) -> Result<usize> {
    let n = count(run)?;
    if let Some(at) = run.chunks_exact(RECORD_LEN).zip(run.chunks_exact(RECORD_LEN).skip(1)).position(|(a, b)| a >= b) {
        return Err(Error::Malformed {
            what: "locator run",
            reason: format!("record {} does not sort after the one before it", at + 1),
        });
    }
    Ok(n)
}

/// Merges runs (each already checked) into one.
pub fn merge(runs: &[&[u8]]) -> Vec<u8> {
    let records = runs.iter().flat_map(|r| r.chunks_exact(RECORD_LEN)).map(|c| c.try_into().expect("12 bytes"));
    from_records(records.collect())
}

/// Heights in `run` that may hold `id` (32 bytes, checked by the caller), ascending.
pub fn candidates<'a>(run: &'a [u8], id: &[u8]) -> impl Iterator<Item = u32> + 'a {
    let prefix: [u8; PREFIX_LEN] = id[..PREFIX_LEN].try_into().expect("8 bytes");
    let at = |i: usize| &run[i * RECORD_LEN..(i + 1) * RECORD_LEN];
    let n = run.len() / RECORD_LEN;
    // The first record whose prefix is not below `prefix`.
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if at(mid)[..PREFIX_LEN] < prefix[..] {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    (lo..n)
        .map(at)
        .take_while(move |r| r[..PREFIX_LEN] == prefix[..])
        .map(|r| u32::from_be_bytes(r[PREFIX_LEN..].try_into().expect("4 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(prefix: u8, rest: u8) -> [u8; 32] {
        let mut id = [rest; 32];
        id[..PREFIX_LEN].fill(prefix);
        id
    }

    #[test]
    fn finds_every_height_of_a_prefix_and_nothing_else() {
        let run = from_records(vec![
            record(&id(5, 0), 9),
            record(&id(2, 0), 3),
            record(&id(5, 0), 1),
            record(&id(5, 0), 9), // a repeat: kept once
            record(&id(7, 0), 2),
        ]);
        assert_eq!(check(&run).unwrap(), 4);
        assert_eq!(candidates(&run, &id(5, 1)).collect::<Vec<_>>(), [1, 9]);
        assert_eq!(candidates(&run, &id(2, 1)).collect::<Vec<_>>(), [3]);
        assert_eq!(candidates(&run, &id(7, 1)).collect::<Vec<_>>(), [2]);
        for absent in [0, 3, 6, 8, 255] {
            assert_eq!(candidates(&run, &id(absent, 1)).count(), 0, "{absent}");
        }
        assert_eq!(candidates(&[], &id(5, 1)).count(), 0);
    }

    #[test]
    fn merging_keeps_order_and_drops_repeats() {
        let a = from_records((0..50u8).map(|i| record(&id(i * 2, 0), u32::from(i))).collect());
        let b = from_records((0..50u8).map(|i| record(&id(i * 3, 0), 100)).collect());
        let m = merge(&[&a, &b]);
        assert_eq!(check(&m).unwrap(), 100); // a shared prefix at two heights is two records
        assert_eq!(candidates(&m, &id(6, 0)).collect::<Vec<_>>(), [3, 100]);
        assert_eq!(merge(&[&a, &a]), a);
    }

    #[test]
    fn a_torn_or_unsorted_run_is_refused() {
        let run = from_records(vec![record(&id(1, 0), 1), record(&id(2, 0), 1)]);
        assert!(matches!(check(&run[..13]), Err(Error::BadLength { got: 1, .. })));
        let swapped = [&run[RECORD_LEN..], &run[..RECORD_LEN]].concat();
        assert!(matches!(check(&swapped), Err(Error::Malformed { .. })));
        let doubled = [&run[..RECORD_LEN], &run[..RECORD_LEN]].concat();
        assert!(matches!(check(&doubled), Err(Error::Malformed { .. })));
    }
}
