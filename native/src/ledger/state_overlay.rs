//! State entries not yet folded into the store's `state` table.
//!
//! A block's state entries (`key -> change id || flag`) come here once its write is durable
//! instead of going into the `state` B-tree: their keys are random, so once that table outgrew a
//! block each of them cost about one 4 KB page in the commit. They are durable all the same: the
//! history entries the same write appended name every change with its key, so after a crash the
//! overlay is read back from `history`. Each commit folds a slice of the overlay into `state`,
//! the next stretch of keys in key order (a sweep that wraps around): a slice of 1/S of the keys
//! lands on about 1/S of the table's pages, each of which then takes many entries at once.
//!
//! The entries of a write in progress are staged apart (a group write executes several blocks,
//! each reading those before it); `publish` makes them visible once the write is durable, and
//! `discard` drops them when it fails. Publishing only marks them: merging them into the
//! committed entries (~10 ms for a 10k block at 10M keys) waits for `settle`, which the next call
//! that changes the overlay makes, so that the commit returns without it and the ledger can
//! settle while the next block's signatures are checked.

use std::borrow::Borrow;
use std::cmp::{Ordering, Reverse};
use std::collections::binary_heap::PeekMut;
use std::collections::{BTreeMap, BinaryHeap};
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use foldhash::{HashMap, HashMapExt};

use super::keys::CHANGE_ID_LEN;
use super::slab_map::SlabMap;
use super::writes::{self, hex, ChangeId, StateValue, DELETED, LIVE, STATE_HEADER_LEN};
use crate::error::{Error, Result};

/// The height of the change a state value names.
fn height(value: &StateValue) -> u64 {
    u64::from_be_bytes(value[..8].try_into().expect("8 bytes"))
}

/// Keys up to this long are kept inside the map's nodes.
const INLINE: usize = 46;

/// A state key, kept inline when short (as most are: `evidence/` and a licence number is ~30
/// bytes), so that a map lookup compares bytes in the node it is reading instead of following a
/// pointer to another allocation for every comparison (~4x faster at a million keys).
#[derive(Clone)]
pub enum Key {
    Inline(u8, [u8; INLINE]),
    Heap(Box<[u8]>),
}

impl From<&[u8]> for Key {
    fn from(key: &[u8]) -> Self {
        if key.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..key.len()].copy_from_slice(key);
            Key::Inline(key.len() as u8, buf)
        } else {
            Key::Heap(key.into())
        }
    }
}

impl Deref for Key {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Key::Inline(len, buf) => &buf[..*len as usize],
            Key::Heap(key) => key,
        }
    }
}

// Equality, order and hash are those of the bytes, as `Borrow<[u8]>` requires.
impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        (**self).cmp(&**other)
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}

/// The keys one commit published, in the sweep's order from the cursor it published at (those after
/// it ascending, then those up to it): the sweep passes them from `head` on.
struct Run {
    keys: Vec<Key>,
    head: usize,
}

/// Where `key` comes in a sweep that starts after `cursor`: keys after it ascending, then the
/// others ascending.
fn sweep_rank<'a>(cursor: Option<&[u8]>, key: &'a [u8]) -> (bool, &'a [u8]) {
    (cursor.is_some_and(|c| key <= c), key)
}

#[derive(Default)]
pub struct StateOverlay {
    /// The newest committed entry of each key. Hashed: a lookup or an update costs one probe,
    /// whatever the overlay's size; the sweep's order comes from `runs`.
    committed: SlabMap<Key, StateValue>,
    /// Every committed key is in some run, at or after its head: the sweep has not passed it since
    /// it was last written.
    runs: Vec<Run>,
    /// The write in progress's entries in the order staged (a block stages its keys in key order,
    /// so its run needs no sort); a key staged again is replaced in place. Its index of 4-byte
    /// positions stays in cache while a block stages its 10k keys.
    staged: SlabMap<Key, StateValue>,
    /// change height -> committed entries naming a change at that height. The lowest is where a
    /// rebuild must start reading history.
    heights: BTreeMap<u64, u64>,
    /// The next fold starts after this key (None: at the first).
    cursor: Option<Key>,
    /// What the write in progress folds into `state`, and each run's head once it commits.
    folding: Vec<(Key, StateValue)>,
    folded_heads: Vec<usize>,
    /// The staged entries and the fold are a durable write's, published but not yet settled:
    /// `get` answers from them as committed.
    durable: bool,
}

