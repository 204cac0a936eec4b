//! A run of Raft log entries in its one byte form (docs/FORMAT.md section 7), shared by the
//! wire codec (MsgApp and MsgProp carry it) and the durable log (each appended batch is one record):
//!
//! ```text
//! u32 count | (u64 term | u64 index | u8 type | u32 len | data[len]) * count      (big-endian)
//! ```
//!
//! Encoding and decoding a whole run in one call is what keeps replication off a per-entry
//! interpreter loop. Only the shape is checked here; order (contiguous indexes, terms that never
//! decrease) is the caller's rule, since a proposal's entries carry neither.

use crate::error::{Error, Result};

/// Bytes before an entry's data: term, index, type, data length.
pub const ENTRY_HEAD: usize = 8 + 8 + 1 + 4;
/// Largest entry type (0 normal, 1 configuration change).
pub const MAX_ENTRY_TYPE: u8 = 1;
/// Largest data of one entry, as for every bytes field of the wire codec.
pub const MAX_DATA: usize = 1 << 30;

/// One entry, borrowing its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef<'a> {
    pub term: u64,
    pub index: u64,
    pub kind: u8,
    pub data: &'a [u8],
}

/// The length of the encoding of `entries`.
pub fn encoded_len(entries: &[EntryRef<'_>]) -> usize {
    4 + entries.iter().map(|e| ENTRY_HEAD + e.data.len()).sum::<usize>()
}

/// Writes the encoding of `entries` into `out`, which is exactly [`encoded_len`] long (the caller
/// allocates it, e.g. straight inside a Python bytes object). Checks everything before writing.
pub fn encode_to(out: &mut [u8], entries: &[EntryRef<'_>]) -> Result<()> {
    assert_eq!(out.len(), encoded_len(entries), "output sized by encoded_len");
    let count = u32::try_from(entries.len())
        .map_err(|_| encode_err("entries", format!("{} entries exceed 2**32 - 1", entries.len())))?;
    for (i, e) in entries.iter().enumerate() {
        if e.kind > MAX_ENTRY_TYPE {
            return Err(encode_err(format!("entries[{i}].type"), format!("{} is not an entry type", e.kind)));
        }
        if e.data.len() > MAX_DATA {
            return Err(encode_err(format!("entries[{i}].data"), format!("{} bytes exceeds {MAX_DATA}", e.data.len())));
        }
    }
    out[..4].copy_from_slice(&count.to_be_bytes());
    let mut pos = 4;
    for e in entries {
        let head = &mut out[pos..pos + ENTRY_HEAD];
        head[..8].copy_from_slice(&e.term.to_be_bytes());
        head[8..16].copy_from_slice(&e.index.to_be_bytes());
        head[16] = e.kind;
        head[17..].copy_from_slice(&(e.data.len() as u32).to_be_bytes());
        pos += ENTRY_HEAD;
        out[pos..pos + e.data.len()].copy_from_slice(e.data);
        pos += e.data.len();
    }
    Ok(())
}

/// The encoding of `entries`.
pub fn encode(entries: &[EntryRef<'_>]) -> Result<Vec<u8>> {
    let mut out = vec![0; encoded_len(entries)];
    encode_to(&mut out, entries)?;
    Ok(out)
}

/// Decodes the run that starts at `buf[pos..]`; returns its entries and the offset just after it
/// (bytes may follow: the caller decides whether they are allowed). Errors give absolute offsets.
pub fn decode(buf: &[u8], pos: usize) -> Result<(Vec<EntryRef<'_>>, usize)> {
    let mut pos = pos;
    let count = read_u32(buf, pos).ok_or_else(|| decode_err(pos.min(buf.len()), "truncated entry count".into()))?;
    pos += 4;
    let count = count as usize;
    // Every entry takes at least its head: refuse a hostile count before allocating for it.
    if count.saturating_mul(ENTRY_HEAD) > buf.len() - pos {
        return Err(decode_err(pos, format!("entry count {count} exceeds the bytes left")));
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        if buf.len() - pos < ENTRY_HEAD {
            return Err(decode_err(pos, format!("truncated entry {i}")));
        }
        let term = read_u64(buf, pos).expect("length checked");
        let index = read_u64(buf, pos + 8).expect("length checked");
        let kind = buf[pos + 16];
        let n = read_u32(buf, pos + 17).expect("length checked") as usize;
        pos += ENTRY_HEAD;
        if kind > MAX_ENTRY_TYPE {
            return Err(decode_err(pos, format!("entry {i} has unknown type {kind}")));
        }
        if n > buf.len() - pos {
            return Err(decode_err(pos, format!("truncated entry {i} data ({n} bytes announced)")));
        }
        out.push(EntryRef { term, index, kind, data: &buf[pos..pos + n] });
        pos += n;
    }
    Ok((out, pos))
}

/// Checks that `entries` may follow the entry (`log_term`, `index`) in an append at `term`: indexes
/// contiguous from `index + 1`, terms never decreasing, from `log_term` up to `term`.
pub fn check_follows(entries: &[EntryRef<'_>], index: u64, log_term: u64, term: u64) -> Result<()> {
    match first_out_of_order(entries, index, log_term, term) {
        Some(i) => Err(Error::Decode { what: "raft entries", index: None, reason: format!("entry {i} out of order") }),
        None => Ok(()),
    }
}

/// The position of the first of `entries` that may not follow the one before it (the entry
/// (`log_term`, `index`) for the first) in an append at `term`, as [`check_follows`] judges.
pub fn first_out_of_order(entries: &[EntryRef<'_>], index: u64, log_term: u64, term: u64) -> Option<usize> {
    let mut prev = log_term;
    for (i, e) in entries.iter().enumerate() {
        if Some(e.index) != index.checked_add(1 + i as u64) || e.term < prev || e.term > term {
            return Some(i);
        }
        prev = e.term;
    }
    None
}

fn read_u32(buf: &[u8], pos: usize) -> Option<u32> {
    buf.get(pos..pos.checked_add(4)?).map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
}

fn read_u64(buf: &[u8], pos: usize) -> Option<u64> {
    buf.get(pos..pos.checked_add(8)?).map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
}

fn decode_err(pos: usize, reason: String) -> Error {
    Error::Decode { what: "raft entries", index: None, reason: format!("{reason} at byte {pos}") }
}

fn encode_err(what: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Encode { what: what.into(), reason: reason.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<EntryRef<'static>> {
        vec![
            EntryRef { term: 1, index: 5, kind: 0, data: b"abc" },
            EntryRef { term: 2, index: 6, kind: 1, data: b"" },
            EntryRef { term: u64::MAX, index: 7, kind: 0, data: &[0xff; 300] },
        ]
    }

    #[test]
    fn round_trips_and_reports_where_it_ends() {
        let ents = sample();
        let mut buf = b"xy".to_vec();
        buf.extend(encode(&ents).unwrap());
        buf.extend(b"tail");
        let (got, end) = decode(&buf, 2).unwrap();
        assert_eq!(got, ents);
        assert_eq!(&buf[end..], b"tail");
    }

    #[test]
    fn layout_is_the_documented_one() {
        let enc = encode(&[EntryRef { term: 3, index: 9, kind: 1, data: b"z" }]).unwrap();
        let mut want = vec![0, 0, 0, 1];
        want.extend(3u64.to_be_bytes());
        want.extend(9u64.to_be_bytes());
        want.extend([1, 0, 0, 0, 1, b'z']);
        assert_eq!(enc, want);
        assert_eq!(encode(&[]).unwrap(), vec![0, 0, 0, 0]);
    }

    #[test]
    fn every_truncation_is_refused() {
        let enc = encode(&sample()).unwrap();
        for cut in 0..enc.len() {
            assert!(matches!(decode(&enc[..cut], 0), Err(Error::Decode { .. })), "cut {cut}");
        }
    }

    #[test]
    fn bad_type_and_hostile_count_are_refused() {
        let mut enc = encode(&sample()).unwrap();
        enc[4 + 16] = 2;
        let err = decode(&enc, 0).unwrap_err().to_string();
        assert!(err.contains("entry 0 has unknown type 2 at byte 25"), "{err}");
        let err = decode(&[0xff, 0xff, 0xff, 0xff], 0).unwrap_err().to_string();
        assert!(err.contains("exceeds the bytes left"), "{err}");
    }

    #[test]
    fn order_is_checked_against_the_previous_entry() {
        let ents = sample();
        assert!(check_follows(&ents, 4, 1, u64::MAX).is_ok());
        assert!(check_follows(&ents, 3, 1, u64::MAX).is_err()); // not contiguous
        assert!(check_follows(&ents, 4, 2, u64::MAX).is_err()); // term below log_term
        assert!(check_follows(&ents, 4, 1, 5).is_err()); // term above the message's
        assert!(check_follows(&ents[..1], u64::MAX, 0, 9).is_err()); // index overflow
    }

    #[test]
    fn encode_refuses_an_unknown_type() {
        let err = encode(&[EntryRef { term: 1, index: 1, kind: 7, data: b"" }]).unwrap_err();
        assert_eq!(err.to_string(), "entries[0].type: 7 is not an entry type");
    }
}
