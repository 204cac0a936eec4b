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
//! `discard` drops them when it fails.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use super::keys::CHANGE_ID_LEN;
use super::writes::{self, ChangeId, StateValue, DELETED, LIVE, STATE_HEADER_LEN};
use crate::error::{Error, Result};

/// The height of the change a state value names.
fn height(value: &StateValue) -> u64 {
    u64::from_be_bytes(value[..8].try_into().expect("8 bytes"))
}

#[derive(Default)]
pub struct StateOverlay {
    committed: BTreeMap<Box<[u8]>, StateValue>,
    staged: HashMap<Box<[u8]>, StateValue>,
    /// change height -> committed entries naming a change at that height. The lowest is where a
    /// rebuild must start reading history.
    heights: BTreeMap<u64, u64>,
    /// The next fold starts after this key (None: at the first).
    cursor: Option<Box<[u8]>>,
    /// What the write in progress folds into `state`.
    folding: Vec<(Box<[u8]>, StateValue)>,
}

impl StateOverlay {
    pub fn new() -> Self {
        Self::default()
    }

    /// Committed entries.
    pub fn len(&self) -> usize {
        self.committed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.committed.is_empty()
    }

    /// The entry of `key`: the write in progress's (when `staged`), else the committed one.
    pub fn get(&self, key: &[u8], staged: bool) -> Option<&StateValue> {
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
        self.staged.insert(key.into(), value);
        Ok(())
    }

    /// Adds the committed change a stored history entry records, as the key's newest: entries
    /// must come in change-id order (the `history` table's).
    pub fn load(&mut self, change: &[u8], entry: &[u8]) -> Result<()> {
        let change: ChangeId = change.try_into().map_err(|_| Error::BadLength {
            what: "change id",
            expected: CHANGE_ID_LEN,
            got: change.len(),
        })?;
        let (key, value) = writes::state_of_history(&change, entry).ok_or_else(|| Error::Malformed {
            what: "history entry",
            reason: format!("change {} is not framed as a change of a key", hex(&change)),
        })?;
        self.insert(key.into(), value);
        Ok(())
    }

    fn insert(&mut self, key: Box<[u8]>, value: StateValue) {
        if let Some(old) = self.committed.insert(key, value) {
            self.uncount(height(&old));
        }
        *self.heights.entry(height(&value)).or_default() += 1;
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
    pub fn fold(&mut self, n: usize) -> &[(Box<[u8]>, StateValue)] {
        let after = match &self.cursor {
            Some(c) => Bound::Excluded(&c[..]),
            None => Bound::Unbounded,
        };
        let from_start = match &self.cursor {
            Some(c) => Bound::Included(&c[..]),
            None => Bound::Excluded(&[][..]), // the first pass already starts at the first key
        };
        let tail = self.committed.range::<[u8], _>((after, Bound::Unbounded));
        let head = self.committed.range::<[u8], _>((Bound::Unbounded, from_start));
        self.folding = tail.chain(head).take(n).map(|(k, v)| (k.clone(), *v)).collect();
        &self.folding
    }

    /// The lowest height of a change that is in neither `state` nor an earlier fold once the write
    /// in progress commits (its staged entries and the committed ones it does not fold); None when
    /// there is none. A rebuild reads history from there.
    pub fn lowest_height(&self) -> Option<u64> {
        let mut folded: HashMap<u64, u64> = HashMap::new();
        for (_, v) in &self.folding {
            *folded.entry(height(v)).or_default() += 1;
        }
        let committed = self.heights.iter().find(|&(h, &n)| n > folded.get(h).copied().unwrap_or(0)).map(|(h, _)| *h);
        let staged = self.staged.values().map(height).min();
        committed.into_iter().chain(staged).min()
    }

    /// The write in progress is durable: its staged entries become committed, and the entries it
    /// folded leave, unless it also staged a newer change of their key.
    pub fn publish(&mut self) {
        for (k, v) in std::mem::take(&mut self.staged) {
            self.insert(k, v);
        }
        let folded = std::mem::take(&mut self.folding);
        if let Some((last, _)) = folded.last() {
            self.cursor = Some(last.clone());
        }
        for (k, v) in folded {
            if self.committed.get(&k) == Some(&v) {
                self.committed.remove(&k);
                self.uncount(height(&v));
            }
        }
    }

    /// The write in progress failed: forget what it staged and folded.
    pub fn discard(&mut self) {
        self.staged.clear();
        self.folding.clear();
    }

    /// Committed entries in key order.
    pub fn items(&self) -> impl Iterator<Item = (&[u8], &StateValue)> {
        self.committed.iter().map(|(k, v)| (&k[..], v))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
        o.publish();
        assert_eq!(o.get(b"c/b", false).unwrap()[..], value(3, 1, LIVE)[..]);
        assert_eq!(o.len(), 2);
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
    fn the_lowest_height_leaves_out_what_the_write_folds_and_counts_what_it_stages() {
        let mut o = overlay_with(&[b"a"], 4);
        o.stage(b"b", &value(6, 0, LIVE)).unwrap();
        o.publish();
        assert_eq!(o.lowest_height(), Some(4));
        o.fold(1); // folds "a"
        assert_eq!(o.lowest_height(), Some(6));
        o.stage(b"c", &value(5, 0, LIVE)).unwrap();
        assert_eq!(o.lowest_height(), Some(5));
        o.publish();
        o.fold(2);
        assert_eq!(o.lowest_height(), None);
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
        for (change, entry) in &e.history {
            o.load(change, entry).unwrap();
        }
        let loaded: Vec<(Vec<u8>, Vec<u8>)> = o.items().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        assert_eq!(loaded, e.state);
        assert_eq!(o.lowest_height(), Some(9));
        let err = o.load(&e.history[0].0, &e.history[0].1[..40]).unwrap_err();
        assert!(err.to_string().contains("not framed"), "{err}");
        assert!(o.stage(b"c/a", &[0; 5]).is_err());
        assert!(o.stage(b"c/a", &[&change_id(1, 0, 0)[..], &[7]].concat()).is_err());
    }
}