impl StateOverlay {
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty overlay whose sweep goes on after `cursor` (the last key an earlier fold took),
    /// so that a reopened ledger continues its sweep instead of starting it again.
    pub fn resuming(cursor: &[u8]) -> Self {
        Self { cursor: Some(cursor.into()), ..Self::default() }
    }

    /// The last key folded (None: no fold yet): the next fold starts after it.
    pub fn cursor(&self) -> Option<&[u8]> {
        let published = self.folding.last().filter(|_| self.durable).map(|(k, _)| k);
        published.or(self.cursor.as_ref()).map(|k| &k[..])
    }

    /// Committed entries, once settled.
    pub fn len(&self) -> usize {
        debug_assert!(!self.durable, "settle first");
        self.committed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry of `key`: the write in progress's (when `staged`), else the committed one. A
    /// published write's entries are committed ones, settled or not.
    pub fn get(&self, key: &[u8], staged: bool) -> Option<&StateValue> {
        let staged = staged || self.durable;
        staged.then(|| self.staged.get(key)).flatten().or_else(|| self.committed.get(key))
    }

    /// Stages `key -> value` (a state value, `change id || flag`) for the write in progress.
    pub fn stage(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let value: StateValue = value.try_into().map_err(|_| Error::BadLength {
            what: "state value",
            expected: STATE_HEADER_LEN,
            got: value.len(),
        })?;
        if ![LIVE, DELETED].contains(&value[CHANGE_ID_LEN]) {
            let reason = format!("flag {} of {:?} is neither live nor deleted", value[CHANGE_ID_LEN], key);
            return Err(Error::Malformed { what: "state value", reason });
        }
        self.settle();
        self.staged.insert(key.into(), value);
        Ok(())
    }

    /// Adds the committed changes stored history entries record, `(change id, entry)` in
    /// change-id order (the `history` table's), after any loaded before: each key's newest wins.
    /// Nothing is added if one of them is malformed.
    pub fn load<'a>(&mut self, entries: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Result<()> {
        let mut changes = Vec::new();
        for (change, entry) in entries {
            let change: ChangeId = change.try_into().map_err(|_| Error::BadLength {
                what: "change id",
                expected: CHANGE_ID_LEN,
                got: change.len(),
            })?;
            let (key, value) = writes::state_of_history(&change, entry).ok_or_else(|| Error::Malformed {
                what: "history entry",
                reason: format!("change {} is not framed as a change of a key", hex(&change)),
            })?;
            changes.push((Key::from(key), value));
        }
        self.settle();
        self.add(changes);
        Ok(())
    }

    /// Commits `entries` (later ones win) and puts their keys in a new run.
    fn add(&mut self, entries: impl IntoIterator<Item = (Key, StateValue)>) {
        let mut keys = Vec::new();
        for (key, value) in entries {
            keys.push(key.clone());
            if let Some(old) = self.committed.insert(key, value) {
                self.uncount(height(&old));
            }
            *self.heights.entry(height(&value)).or_default() += 1;
        }
        self.push_run(keys);
    }

    /// Adds a run of `keys` (committed ones), in the sweep's order from the cursor.
    fn push_run(&mut self, mut keys: Vec<Key>) {
        keys.sort_unstable();
        keys.dedup();
        // The keys up to the cursor (a prefix) are passed after the wrap: they go behind the others.
        let cursor = self.cursor.as_deref();
        let behind = keys.partition_point(|k| sweep_rank(cursor, k).0);
        keys.rotate_left(behind);
        if !keys.is_empty() {
            self.runs.push(Run { keys, head: 0 });
        }
    }

    fn uncount(&mut self, h: u64) {
        let count = self.heights.get_mut(&h).expect("every committed entry is counted");
        *count -= 1;
        if *count == 0 {
            self.heights.remove(&h);
        }
    }

