//! A block's ordered writes turned into store entries: the final state of each key (last write
//! wins, carrying its version) and one history entry per write.

use std::collections::HashMap;

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
    /// `state key -> version || value`, each key once, in first-write order.
    pub state_puts: Vec<(Vec<u8>, Vec<u8>)>,
    /// Keys whose last write in the block deleted them.
    pub state_deletes: Vec<Vec<u8>>,
    /// `history key -> tx id || flag || value`, one per write.
    pub history: Vec<(Vec<u8>, Vec<u8>)>,
}

pub fn entries(height: u64, writes: &[Write<'_>], txids: &[Digest]) -> Entries {
    let mut last: HashMap<&[u8], usize> = HashMap::with_capacity(writes.len());
    let mut order: Vec<&[u8]> = Vec::with_capacity(writes.len());
    let mut out = Entries { history: Vec::with_capacity(writes.len()), ..Entries::default() };
    for (i, w) in writes.iter().enumerate() {
        if last.insert(w.key, i).is_none() {
            order.push(w.key);
        }
        let mut value = Vec::with_capacity(32 + 1 + w.value.map_or(0, <[u8]>::len));
        value.extend_from_slice(&txids[w.tx as usize]);
        match w.value {
            Some(v) => {
                value.push(HISTORY_PUT);
                value.extend_from_slice(v);
            }
            None => value.push(HISTORY_DELETE),
        }
        out.history.push((history_key(w.key, height, w.tx), value));
    }
    for key in order {
        let w = &writes[last[key]];
        match w.value {
            Some(v) => {
                let mut stored = Vec::with_capacity(VERSION_LEN + v.len());
                stored.extend_from_slice(&version(height, w.tx));
                stored.extend_from_slice(v);
                out.state_puts.push((key.to_vec(), stored));
            }
            None => out.state_deletes.push(key.to_vec()),
        }
    }
    out
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
        assert_eq!(e.history[2].1, [&[3u8; 32][..], &[HISTORY_DELETE]].concat());
    }
}
