//! Each sender's used nonces, kept as runs of consecutive nonces.
//!
//! A sender may use any u64 nonce once. The store keeps, per sender, the maximal runs
//! `[start, end]` of nonces it has used: `sender || u64 end -> u64 start`, except the sender's
//! highest run, which sits under `sender || HEAD -> u64 start || u64 end`. A sender that counts
//! its nonces up (as clients do) has one row, which each block rewrites in place: a block touches
//! one small row per sender instead of inserting one row per transaction at each sender's end of
//! the table, and the usual check is one exact lookup of the head row per sender. Only a nonce
//! below its sender's head run needs older runs read: the one or two it can be in or join.

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt, HashSet};

use crate::error::{Error, Result};

/// The key suffix of a sender's highest run (no run ends there: it would be the highest).
pub const HEAD: [u8; 8] = [0xff; 8];

fn key(sender: &[u8], suffix: [u8; 8]) -> Vec<u8> {
    [sender, &suffix[..]].concat()
}

fn be(bytes: &[u8]) -> u64 {
    u64::from_be_bytes(bytes.try_into().expect("8 bytes"))
}

/// The head keys of the distinct senders, sorted.
pub fn head_keys<S: AsRef<[u8]>>(senders: &[S]) -> Vec<Vec<u8>> {
    let distinct: HashSet<&[u8]> = senders.iter().map(AsRef::as_ref).collect();
    let mut keys: Vec<Vec<u8>> = distinct.into_iter().map(|s| key(s, HEAD)).collect();
    keys.sort_unstable();
    keys
}

/// Why a key of `len` bytes is not `sender || u64 nonce` for senders of `sender_len` bytes, or None
/// (no sum that could wrap: `sender_len` may come from the caller).
fn key_len_fault(len: usize, sender_len: usize) -> Option<String> {
    (len.checked_sub(8) != Some(sender_len)).then(|| format!("key of {len} bytes, expected {sender_len} + 8"))
}

/// Stored rows `(key, value)` of senders `sender_len` bytes long, as runs by sender: start -> end.
fn runs_of<'a>(sender_len: usize, rows: &[(&'a [u8], &[u8])]) -> Result<HashMap<&'a [u8], BTreeMap<u64, u64>>> {
    let mut runs: HashMap<&[u8], BTreeMap<u64, u64>> = HashMap::new();
    for (k, v) in rows {
        let bad = |reason: String| Error::Malformed { what: "nonce run", reason };
        if let Some(reason) = key_len_fault(k.len(), sender_len) {
            return Err(bad(reason));
        }
        let (sender, suffix) = k.split_at(sender_len);
        let (start, end) = match (suffix == HEAD, v.len()) {
            (true, 16) => (be(&v[..8]), be(&v[8..])),
            (false, 8) => (be(v), be(suffix)),
            (_, n) => return Err(bad(format!("value of {n} bytes under key {k:02x?}"))),
        };
        if start > end {
            return Err(bad(format!("run {start}..{end} of {sender:02x?} ends before it starts")));
        }
        runs.entry(sender).or_default().insert(start, end);
    }
    Ok(runs)
}

/// The lookups a block needs beyond the head rows (`heads`: the stored head rows of its senders),
/// sorted and distinct: `sender || (n - 1)` for each nonce `n` below the start of its sender's
/// head run. Each reads at most two rows from there, not past the sender's head row: the first
/// run ending at or after `n - 1` (it holds `n`, ends just below it, or is the first above it),
/// and when that ends at `n - 1` the next (which may start at `n + 1`). These are the only stored
/// runs that `n` can be in or join, so a block costs lookups in proportion to its own
/// transactions, however many runs a sender's gaps have left.
pub fn lookups<S: AsRef<[u8]>>(senders: &[S], nonces: &[u64], heads: &[(&[u8], &[u8])]) -> Result<Vec<Vec<u8>>> {
    let Some(len) = senders.first().map(|s| s.as_ref().len()) else { return Ok(Vec::new()) };
    let head_start: HashMap<&[u8], u64> =
        runs_of(len, heads)?.into_iter().filter_map(|(s, runs)| runs.keys().next_back().map(|&st| (s, st))).collect();
    let mut keys: Vec<Vec<u8>> = senders
        .iter()
        .zip(nonces)
        .filter(|(s, &n)| head_start.get(s.as_ref()).is_some_and(|&st| n < st))
        .map(|(s, &n)| key(s.as_ref(), n.saturating_sub(1).to_be_bytes()))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    Ok(keys)
}