    /// Picks the write in progress's fold: up to `n` committed entries, the next ones in key order
    /// after the last fold's (wrapping around), replacing any fold picked before.
    pub fn fold(&mut self, n: usize) -> &[(Key, StateValue)] {
        self.settle();
        let cursor = self.cursor.as_deref();
        let mut heads: Vec<usize> = self.runs.iter().map(|r| r.head).collect();
        let front = |i: usize, head: usize| self.runs[i].keys.get(head).map(|k| Reverse((sweep_rank(cursor, k), i)));
        let mut queue: BinaryHeap<_> = (0..self.runs.len()).filter_map(|i| front(i, heads[i])).collect();
        let mut folding: Vec<(Key, StateValue)> = Vec::with_capacity(n.min(self.committed.len()));
        // The sweep passes the runs' keys in order; a key in several runs is folded once, and all
        // of its copies are passed together.
        while let Some(&Reverse(((_, key), i))) = queue.peek() {
            let repeat = folding.last().is_some_and(|(last, _)| **last == *key);
            if folding.len() >= n && !repeat {
                break;
            }
            heads[i] += 1;
            // The run's next key takes its place at the top: one sift down instead of a pop and a push.
            match (front(i, heads[i]), queue.peek_mut()) {
                (Some(next), Some(mut top)) => *top = next,
                (None, Some(top)) => {
                    PeekMut::pop(top);
                }
                (_, None) => unreachable!("peeked above"),
            }
            let value = self.committed.get(key);
            debug_assert!(value.is_some(), "every key in a run ahead of its head is committed");
            if let (false, Some(value)) = (repeat, value) {
                folding.push((Key::from(key), *value));
            }
        }
        self.folding = folding;
        self.folded_heads = heads;
        &self.folding
    }

    /// The lowest height of a change that is in neither `state` nor an earlier fold once the write
    /// in progress commits (its staged entries and the committed ones it does not fold); None when
    /// there is none. A rebuild reads history from there.
    pub fn lowest_height(&self) -> Option<u64> {
        debug_assert!(!self.durable, "a write in progress, not a published one");
        let mut folded: HashMap<u64, u64> = HashMap::new();
        for (_, v) in &self.folding {
            *folded.entry(height(v)).or_default() += 1;
        }
        let committed = self.heights.iter().find(|&(h, &n)| n > folded.get(h).copied().unwrap_or(0)).map(|(h, _)| *h);
        let staged = self.staged.iter().map(|(_, v)| height(v)).min();
        committed.into_iter().chain(staged).min()
    }

    /// The write in progress is durable: its staged entries are committed from now on (`get`
    /// answers from them). The merge waits for [`Self::settle`].
    pub fn publish(&mut self) {
        self.durable = true;
    }

    /// Merges a published write: the entries it folded leave, unless it also staged a newer change
    /// of their key, and its staged entries join the committed ones, in a new run from the new
    /// cursor. Nothing when there is none; every call that changes the overlay settles first.
    pub fn settle(&mut self) {
        if !std::mem::take(&mut self.durable) {
            return;
        }
        let folded = std::mem::take(&mut self.folding);
        for (run, head) in self.runs.iter_mut().zip(std::mem::take(&mut self.folded_heads)) {
            run.head = head;
        }
        self.runs.retain(|r| r.head < r.keys.len());
        if let Some((last, _)) = folded.last() {
            self.cursor = Some(last.clone());
        }
        for (k, v) in folded {
            if self.staged.get(&k).is_some() {
                continue; // a newer change, committed below
            }
            self.committed.remove(&k);
            self.uncount(height(&v));
        }
        // Drained and put back: the next write stages into the same capacity instead of regrowing.
        let mut staged = std::mem::take(&mut self.staged);
        self.add(staged.drain());
        self.staged = staged;
    }

