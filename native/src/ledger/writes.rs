//! A block's ordered writes turned into store entries: the final state of each key (last write
//! wins, naming its change) and one history entry per write, linked to the key's previous change.
//!
//! State entries come out sorted by key: a B-tree takes sorted inserts (and lookups) with far fewer
//! cache misses than the random order of a block's keys. History entries come out sorted by change
//! id, which is also after every earlier block's, so the history table is only ever appended to.

use super::keys::{change_id, CHANGE_ID_LEN};
use crate::hash::Digest;

/// One state change made by transaction `tx` of the block; `value: None` deletes the key.
#[derive(Clone, Copy, Debug)]
pub struct Write<'a> {
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
    pub tx: u32,
}

/// A change id (see [`change_id`]).
pub type ChangeId = [u8; CHANGE_ID_LEN];
/// The previous change of a key written for the first time.
pub const NO_CHANGE: ChangeId = [0; CHANGE_ID_LEN];
/// Flag byte of a put; a delete has `DELETED` and no value.
pub const LIVE: u8 = 1;
pub const DELETED: u8 = 0;
/// A state value: `change id || flag`.
pub const STATE_HEADER_LEN: usize = CHANGE_ID_LEN + 1;
pub type StateValue = [u8; STATE_HEADER_LEN];
/// `previous change id || tx id || flag || u16 key length` in front of a history entry's key.
pub const HISTORY_HEADER_LEN: usize = CHANGE_ID_LEN + 32 + 1 + 2;
/// `Order::prev` of a write that is its key's first in the block.
pub const FIRST_IN_BLOCK: u32 = u32::MAX;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Entries {
    /// `state key -> change id || flag`, each key once (its last write), sorted by key; the value
    /// is in the history entry the change id keys. A key whose last write deletes it keeps a
    /// tombstone (flag `DELETED`), so its history stays reachable from its state entry.
    pub state: Vec<(Vec<u8>, Vec<u8>)>,
    /// `change id -> previous change id || tx id || flag || u16 len || state key || value`, one per
    /// write, sorted by change id.
    pub history: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Which writes become which entries, as indices into the block's writes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Order {
    /// The last write of each key, sorted by key.
    pub state: Vec<u32>,
    /// Every write, sorted by change id (`tx`, then position in the block).
    pub history: Vec<u32>,
    /// Per write: the same key's previous write in this block, or `FIRST_IN_BLOCK`.
    pub prev: Vec<u32>,
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
    let mut history: Vec<u32> = (0..writes.len() as u32).collect();
    // Slices run contract by contract, so tx indices can fall between slices; within one they rise.
    if !writes.windows(2).all(|w| w[0].tx <= w[1].tx) {
        history.sort_unstable_by_key(|&i| (writes[i as usize].tx, i));
    }
    let mut out = Order { history, prev: vec![FIRST_IN_BLOCK; writes.len()], ..Order::default() };
    // Writes sorted by key, block order within a key: each links to the one before it in its run,
    // and the last of each run is the key's last write.
    let by_key = sorted_indices(&writes.iter().map(|w| w.key).collect::<Vec<_>>());
    for (n, &i) in by_key.iter().enumerate() {
        match by_key.get(n + 1) {
            Some(&next) if writes[next as usize].key == writes[i as usize].key => out.prev[next as usize] = i,
            _ => out.state.push(i),
        }
    }
    out
}