/// The rows to put and the keys to delete so that the store holds the runs of the senders the
/// block touched (those `lookups` read, merged with the block's nonces).
#[derive(Debug)]
pub struct NonceWrites {
    pub fresh: Vec<bool>,
    pub puts: Vec<(Vec<u8>, Vec<u8>)>,
    pub deletes: Vec<Vec<u8>>,
}

/// Which of the block's transactions use a nonce their sender has not used (before, or earlier in
/// the block), and the writes that record them. `rows` are the stored head rows of the block's
/// senders and the rows their `lookups` read.
pub fn update<S: AsRef<[u8]>>(senders: &[S], nonces: &[u64], rows: &[(&[u8], &[u8])]) -> Result<NonceWrites> {
    let Some(len) = senders.first().map(|s| s.as_ref().len()) else {
        return Ok(NonceWrites { fresh: Vec::new(), puts: Vec::new(), deletes: Vec::new() });
    };
    let mut runs = runs_of(len, rows)?;
    let mut fresh = Vec::with_capacity(nonces.len());
    for (s, &n) in senders.iter().zip(nonces) {
        let sender = runs.entry(s.as_ref()).or_default();
        let below = sender.range(..=n).next_back().map(|(&st, &en)| (st, en));
        if below.is_some_and(|(_, en)| en >= n) {
            fresh.push(false);
            continue;
        }
        fresh.push(true);
        let (mut start, mut end) = (n, n);
        if let Some((st, en)) = below {
            if en.checked_add(1) == Some(n) {
                start = st;
            }
        }
        if let Some(next) = n.checked_add(1).and_then(|up| sender.remove(&up)) {
            end = next;
        }
        sender.insert(start, end);
    }
    let before: HashMap<&[u8], &[u8]> = rows.iter().copied().collect();
    let mut after: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    for (sender, runs) in &runs {
        let highest = runs.keys().next_back().copied();
        for (&start, &end) in runs {
            if Some(start) == highest {
                after.insert(key(sender, HEAD), [start.to_be_bytes(), end.to_be_bytes()].concat());
            } else {
                after.insert(key(sender, end.to_be_bytes()), start.to_be_bytes().to_vec());
            }
        }
    }
    let mut deletes: Vec<Vec<u8>> = before.keys().filter(|k| !after.contains_key(**k)).map(|k| k.to_vec()).collect();
    let mut puts: Vec<(Vec<u8>, Vec<u8>)> =
        after.into_iter().filter(|(k, v)| before.get(&k[..]).is_none_or(|old| old != v)).collect();
    puts.sort_unstable();
    deletes.sort_unstable();
    Ok(NonceWrites { fresh, puts, deletes })
}