    /// Forgets the committed entries that name changes below `height`, for an overlay that follows
    /// the writes of another process: that process's folds have put those changes (or newer ones
    /// it loaded since) into `state`. The remaining keys form one run in the sweep's order. Only
    /// between writes: nothing may be staged or folding.
    pub fn forget_below(&mut self, height: u64) {
        self.settle();
        debug_assert!(self.staged.is_empty() && self.folding.is_empty(), "a write is in progress");
        self.committed.retain(|_, v| self::height(v) >= height);
        self.heights = self.heights.split_off(&height);
        self.runs.clear();
        let keys = self.committed.iter().map(|(k, _)| k.clone()).collect();
        self.push_run(keys);
    }

    /// The write in progress failed: forget what it staged and folded (a published write stays).
    pub fn discard(&mut self) {
        self.settle();
        self.staged.clear();
        self.folding.clear();
        self.folded_heads.clear();
    }

    /// Committed entries in key order, once settled.
    pub fn items(&self) -> impl Iterator<Item = (&[u8], &StateValue)> {
        debug_assert!(!self.durable, "settle first");
        let mut all: Vec<(&[u8], &StateValue)> = self.committed.iter().map(|(k, v)| (&k[..], v)).collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        all.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::keys::change_id;
    use crate::ledger::writes::{entries, Write};

    fn value(h: u64, tx: u32, flag: u8) -> Vec<u8> {
        [&change_id(h, tx, 0)[..], &[flag]].concat()
    }

    fn overlay_with(keys: &[&[u8]], h: u64) -> StateOverlay {
        let mut o = StateOverlay::new();
        for (i, k) in keys.iter().enumerate() {
            o.stage(k, &value(h, i as u32, LIVE)).unwrap();
        }
        o.publish();
        o.settle();
        o
    }

    #[test]
    fn staged_entries_are_seen_by_the_write_and_by_readers_only_once_published() {
        let mut o = overlay_with(&[b"c/a"], 1);
        o.stage(b"c/a", &value(2, 0, DELETED)).unwrap();
        o.stage(b"c/b", &value(2, 1, LIVE)).unwrap();
        assert_eq!(o.get(b"c/a", true).unwrap()[..], value(2, 0, DELETED)[..]);
        assert_eq!(o.get(b"c/a", false).unwrap()[..], value(1, 0, LIVE)[..]);
        assert!(o.get(b"c/b", false).is_none());
        o.discard();
        assert!(o.get(b"c/b", true).is_none());
        o.stage(b"c/b", &value(3, 1, LIVE)).unwrap();
        // A key staged again by the same write (a later block of a group): the newer entry wins.
        o.stage(b"c/c", &value(3, 2, LIVE)).unwrap();
        o.stage(b"c/b", &value(4, 0, DELETED)).unwrap();
        assert_eq!(o.get(b"c/b", true).unwrap()[..], value(4, 0, DELETED)[..]);
        assert_eq!(o.get(b"c/c", true).unwrap()[..], value(3, 2, LIVE)[..]);
        o.publish();
        o.settle();
        assert_eq!(o.get(b"c/b", false).unwrap()[..], value(4, 0, DELETED)[..]);
        assert_eq!(o.get(b"c/b", true).unwrap()[..], value(4, 0, DELETED)[..]); // nothing staged now
        assert_eq!(o.len(), 3);
        assert_eq!(o.lowest_height(), Some(1));
    }

    #[test]
    fn a_published_write_is_committed_before_it_is_settled_and_a_later_write_settles_it() {
        let mut o = overlay_with(&[b"c/a", b"c/b"], 1);
        assert_eq!(o.fold(1).len(), 1);
        o.stage(b"c/b", &value(2, 0, LIVE)).unwrap();
        o.stage(b"c/c", &value(2, 1, LIVE)).unwrap();
        o.publish();
        // Readers see the published write at once, and the sweep goes on after its fold.
        assert_eq!(o.get(b"c/b", false).unwrap()[..], value(2, 0, LIVE)[..]);
        assert_eq!(o.get(b"c/c", false).unwrap()[..], value(2, 1, LIVE)[..]);
        assert_eq!(o.cursor(), Some(&b"c/a"[..]));
        // A later write that fails, before staging anything or after, drops only its own entries.
        o.discard();
        assert_eq!(o.get(b"c/c", false).unwrap()[..], value(2, 1, LIVE)[..]);
        o.stage(b"c/d", &value(3, 0, LIVE)).unwrap();
        o.discard();
        assert!(o.get(b"c/d", true).is_none());
        assert_eq!(o.get(b"c/c", false).unwrap()[..], value(2, 1, LIVE)[..]);
        assert_eq!(o.len(), 2, "c/a folded and gone; c/b and c/c committed");
        assert_eq!(o.lowest_height(), Some(2));
        assert_eq!(
            o.fold(5).iter().map(|(k, _)| k.to_vec()).collect::<Vec<_>>(),
            vec![b"c/b".to_vec(), b"c/c".to_vec()]
        );
    }

    #[test]
    fn folds_sweep_every_key_in_key_order_and_wrap_around() {
        let keys: Vec<Vec<u8>> = (0..10u8).map(|i| vec![b'k', b'0' + i]).collect();
        let mut o = overlay_with(&keys.iter().map(|k| &k[..]).collect::<Vec<_>>(), 1);
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.extend(o.fold(3).iter().map(|(k, _)| k.to_vec()));
            // A newer change of a folded key, staged by the same write: it stays.
            o.stage(&keys[1], &value(2, 0, LIVE)).unwrap();
            o.publish();
            o.settle();
        }
        assert_eq!(seen, keys[..9].to_vec());
        assert_eq!(o.items().map(|(k, _)| k.to_vec()).collect::<Vec<_>>(), vec![keys[1].clone(), keys[9].clone()]);
        // Past the last key the sweep starts again from the first.
        assert_eq!(
            o.fold(5).iter().map(|(k, _)| k.to_vec()).collect::<Vec<_>>(),
            vec![keys[9].clone(), keys[1].clone()]
        );
    }

