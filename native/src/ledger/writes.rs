//! A block's ordered writes turned into store entries: the final state of each key (last write
//! wins, carrying its version) and one history entry per write.
//!
//! Entries come out sorted by store key: a B-tree takes sorted inserts (and lookups) with far
//! fewer cache misses than the random order of a block's keys.

use super::keys::{history_key, version, VERSION_LEN};
use crate::hash::Digest;

/// One state change made by transaction `tx` of the block; `value: None` deletes the key.
#[derive(Clone, Copy, Debug)]
pub struct Write<'a> {
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
    pub tx: u32,
}

pub const HISTORY_PUT: u8 = 1;
pub const HISTORY_DELETE: u8 = 0;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Entries {
    /// `state key -> version || value`, each key once, sorted by key.
    pub state_puts: Vec<(Vec<u8>, Vec<u8>)>,
    /// Keys whose last write in the block deleted them, sorted.
    pub state_deletes: Vec<Vec<u8>>,
    /// `history key -> tx id || flag || value`, one per write, sorted by history key.
    pub history: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Which writes become which entries, as indices into the block's writes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Order {
    /// The last write of each key whose last write puts a value, sorted by key.
    pub state_puts: Vec<u32>,
    /// The last write of each key whose last write deletes it, sorted by key.
    pub state_deletes: Vec<u32>,
    /// Every write, sorted by history key (`u16 len || key || version`; a repeat of a key by the
    /// same transaction keeps block order, so the later entry is put last and wins).
    pub history: Vec<u32>,
}

/// The first 16 bytes of `key`, zero-padded, as a big-endian number: where two heads differ, they
/// order as the keys do.
pub fn head(key: &[u8]) -> u128 {
    let mut buf = [0u8; 16];
    let n = key.len().min(16);
    buf[..n].copy_from_slice(&key[..n]);
    u128::from_be_bytes(buf)
}

/// Indices of `keys` sorted by key bytes; equal keys keep their order.
pub fn sorted_indices<K: AsRef<[u8]>>(keys: &[K]) -> Vec<u32> {
    let mut order: Vec<(u128, u32)> = keys.iter().enumerate().map(|(i, k)| (head(k.as_ref()), i as u32)).collect();
    order.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0).then_with(|| keys[a.1 as usize].as_ref().cmp(keys[b.1 as usize].as_ref())).then(a.1.cmp(&b.1))
    });
    order.into_iter().map(|(_, i)| i).collect()
}

