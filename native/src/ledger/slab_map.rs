//! A hash map whose table holds 4-byte positions into a slab of entries instead of the entries.
//!
//! The state overlay maps up to ~1M state keys (48-byte inline keys) to 17-byte values: a table
//! of the entries themselves has 72-byte slots, ~70 MB at that size, so nearly every probe and
//! every slot moved when it grows misses the cache. A table of positions is ~5 MB. A lookup of
//! an absent key reads only the table; one that finds its key reads the entry once, to compare.
//!
//! Until something is removed, entries keep the order they were first inserted in (`iter`,
//! `drain`): the overlay's staged entries rely on it.

use std::hash::BuildHasher;
use std::ops::Deref;

use hashbrown::hash_table::{Entry, HashTable};

pub struct SlabMap<K, V> {
    /// Positions in `slots` of the live entries, hashed by their keys.
    index: HashTable<u32>,
    /// Entries by position; None where one was removed (its position is in `free`).
    slots: Vec<Option<(K, V)>>,
    free: Vec<u32>,
    hasher: foldhash::fast::RandomState,
}

impl<K, V> Default for SlabMap<K, V> {
    fn default() -> Self {
        Self { index: HashTable::new(), slots: Vec::new(), free: Vec::new(), hasher: Default::default() }
    }
}

impl<K: Deref<Target = [u8]>, V> SlabMap<K, V> {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn entry_at(slots: &[Option<(K, V)>], at: u32) -> &(K, V) {
        slots[at as usize].as_ref().expect("the index holds live positions only")
    }

    pub fn get(&self, key: &[u8]) -> Option<&V> {
        let slots = &self.slots;
        let found = self.index.find(self.hasher.hash_one(key), |&at| *Self::entry_at(slots, at).0 == *key);
        found.map(|&at| &Self::entry_at(slots, at).1)
    }

    /// Sets `key`'s value, returning the one it replaces.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let (slots, hasher) = (&mut self.slots, &self.hasher);
        let rehash = |&at: &u32| hasher.hash_one(&*Self::entry_at(slots, at).0);
        match self.index.entry(hasher.hash_one(&*key), |&at| *Self::entry_at(slots, at).0 == *key, rehash) {
            Entry::Occupied(at) => {
                let (_, old) = slots[*at.get() as usize].as_mut().expect("the index holds live positions only");
                Some(std::mem::replace(old, value))
            }
            Entry::Vacant(slot) => {
                let at = match self.free.pop() {
                    Some(at) => {
                        slots[at as usize] = Some((key, value));
                        at
                    }
                    None => {
                        slots.push(Some((key, value)));
                        u32::try_from(slots.len() - 1).expect("fewer than 2^32 entries")
                    }
                };
                slot.insert(at);
                None
            }
        }
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        let slots = &mut self.slots;
        let found = self.index.find_entry(self.hasher.hash_one(key), |&at| *Self::entry_at(slots, at).0 == *key);
        let (at, _) = found.ok()?.remove();
        self.free.push(at);
        slots[at as usize].take().map(|(_, value)| value)
    }

    /// Keeps only the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        let (slots, free) = (&mut self.slots, &mut self.free);
        self.index.retain(|&mut at| {
            let (k, v) = Self::entry_at(slots, at);
            let kept = keep(k, v);
            if !kept {
                slots[at as usize] = None;
                free.push(at);
            }
            kept
        });
    }

    /// Every entry: in insertion order until something is removed, then in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.slots.iter().flatten().map(|(k, v)| (k, v))
    }

    /// Takes every entry out, in the order of `iter`; the capacity stays for the next ones.
    pub fn drain(&mut self) -> impl Iterator<Item = (K, V)> + '_ {
        self.index.clear();
        self.free.clear();
        self.slots.drain(..).flatten()
    }

    pub fn clear(&mut self) {
        self.drain().for_each(drop);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn behaves_as_a_map_through_inserts_replacements_removals_and_reused_positions() {
        let mut m: SlabMap<Vec<u8>, u64> = SlabMap::default();
        let mut model: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        let mut seed = 11u64;
        for step in 0..20_000u64 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let key = format!("k/{}", (seed >> 33) % 500).into_bytes();
            match (seed >> 20) % 4 {
                0 => assert_eq!(m.remove(&key), model.remove(&key)),
                1 => {
                    let n = m.len();
                    m.retain(|k, v| (k.len() + *v as usize) % 7 != 0);
                    model.retain(|k, v| (k.len() + *v as usize) % 7 != 0);
                    assert!(m.len() <= n);
                }
                _ => assert_eq!(m.insert(key.clone(), step), model.insert(key, step)),
            }
            assert_eq!(m.len(), model.len());
        }
        for (k, v) in &model {
            assert_eq!(m.get(k), Some(v));
        }
        assert_eq!(m.get(b"absent"), None);
        let mut all: Vec<(Vec<u8>, u64)> = m.iter().map(|(k, v)| (k.clone(), *v)).collect();
        all.sort();
        assert_eq!(all, model.into_iter().collect::<Vec<_>>());
        // Removed positions are reused: the slab does not grow past the most entries ever held.
        assert!(m.slots.len() <= 500);
        assert_eq!(m.drain().count(), all.len());
        assert!(m.is_empty() && m.get(&all[0].0).is_none());
    }

    #[test]
    fn without_removals_entries_keep_their_insertion_order_and_replacements_their_place() {
        let mut m: SlabMap<Vec<u8>, u32> = SlabMap::default();
        for (i, k) in [b"c", b"a", b"b"].into_iter().enumerate() {
            m.insert(k.to_vec(), i as u32);
        }
        assert_eq!(m.insert(b"a".to_vec(), 9), Some(1));
        let order: Vec<(Vec<u8>, u32)> = m.drain().collect();
        assert_eq!(order, [(b"c".to_vec(), 0), (b"a".to_vec(), 9), (b"b".to_vec(), 2)]);
        m.insert(b"z".to_vec(), 1);
        m.clear();
        assert!(m.is_empty() && m.iter().next().is_none());
    }
}