/// The change id of write `i` of the block at `height`.
pub fn write_change(height: u64, writes: &[Write<'_>], i: u32) -> ChangeId {
    change_id(height, writes[i as usize].tx, i)
}

/// The change write `i` replaces: its key's previous write in this block, else `before(key)` (the
/// key's latest change in earlier blocks, from its state entry), else `NO_CHANGE`.
pub fn previous_change(
    height: u64,
    writes: &[Write<'_>],
    order: &Order,
    i: u32,
    before: &impl Fn(&[u8]) -> Option<ChangeId>,
) -> ChangeId {
    match order.prev[i as usize] {
        FIRST_IN_BLOCK => before(writes[i as usize].key).unwrap_or(NO_CHANGE),
        p => write_change(height, writes, p),
    }
}

/// The stored state value of a key's last write: `change id || flag`. The value itself lives only
/// in the history entry the change id keys, so a state entry stays a few dozen bytes whatever the
/// value's size: the table whose random inserts dominate a commit packs ~3x more keys per page.
pub fn state_value(change: &ChangeId, w: &Write<'_>, out: &mut [u8]) {
    out[..CHANGE_ID_LEN].copy_from_slice(change);
    out[CHANGE_ID_LEN] = if w.value.is_some() { LIVE } else { DELETED };
}

/// The change id a stored state value names, if it is one (at least a header long).
pub fn stored_change(state_value: &[u8]) -> Option<ChangeId> {
    state_value.get(..CHANGE_ID_LEN).map(|c| c.try_into().expect("16 bytes"))
}

/// The history value of a write: `previous change id || tx id || flag || u16 len || key || value`.
pub fn history_value(prev: &ChangeId, w: &Write<'_>, txid: &Digest, out: &mut [u8]) {
    out[..CHANGE_ID_LEN].copy_from_slice(prev);
    out[CHANGE_ID_LEN..CHANGE_ID_LEN + 32].copy_from_slice(txid);
    out[CHANGE_ID_LEN + 32] = if w.value.is_some() { LIVE } else { DELETED };
    out[CHANGE_ID_LEN + 33..HISTORY_HEADER_LEN].copy_from_slice(&(w.key.len() as u16).to_be_bytes());
    let rest = &mut out[HISTORY_HEADER_LEN..];
    rest[..w.key.len()].copy_from_slice(w.key);
    if let Some(v) = w.value {
        rest[w.key.len()..].copy_from_slice(v);
    }
}

pub fn history_value_len(w: &Write<'_>) -> usize {
    HISTORY_HEADER_LEN + w.key.len() + w.value.map_or(0, <[u8]>::len)
}

/// The key a stored history entry changed and what it became: `Some(value)` a put, `None` a
/// delete; `None` overall when the entry is not framed as [`history_value`] writes it (too short,
/// a bad flag, a delete with a value).
pub fn history_change(entry: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let len = u16::from_be_bytes(entry.get(CHANGE_ID_LEN + 33..HISTORY_HEADER_LEN)?.try_into().ok()?) as usize;
    let key = entry.get(HISTORY_HEADER_LEN..HISTORY_HEADER_LEN + len)?;
    let value = &entry[HISTORY_HEADER_LEN + len..];
    match entry[CHANGE_ID_LEN + 32] {
        LIVE => Some((key, Some(value))),
        DELETED if value.is_empty() => Some((key, None)),
        _ => None,
    }
}

/// What a stored history entry says `key` became: `Some(Some(value))` a put, `Some(None)` a delete;
/// `None` when the entry is not a change of `key` (too short, another key, a bad flag).
pub fn change_of<'a>(key: &[u8], entry: &'a [u8]) -> Option<Option<&'a [u8]>> {
    history_change(entry).filter(|(k, _)| *k == key).map(|(_, value)| value)
}

