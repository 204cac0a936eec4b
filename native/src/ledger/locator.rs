//! Where committed transactions are: transaction id -> the heights of the blocks that may hold it.
//!
//! The ledger keeps this map in memory for its newest blocks (older ones are in sorted runs on
//! disk, see [`super::locator_run`]) and rebuilds it from their stored id lists when it opens,
//! instead of keeping a tx-id-keyed B-tree on disk: tx ids are hashes, so every insert into such a
//! tree lands on a random page, and once the tree outgrows a block, committing the block writes
//! about one 4 KB page per transaction for the index alone.

use foldhash::{HashMap, HashMapExt};

use super::locator_run::{self, Record, PREFIX_LEN};
use crate::error::{Error, Result};

// The map is keyed on an id's first PREFIX_LEN bytes. Ids are hashes: two of n ids share a prefix
// with probability about n²/2⁶⁵, and the caller confirms every candidate against its block's ids.
pub const ID_LEN: usize = 32;

/// The prefix as two u32 halves rather than a u64: a map entry (prefix, u32 height) is then 12
/// bytes aligned to 4 instead of 16 aligned to 8, a quarter less memory per id.
type Prefix = [u32; 2];

fn prefix(id: &[u8]) -> Prefix {
    let half = |i: usize| u32::from_le_bytes([id[i], id[i + 1], id[i + 2], id[i + 3]]);
    [half(0), half(PREFIX_LEN / 2)]
}

fn prefix_bytes(p: &Prefix) -> [u8; PREFIX_LEN] {
    let mut out = [0u8; PREFIX_LEN];
    out[..4].copy_from_slice(&p[0].to_le_bytes());
    out[4..].copy_from_slice(&p[1].to_le_bytes());
    out
}

/// The map is split by an id's first byte: growing one part rehashes 1/256 of the ids, so the
/// pause a doubling puts into some block's commit is spread over several blocks instead of
/// landing whole on one (340 ms at 7.3M ids unsplit).
const SHARDS: usize = 256;

pub struct TxLocator {
    /// prefix -> the lowest height holding an id with this prefix, in the shard of its first byte.
    first: Vec<HashMap<Prefix, u32>>,
    /// prefix -> further heights holding an id with it, ascending: a prefix collision, or one
    /// transaction included in two blocks (the second time it fails as a replay).
    later: HashMap<Prefix, Vec<u32>>,
    last_height: Option<u32>,
    ids: u64,
}

impl Default for TxLocator {
    fn default() -> Self {
        Self::new()
    }
}

impl TxLocator {
    pub fn new() -> Self {
        Self { first: (0..SHARDS).map(|_| HashMap::new()).collect(), later: HashMap::new(), last_height: None, ids: 0 }
    }

    /// Transaction ids recorded (repeats counted).
    pub fn len(&self) -> u64 {
        self.ids
    }

    pub fn is_empty(&self) -> bool {
        self.ids == 0
    }

    /// Records the ids of the block at `height` (`ids`: 32 bytes each, block order). Blocks come
    /// in ascending height order, so each prefix's heights stay sorted.
    pub fn add_block(&mut self, height: u64, ids: &[u8]) -> Result<()> {
        if ids.len() % ID_LEN != 0 {
            return Err(Error::BadLength {
                what: "a block's transaction ids",
                expected: ID_LEN,
                got: ids.len() % ID_LEN,
            });
        }
        let h = u32::try_from(height).map_err(|_| Error::OutOfRange {
            what: "block height",
            value: height,
            bound: format!("the transaction locator holds heights up to {}", u32::MAX),
        })?;
        if let Some(last) = self.last_height.filter(|&last| h <= last) {
            return Err(Error::OutOfRange {
                what: "block height",
                value: height,
                bound: format!("blocks are added in ascending order, and {last} was added already"),
            });
        }
        for id in ids.chunks_exact(ID_LEN) {
            let p = prefix(id);
            let first = *self.first[usize::from(id[0])].entry(p).or_insert(h);
            if first != h {
                let more = self.later.entry(p).or_default();
                if more.last() != Some(&h) {
                    more.push(h);
                }
            }
        }
        self.last_height = Some(h);
        self.ids += (ids.len() / ID_LEN) as u64;
        Ok(())
    }

    /// Every (prefix, height) the map holds, as a locator run.
    pub fn to_run(&self) -> Vec<u8> {
        let firsts = self.first.iter().flatten().map(|(p, &h)| locator_run::record(&prefix_bytes(p), h));
        let laters = self.later.iter().flat_map(|(p, hs)| hs.iter().map(|&h| locator_run::record(&prefix_bytes(p), h)));
        locator_run::from_records(firsts.chain(laters).collect::<Vec<Record>>())
    }