pub fn order(writes: &[Write<'_>]) -> Order {
    // History keys sort by key length first (the u16 prefix), then key, then version (the tx).
    let mut history: Vec<(u16, u128, u32)> =
        writes.iter().enumerate().map(|(i, w)| (w.key.len() as u16, head(w.key), i as u32)).collect();
    history.sort_unstable_by(|a, b| {
        let (wa, wb) = (&writes[a.2 as usize], &writes[b.2 as usize]);
        (a.0, a.1)
            .cmp(&(b.0, b.1))
            .then_with(|| wa.key.cmp(wb.key))
            .then(wa.tx.cmp(&wb.tx))
            .then(a.2.cmp(&b.2))
    });
    let mut out = Order { history: Vec::with_capacity(writes.len()), ..Order::default() };
    // Writes sorted by key, block order within a key: the last of each run is the key's last write.
    let by_key = sorted_indices(&writes.iter().map(|w| w.key).collect::<Vec<_>>());
    for (n, &i) in by_key.iter().enumerate() {
        let last_of_key = by_key.get(n + 1).is_none_or(|&next| writes[next as usize].key != writes[i as usize].key);
        if last_of_key {
            match writes[i as usize].value {
                Some(_) => out.state_puts.push(i),
                None => out.state_deletes.push(i),
            }
        }
    }
    out.history.extend(history.into_iter().map(|(_, _, i)| i));
    out
}

/// The stored state value of a put: `version || value`.
pub fn state_value(height: u64, w: &Write<'_>, out: &mut [u8]) {
    let v = w.value.expect("a put");
    out[..VERSION_LEN].copy_from_slice(&version(height, w.tx));
    out[VERSION_LEN..].copy_from_slice(v);
}

pub fn state_value_len(w: &Write<'_>) -> usize {
    VERSION_LEN + w.value.map_or(0, <[u8]>::len)
}

/// The history value of a write: `tx id || flag || value`.
pub fn history_value(w: &Write<'_>, txid: &Digest, out: &mut [u8]) {
    out[..32].copy_from_slice(txid);
    match w.value {
        Some(v) => {
            out[32] = HISTORY_PUT;
            out[33..].copy_from_slice(v);
        }
        None => out[32] = HISTORY_DELETE,
    }
}

pub fn history_value_len(w: &Write<'_>) -> usize {
    33 + w.value.map_or(0, <[u8]>::len)
}

pub fn entries(height: u64, writes: &[Write<'_>], txids: &[Digest]) -> Entries {
    let order = order(writes);
    let fill = |len: usize, f: &dyn Fn(&mut [u8])| {
        let mut buf = vec![0u8; len];
        f(&mut buf);
        buf
    };
    Entries {
        state_puts: order
            .state_puts
            .iter()
            .map(|&i| {
                let w = &writes[i as usize];
                (w.key.to_vec(), fill(state_value_len(w), &|b| state_value(height, w, b)))
            })
            .collect(),
        state_deletes: order.state_deletes.iter().map(|&i| writes[i as usize].key.to_vec()).collect(),
        history: order
            .history
            .iter()
            .map(|&i| {
                let w = &writes[i as usize];
                let value = fill(history_value_len(w), &|b| history_value(w, &txids[w.tx as usize], b));
                (history_key(w.key, height, w.tx), value)
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_write_wins_and_every_write_is_in_history() {
        let ids = [[1u8; 32], [2u8; 32], [3u8; 32]];
        let writes = [
            Write { key: b"c/a", value: Some(b"1"), tx: 0 },
            Write { key: b"c/b", value: Some(b"2"), tx: 1 },
            Write { key: b"c/a", value: None, tx: 2 },
            Write { key: b"c/b", value: Some(b"3"), tx: 2 },
        ];
        let e = entries(7, &writes, &ids);
        assert_eq!(e.state_deletes, vec![b"c/a".to_vec()]);
        assert_eq!(e.state_puts.len(), 1);
        assert_eq!(e.state_puts[0].0, b"c/b");
        assert_eq!(&e.state_puts[0].1[..VERSION_LEN], &version(7, 2));
        assert_eq!(&e.state_puts[0].1[VERSION_LEN..], b"3");
        assert_eq!(e.history.len(), 4);
        // Sorted by history key: c/a (tx 0, tx 2), then c/b (tx 1, tx 2).
        assert_eq!(e.history[1].0, history_key(b"c/a", 7, 2));
        assert_eq!(e.history[1].1, [&[3u8; 32][..], &[HISTORY_DELETE]].concat());
        assert_eq!(e.history[2].1, [&[2u8; 32][..], &[HISTORY_PUT], b"2"].concat());
    }

    #[test]
    fn entries_are_sorted_by_store_key_whatever_the_write_order() {
        // Keys longer than the 16-byte head, keys that share it, and keys of several lengths.
        let keys: Vec<Vec<u8>> = (0..300u32)
            .map(|i| match i % 3 {
                0 => format!("evidence/lic/{:08x}", i.wrapping_mul(2654435761)).into_bytes(),
                1 => format!("evidence/lic/0000000{}", i % 7).into_bytes(),
                _ => format!("c/{}", i % 11).into_bytes(),
            })
            .collect();
        let ids: Vec<Digest> = (0..300u32).map(|i| [i as u8; 32]).collect();
        let writes: Vec<Write<'_>> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| Write { key: k, value: (i % 5 != 0).then_some(&k[..2]), tx: i as u32 })
            .collect();
        let e = entries(3, &writes, &ids);
        assert!(e.state_puts.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(e.state_deletes.windows(2).all(|w| w[0] < w[1]));
        assert!(e.history.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(e.history.len(), writes.len());
        // Each key's state is its last write in block order.
        let mut last = std::collections::BTreeMap::new();
        for w in &writes {
            last.insert(w.key.to_vec(), *w);
        }
        let puts: Vec<_> = last.iter().filter(|(_, w)| w.value.is_some()).map(|(k, _)| k.clone()).collect();
        assert_eq!(e.state_puts.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), puts);
        for (k, v) in &e.state_puts {
            assert_eq!(&v[..VERSION_LEN], &version(3, last[k].tx));
        }
        let deletes: Vec<_> = last.iter().filter(|(_, w)| w.value.is_none()).map(|(k, _)| k.clone()).collect();
        assert_eq!(e.state_deletes, deletes);
    }

    #[test]
    fn sorted_indices_is_stable() {
        let keys: [&[u8]; 6] = [b"b", b"a", b"b", b"aaaaaaaaaaaaaaaaaaaa", b"a", b"aaaaaaaaaaaaaaaaaaa"];
        assert_eq!(sorted_indices(&keys), [1, 4, 5, 3, 0, 2]);
    }
}