/// Why a stored state entry of `key` that a newer change (`newer`, a state value) replaces is not a
/// sound older entry, if it is not: it must be a change id and a flag, name a change no newer than
/// `newer`'s, whose history entry (`entry`; None: missing) is a change of `key`, and be live exactly
/// when that change put a value. Readers never see such an entry, nor does the audit's comparison
/// with its replay: the audit checks this instead.
pub fn replaced_entry_fault(key: &[u8], stored: &[u8], newer: &[u8], entry: Option<&[u8]>) -> Option<String> {
    if stored.len() != STATE_HEADER_LEN || ![LIVE, DELETED].contains(&stored[CHANGE_ID_LEN]) {
        return Some(format!("is {}, not a change id and a flag", hex(stored)));
    }
    let (change, live) = (&stored[..CHANGE_ID_LEN], stored[CHANGE_ID_LEN] == LIVE);
    if newer.get(..CHANGE_ID_LEN).is_some_and(|n| change > n) {
        return Some(format!("names change {}, newer than its newest change", hex(change)));
    }
    match entry.and_then(|e| change_of(key, e)) {
        None => Some(format!("names change {}, missing or another key's", hex(change))),
        Some(value) if value.is_some() != live => {
            Some(format!("says {}, but change {} is not", if live { "live" } else { "deleted" }, hex(change)))
        }
        Some(_) => None,
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The key a stored history entry changed and the state value it makes (`change || flag`); `None`
/// when the entry is not framed as [`history_value`] writes it.
pub fn state_of_history<'a>(change: &ChangeId, entry: &'a [u8]) -> Option<(&'a [u8], StateValue)> {
    history_change(entry).map(|(key, value)| {
        let mut state = [0u8; STATE_HEADER_LEN];
        state[..CHANGE_ID_LEN].copy_from_slice(change);
        state[CHANGE_ID_LEN] = if value.is_some() { LIVE } else { DELETED };
        (key, state)
    })
}

/// Every entry of the block at `height` (`order` from [`order`]; `before` gives a key's latest
/// change in earlier blocks), each value filled into a buffer the caller makes: `state(i, len,
/// fill)` for write `i`, the last of its key; `history(change, len, fill)` for every write. The
/// caller picks the buffers (vectors here, Python `bytes` filled in place in the bindings).
pub fn build_entries<S, H, E>(
    height: u64,
    writes: &[Write<'_>],
    order: &Order,
    txids: &[Digest],
    before: impl Fn(&[u8]) -> Option<ChangeId>,
    mut state: impl FnMut(u32, usize, &dyn Fn(&mut [u8])) -> Result<S, E>,
    mut history: impl FnMut(ChangeId, usize, &dyn Fn(&mut [u8])) -> Result<H, E>,
) -> Result<(Vec<S>, Vec<H>), E> {
    let states = order
        .state
        .iter()
        .map(|&i| {
            let w = &writes[i as usize];
            let change = write_change(height, writes, i);
            state(i, STATE_HEADER_LEN, &|b| state_value(&change, w, b))
        })
        .collect::<Result<Vec<_>, E>>()?;
    let histories = order
        .history
        .iter()
        .map(|&i| {
            let w = &writes[i as usize];
            let prev = previous_change(height, writes, order, i, &before);
            let fill = |b: &mut [u8]| history_value(&prev, w, &txids[w.tx as usize], b);
            history(write_change(height, writes, i), history_value_len(w), &fill)
        })
        .collect::<Result<Vec<_>, E>>()?;
    Ok((states, histories))
}

/// Every entry of the block at `height` as byte vectors (see [`build_entries`]).
pub fn entries(
    height: u64,
    writes: &[Write<'_>],
    txids: &[Digest],
    before: impl Fn(&[u8]) -> Option<ChangeId>,
) -> Entries {
    let fill = |len: usize, f: &dyn Fn(&mut [u8])| {
        let mut buf = vec![0u8; len];
        f(&mut buf);
        buf
    };
    let built: Result<_, std::convert::Infallible> = build_entries(
        height,
        writes,
        &order(writes),
        txids,
        before,
        |i, len, f| Ok((writes[i as usize].key.to_vec(), fill(len, f))),
        |change, len, f| Ok((change.to_vec(), fill(len, f))),
    );
    let Ok((state, history)) = built;
    Entries { state, history }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::keys::{version, VERSION_LEN};

    fn no_history(_: &[u8]) -> Option<ChangeId> {
        None
    }

    #[test]
    fn last_write_wins_deletes_leave_tombstones_and_every_write_links_to_the_one_before() {
        let ids = [[1u8; 32], [2u8; 32], [3u8; 32]];
        let writes = [
            Write { key: b"c/a", value: Some(b"1"), tx: 0 },
            Write { key: b"c/b", value: Some(b"2"), tx: 1 },
            Write { key: b"c/a", value: None, tx: 2 },
            Write { key: b"c/b", value: Some(b"3"), tx: 2 },
            Write { key: b"c/b", value: Some(b"4"), tx: 2 },
        ];
        let earlier = change_id(5, 9, 1);
        let e = entries(7, &writes, &ids, |k| (k == b"c/a").then_some(earlier));
        assert_eq!(e.state.len(), 2);
        assert_eq!(e.state[0], (b"c/a".to_vec(), [&change_id(7, 2, 2)[..], &[DELETED]].concat()));
        assert_eq!(e.state[1], (b"c/b".to_vec(), [&change_id(7, 2, 4)[..], &[LIVE]].concat()));
        assert_eq!(&e.state[1].1[..VERSION_LEN], &version(7, 2));
        // One entry per write, even two by the same transaction, in change-id order.
        let keys: Vec<Vec<u8>> = e.history.iter().map(|(k, _)| k.clone()).collect();
        let expected: Vec<ChangeId> =
            [(0, 0), (1, 1), (2, 2), (2, 3), (2, 4)].map(|(t, o)| change_id(7, t, o)).to_vec();
        assert_eq!(keys, expected.iter().map(|c| c.to_vec()).collect::<Vec<_>>());
        let prevs: Vec<&[u8]> = e.history.iter().map(|(_, v)| &v[..CHANGE_ID_LEN]).collect();
        assert_eq!(prevs, [&earlier[..], &NO_CHANGE, &change_id(7, 0, 0), &change_id(7, 1, 1), &change_id(7, 2, 3)]);
        assert_eq!(e.history[2].1[CHANGE_ID_LEN..], [&[3u8; 32][..], &[DELETED, 0, 3], b"c/a"].concat());
        assert_eq!(e.history[1].1[CHANGE_ID_LEN..], [&[2u8; 32][..], &[LIVE, 0, 3], b"c/b", b"2"].concat());
    }

    #[test]
    fn history_is_in_change_id_order_when_slices_interleave_tx_indices() {
        // Slice "a" holds txs 1 and 3, slice "b" txs 0 and 2: writes come slice by slice.
        let ids = [[0u8; 32]; 4];
        let writes = [
            Write { key: b"a/x", value: Some(b"1"), tx: 1 },
            Write { key: b"a/x", value: Some(b"3"), tx: 3 },
            Write { key: b"b/y", value: Some(b"0"), tx: 0 },
            Write { key: b"b/y", value: None, tx: 2 },
        ];
        let e = entries(2, &writes, &ids, no_history);
        let keys: Vec<Vec<u8>> = e.history.iter().map(|(k, _)| k.clone()).collect();
        let expected = [(0, 2), (1, 0), (2, 3), (3, 1)].map(|(t, o)| change_id(2, t, o).to_vec());
        assert_eq!(keys, expected);
        assert_eq!(&e.history[2].1[..CHANGE_ID_LEN], &change_id(2, 0, 2));
    }

    #[test]
    fn state_entries_are_sorted_by_key_whatever_the_write_order() {
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
        let e = entries(3, &writes, &ids, no_history);
        assert!(e.state.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(e.history.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(e.history.len(), writes.len());
        // Each key's state is its last write in block order; each write links to the previous one.
        let mut last: std::collections::BTreeMap<Vec<u8>, u32> = std::collections::BTreeMap::new();
        for (i, (w, (_, h))) in writes.iter().zip(&e.history).enumerate() {
            let prev = last.insert(w.key.to_vec(), i as u32).map_or(NO_CHANGE, |p| change_id(3, p, p));
            assert_eq!(&h[..CHANGE_ID_LEN], &prev);
        }
        assert_eq!(
            e.state.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            last.keys().cloned().collect::<Vec<_>>()
        );
        for (k, v) in &e.state {
            let i = last[k];
            assert_eq!(&v[..CHANGE_ID_LEN], &change_id(3, i, i));
            assert_eq!(v[CHANGE_ID_LEN], if writes[i as usize].value.is_some() { LIVE } else { DELETED });
        }
    }

    #[test]
    fn a_history_entry_reads_back_as_the_change_it_records() {
        let ids = [[9u8; 32]];
        let writes = [Write { key: b"c/k", value: Some(b"v1"), tx: 0 }, Write { key: b"c/k", value: None, tx: 0 }];
        let e = entries(4, &writes, &ids, no_history);
        assert_eq!(change_of(b"c/k", &e.history[0].1), Some(Some(&b"v1"[..])));
        assert_eq!(change_of(b"c/k", &e.history[1].1), Some(None));
        assert_eq!(change_of(b"c/x", &e.history[0].1), None); // another key's
        assert_eq!(change_of(b"c/kk", &e.history[0].1), None);
        assert_eq!(change_of(b"c/k", &e.history[0].1[..40]), None); // torn
        let mut bad_flag = e.history[0].1.clone();
        bad_flag[CHANGE_ID_LEN + 32] = 7;
        assert_eq!(change_of(b"c/k", &bad_flag), None);
    }

    #[test]
    fn sorted_indices_is_stable() {
        let keys: [&[u8]; 6] = [b"b", b"a", b"b", b"aaaaaaaaaaaaaaaaaaaa", b"a", b"aaaaaaaaaaaaaaaaaaa"];
        assert_eq!(sorted_indices(&keys), [1, 4, 5, 3, 0, 2]);
    }
}