    #[test]
    fn a_key_in_several_runs_is_folded_once_and_random_use_keeps_every_key_until_the_sweep_passes_it() {
        // Keys restaged in many commits sit in many runs; a model map says what must be unfolded.
        let mut o = StateOverlay::new();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut seed = 7u64;
        let mut next = move |m: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % m
        };
        for h in 1..400u64 {
            let folded: Vec<(Vec<u8>, Vec<u8>)> =
                o.fold(next(6) as usize).iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
            let keys: Vec<Vec<u8>> = folded.iter().map(|(k, _)| k.clone()).collect();
            // In sweep order from where the last fold ended, each key once: a stretch of the table.
            let cursor = o.cursor.as_deref().map(<[u8]>::to_vec);
            let mut swept = keys.clone();
            swept.sort_by(|a, b| sweep_rank(cursor.as_deref(), a).cmp(&sweep_rank(cursor.as_deref(), b)));
            swept.dedup();
            assert_eq!(swept, keys, "a fold out of sweep order, or a key folded twice");
            for (k, v) in &folded {
                assert_eq!(model.get(k), Some(v), "folded an entry that is not the key's newest");
            }
            let mut staged = BTreeMap::new();
            for i in 0..next(5) {
                let key = format!("k{:02}", next(40)).into_bytes();
                let value = value(h, i as u32, LIVE);
                o.stage(&key, &value).unwrap();
                staged.insert(key, value);
            }
            if next(10) == 0 {
                o.discard();
                continue;
            }
            o.publish();
            o.settle();
            for (k, _) in folded {
                model.remove(&k);
            }
            model.extend(staged);
            let items: Vec<(Vec<u8>, Vec<u8>)> = o.items().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
            assert_eq!(items, model.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>(), "height {h}");
            let low = model.values().map(|v| u64::from_be_bytes(v[..8].try_into().unwrap())).min();
            assert_eq!(o.lowest_height(), low);
        }
        // Folds of one entry each pass every key within one sweep.
        let left = o.len();
        for _ in 0..left {
            o.fold(1);
            o.publish();
            o.settle();
        }
        assert!(o.is_empty() && o.runs.is_empty());
    }

    #[test]
    fn the_lowest_height_leaves_out_what_the_write_folds_and_counts_what_it_stages() {
        let mut o = overlay_with(&[b"a"], 4);
        o.stage(b"b", &value(6, 0, LIVE)).unwrap();
        o.publish();
        o.settle();
        assert_eq!(o.lowest_height(), Some(4));
        o.fold(1); // folds "a"
        assert_eq!(o.lowest_height(), Some(6));
        o.stage(b"c", &value(5, 0, LIVE)).unwrap();
        assert_eq!(o.lowest_height(), Some(5));
        o.publish();
        o.settle();
        o.fold(2);
        assert_eq!(o.lowest_height(), None);
    }

    #[test]
    fn a_resumed_sweep_starts_after_its_cursor() {
        let mut o = StateOverlay::resuming(b"k3");
        for (i, k) in [b"k1", b"k2", b"k3", b"k4", b"k5"].iter().enumerate() {
            o.stage(*k, &value(1, i as u32, LIVE)).unwrap();
        }
        o.publish();
        o.settle();
        let order = |o: &mut StateOverlay, n| o.fold(n).iter().map(|(k, _)| k.to_vec()).collect::<Vec<_>>();
        assert_eq!(order(&mut o, 3), vec![b"k4".to_vec(), b"k5".to_vec(), b"k1".to_vec()]);
        o.publish();
        o.settle();
        assert_eq!(o.cursor(), Some(&b"k1"[..]));
        assert_eq!(StateOverlay::new().cursor(), None);
    }

    #[test]
    fn forgetting_below_a_height_keeps_newer_entries_and_a_sweep_that_passes_each_once() {
        let mut o = overlay_with(&[b"a", b"b", b"c"], 3);
        o.fold(1); // "a", so the cursor moves past it
        o.stage(b"d", &value(5, 0, LIVE)).unwrap();
        o.publish();
        o.settle();
        o.stage(b"b", &value(7, 0, DELETED)).unwrap(); // a newer change of a key at height 3
        o.publish();
        o.settle();
        o.forget_below(5);
        let items: Vec<(Vec<u8>, Vec<u8>)> = o.items().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        assert_eq!(items, vec![(b"b".to_vec(), value(7, 0, DELETED)), (b"d".to_vec(), value(5, 0, LIVE))]);
        assert_eq!(o.lowest_height(), Some(5));
        // One run, from the cursor on: "b", then "d"; each folded once.
        let folded: Vec<Vec<u8>> = o.fold(5).iter().map(|(k, _)| k.to_vec()).collect();
        assert_eq!(folded, vec![b"b".to_vec(), b"d".to_vec()]);
        o.publish();
        o.settle();
        assert!(o.is_empty() && o.runs.is_empty() && o.lowest_height().is_none());
    }

    #[test]
    fn history_entries_load_as_the_state_entries_they_record() {
        let writes = [
            Write { key: b"c/a", value: Some(b"1"), tx: 0 },
            Write { key: b"c/b", value: Some(b"2"), tx: 1 },
            Write { key: b"c/a", value: None, tx: 1 },
        ];
        let e = entries(9, &writes, &[[7u8; 32]; 2], |_| None);
        let mut o = StateOverlay::new();
        let pairs = |range: std::ops::Range<usize>| e.history[range].iter().map(|(c, v)| (&c[..], &v[..]));
        o.load(pairs(0..1)).unwrap();
        o.load(pairs(1..3)).unwrap(); // a later batch: its change of c/a wins
        let loaded: Vec<(Vec<u8>, Vec<u8>)> = o.items().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        assert_eq!(loaded, e.state);
        assert_eq!(o.lowest_height(), Some(9));
        let mut fresh = StateOverlay::new();
        fresh.load(pairs(0..3)).unwrap(); // one batch: the newest change of c/a wins in it too
        assert_eq!(fresh.items().map(|(k, v)| (k.to_vec(), v.to_vec())).collect::<Vec<_>>(), e.state);
        let err = o.load([(&e.history[0].0[..], &e.history[0].1[..40])]).unwrap_err();
        assert!(err.to_string().contains("not framed"), "{err}");
        assert_eq!(o.len(), 2);
        assert!(o.stage(b"c/a", &[0; 5]).is_err());
        assert!(o.stage(b"c/a", &[&change_id(1, 0, 0)[..], &[7]].concat()).is_err());
    }
}