/// Turns the rows of the layout before runs (`sender || u64 nonce`, one per used nonce, in key
/// order) into runs, a batch at a time: `open` is the run still growing at the end of the last
/// batch (sender, start, end), carried into the next; `last` says this is the final batch.
pub fn runs_of_used(
    keys: &[&[u8]],
    sender_len: usize,
    open: &mut Option<(Vec<u8>, u64, u64)>,
    last: bool,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    let close = |out: &mut Vec<(Vec<u8>, Vec<u8>)>, (s, start, end): (Vec<u8>, u64, u64), head: bool| {
        if head {
            out.push((key(&s, HEAD), [start.to_be_bytes(), end.to_be_bytes()].concat()));
        } else {
            out.push((key(&s, end.to_be_bytes()), start.to_be_bytes().to_vec()));
        }
    };
    for k in keys {
        if let Some(reason) = key_len_fault(k.len(), sender_len) {
            return Err(Error::Malformed { what: "nonce entry", reason });
        }
        let (sender, n) = (&k[..sender_len], be(&k[sender_len..]));
        match open.take() {
            Some((s, start, end)) if s == sender && end.checked_add(1) == Some(n) => *open = Some((s, start, n)),
            Some(run) => {
                let head = run.0 != sender;
                close(&mut out, run, head);
                *open = Some((sender.to_vec(), n, n));
            }
            None => *open = Some((sender.to_vec(), n, n)),
        }
    }
    if last {
        if let Some(run) = open.take() {
            close(&mut out, run, true);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &[u8] = b"alice___";
    const B: &[u8] = b"bob_____";

    fn head(s: &[u8], start: u64, end: u64) -> (Vec<u8>, Vec<u8>) {
        (key(s, HEAD), [start.to_be_bytes(), end.to_be_bytes()].concat())
    }

    fn run(s: &[u8], start: u64, end: u64) -> (Vec<u8>, Vec<u8>) {
        (key(s, end.to_be_bytes()), start.to_be_bytes().to_vec())
    }

    fn borrowed(rows: &[(Vec<u8>, Vec<u8>)]) -> Vec<(&[u8], &[u8])> {
        rows.iter().map(|(k, v)| (&k[..], &v[..])).collect()
    }

    #[test]
    fn counting_up_rewrites_one_head_row_per_sender() {
        let w = update(&[A, B, A, A], &[1, 7, 2, 3], &[]).unwrap();
        assert_eq!(w.fresh, [true; 4]);
        let mut expected = vec![head(A, 1, 3), head(B, 7, 7)];
        expected.sort();
        assert_eq!(w.puts, expected);
        let stored = borrowed(&w.puts);
        assert!(lookups(&[A, B], &[4, 8], &stored).unwrap().is_empty());
        let w = update(&[A, B, A], &[4, 8, 2], &stored).unwrap();
        assert_eq!(w.fresh, [true, true, false]);
        let mut expected = vec![head(A, 1, 4), head(B, 7, 8)];
        expected.sort();
        assert_eq!((w.puts, w.deletes), (expected, vec![]));
    }

    #[test]
    fn gaps_make_runs_and_filling_one_merges_them() {
        let stored = [head(A, 5, 6)];
        let w = update(&[A, A], &[9, 5], &borrowed(&stored)).unwrap();
        assert_eq!(w.fresh, [true, false]);
        assert_eq!(w.puts, vec![run(A, 5, 6), head(A, 9, 9)]);
        let stored = [run(A, 5, 6), head(A, 9, 9)];
        // 7 and 8 are below the head's start: each reads from just below it.
        let heads = [head(A, 9, 9)];
        let from = |n: u64| key(A, n.to_be_bytes());
        assert_eq!(lookups(&[A, A, A], &[8, 7, 8], &borrowed(&heads)).unwrap(), vec![from(6), from(7)]);
        let w = update(&[A, A, A], &[8, 7, 8], &borrowed(&stored)).unwrap();
        assert_eq!(w.fresh, [true, true, false]);
        assert_eq!((w.puts, w.deletes), (vec![head(A, 5, 9)], vec![key(A, 6u64.to_be_bytes())]));
    }

    #[test]
    fn a_sender_length_near_usize_max_is_a_malformed_key_not_a_wrapped_sum() {
        // sender_len + 8 wrapped to 4: a 4-byte key passed the check, then slicing it panicked.
        let err = runs_of_used(&[b"abcd"], usize::MAX - 3, &mut None, true).unwrap_err();
        assert!(err.to_string().contains(&format!("key of 4 bytes, expected {} + 8", usize::MAX - 3)), "{err}");
        assert!(runs_of(usize::MAX - 3, &[(b"abcd", b"")]).is_err());
    }

    #[test]
    fn the_ends_of_the_u64_range_are_nonces_like_any_other() {
        let w = update(&[A, A, A, A], &[u64::MAX, 0, u64::MAX, 1], &[]).unwrap();
        assert_eq!(w.fresh, [true, true, false, true]);
        assert_eq!(w.puts, vec![run(A, 0, 1), head(A, u64::MAX, u64::MAX)]);
        assert_eq!(lookups(&[A], &[0], &borrowed(&[head(A, 0, 0)])).unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(lookups(&[A], &[0], &borrowed(&[head(A, 3, 3)])).unwrap(), vec![key(A, [0; 8])]);
    }

    #[test]
    fn random_use_agrees_with_a_set_of_used_nonces() {
        let mut used: std::collections::HashSet<(u8, u64)> = Default::default();
        let mut stored: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut seed = 11u64;
        let mut next = move |m: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % m
        };
        for round in 0..1000 {
            // Wide nonces early leave many gaps (many runs per sender); later ones fill them.
            let wide = if round < 300 { 400 } else { 60 };
            let txs: Vec<(&[u8], u64)> = (0..next(12)).map(|_| ([A, B][next(2) as usize], next(wide))).collect();
            let (senders, nonces): (Vec<&[u8]>, Vec<u64>) = txs.iter().copied().unzip();
            // What the ledger reads: the head rows, then up to two rows from each lookup, short of the head.
            let heads: Vec<(Vec<u8>, Vec<u8>)> =
                head_keys(&senders).into_iter().filter_map(|k| stored.get(&k).map(|v| (k, v.clone()))).collect();
            let mut rows = heads.clone();
            for from in lookups(&senders, &nonces, &borrowed(&heads)).unwrap() {
                let sender = &from[..8];
                rows.extend(
                    stored
                        .range(from.clone()..)
                        .take_while(|(k, _)| &k[..8] == sender && k[8..] != HEAD)
                        .take(2)
                        .map(|(k, v)| (k.clone(), v.clone())),
                );
            }
            let w = update(&senders, &nonces, &borrowed(&rows)).unwrap();
            let expected: Vec<bool> = txs.iter().map(|&(s, n)| used.insert((s[0], n))).collect();
            assert_eq!(w.fresh, expected);
            for k in &w.deletes {
                stored.remove(k);
            }
            stored.extend(w.puts);
            // The stored runs are exactly the used nonces, maximal, the highest under HEAD.
            let mut from_rows: Vec<(u8, u64)> = Vec::new();
            for (k, v) in &stored {
                let (start, end) = if k[8..] == HEAD { (be(&v[..8]), be(&v[8..])) } else { (be(v), be(&k[8..])) };
                from_rows.extend((start..=end).map(|n| (k[0], n)));
            }
            let mut all: Vec<(u8, u64)> = used.iter().copied().collect();
            all.sort_unstable();
            from_rows.sort_unstable();
            assert_eq!(from_rows, all);
        }
        // Converting the one-row-per-nonce layout gives the same rows, in batches of any size.
        let mut keys: Vec<Vec<u8>> =
            used.iter().map(|&(s, n)| key(if s == A[0] { A } else { B }, n.to_be_bytes())).collect();
        keys.sort();
        for batch in [1, 3, 1000] {
            let (mut open, mut rows) = (None, Vec::new());
            let chunks: Vec<&[Vec<u8>]> = keys.chunks(batch).collect();
            for (i, chunk) in chunks.iter().enumerate() {
                let refs: Vec<&[u8]> = chunk.iter().map(|k| &k[..]).collect();
                rows.extend(runs_of_used(&refs, 8, &mut open, i + 1 == chunks.len()).unwrap());
            }
            rows.sort();
            assert_eq!(rows, stored.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>());
        }
    }

    #[test]
    fn malformed_rows_are_typed_errors() {
        let short = [(key(A, HEAD), vec![0u8; 8])];
        assert!(update(&[A], &[1], &borrowed(&short)).unwrap_err().to_string().contains("value of 8 bytes"));
        let backwards = [(key(A, HEAD), [5u64.to_be_bytes(), 4u64.to_be_bytes()].concat())];
        assert!(update(&[A], &[1], &borrowed(&backwards)).unwrap_err().to_string().contains("ends before"));
        assert!(runs_of_used(&[b"abc"], 8, &mut None, true).is_err());
    }
}