    /// Heights that may hold `id`, lowest first (empty: `id` is in no recorded block).
    pub fn candidates(&self, id: &[u8]) -> Result<Vec<u64>> {
        if id.len() != ID_LEN {
            return Err(Error::BadLength { what: "transaction id", expected: ID_LEN, got: id.len() });
        }
        let p = prefix(id);
        let Some(&first) = self.first[usize::from(id[0])].get(&p) else {
            return Ok(Vec::new());
        };
        let more = self.later.get(&p).map(Vec::as_slice).unwrap_or_default();
        Ok(std::iter::once(first).chain(more.iter().copied()).map(u64::from).collect())
    }
}

/// The position of each of `wanted` among a block's `ids` (32 bytes each), its first occurrence,
/// or `None` where the block does not hold it.
pub fn id_positions(ids: &[u8], wanted: &[&[u8]]) -> Result<Vec<Option<u32>>> {
    if ids.len() % ID_LEN != 0 {
        return Err(Error::BadLength { what: "a block's transaction ids", expected: ID_LEN, got: ids.len() % ID_LEN });
    }
    if let Some(bad) = wanted.iter().find(|w| w.len() != ID_LEN) {
        return Err(Error::BadLength { what: "transaction id", expected: ID_LEN, got: bad.len() });
    }
    let mut at: HashMap<&[u8], u32> = HashMap::with_capacity(wanted.len());
    for w in wanted {
        at.insert(w, u32::MAX);
    }
    for (i, id) in ids.chunks_exact(ID_LEN).enumerate() {
        if let Some(slot) = at.get_mut(id) {
            if *slot == u32::MAX {
                *slot = i as u32;
            }
        }
    }
    Ok(wanted.iter().map(|w| Some(at[w]).filter(|&i| i != u32::MAX)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(prefix: u8, rest: u8) -> [u8; ID_LEN] {
        let mut id = [rest; ID_LEN];
        id[..PREFIX_LEN].fill(prefix);
        id
    }

    #[test]
    fn finds_each_block_an_id_may_be_in() {
        let mut loc = TxLocator::new();
        loc.add_block(1, &[id(1, 1), id(2, 2)].concat()).unwrap();
        // Same prefix as an id of block 1 (a collision), and a repeat of block 1's first id.
        loc.add_block(2, &[id(2, 9), id(1, 1), id(1, 1)].concat()).unwrap();
        loc.add_block(4, &id(2, 7)).unwrap();
        assert_eq!(loc.candidates(&id(1, 1)).unwrap(), [1, 2]);
        assert_eq!(loc.candidates(&id(2, 3)).unwrap(), [1, 2, 4]);
        assert!(loc.candidates(&id(3, 3)).unwrap().is_empty());
        assert_eq!(loc.len(), 6);
        // As a run, the same answers.
        let run = loc.to_run();
        assert_eq!(locator_run::check(&run).unwrap(), 5); // prefix 1 at 1, 2; prefix 2 at 1, 2, 4
        assert_eq!(locator_run::candidates(&run, &id(2, 3)).collect::<Vec<_>>(), [1, 2, 4]);
        assert_eq!(locator_run::candidates(&run, &id(1, 1)).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn refuses_blocks_out_of_order_and_bad_lengths() {
        let mut loc = TxLocator::new();
        loc.add_block(5, &id(1, 1)).unwrap();
        assert!(matches!(loc.add_block(5, &id(2, 2)), Err(Error::OutOfRange { value: 5, .. })));
        assert!(matches!(loc.add_block(6, &[0u8; 33]), Err(Error::BadLength { got: 1, .. })));
        assert!(matches!(loc.add_block(1 << 32, &id(2, 2)), Err(Error::OutOfRange { .. })));
        assert!(matches!(loc.candidates(&[0u8; 31]), Err(Error::BadLength { got: 31, .. })));
        assert_eq!(loc.len(), 1);
    }

    #[test]
    fn positions_are_first_occurrences() {
        let ids = [id(1, 1), id(2, 2), id(1, 1)].concat();
        let (a, b, c) = (id(1, 1), id(2, 2), id(3, 3));
        let wanted: [&[u8]; 4] = [&b, &c, &a, &a];
        assert_eq!(id_positions(&ids, &wanted).unwrap(), [Some(1), None, Some(0), Some(0)]);
        assert!(id_positions(&ids[1..], &wanted).is_err());
    }
}
