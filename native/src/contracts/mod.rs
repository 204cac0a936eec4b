//! Built-in contracts as native kernels, so a block of them costs no Python per transaction.
//!
//! Each built-in touches one state key per call. A slice runs in two passes around one bulk store
//! read: [`plan`] parses every call, names its key and groups the calls by key (one sort, which
//! also gives the store read its keys in order); [`apply`] then decides each call in block order
//! against the key's current value and the slice's earlier writes.
//!
//! Both run on the calling thread. A block's plan is a few milliseconds of work, done while the
//! block's signature check holds every core: handed to rayon's workers it waited for them to be
//! scheduled beside the check's threads, and their spinning once done took CPU from the check
//! (at 10M keys of state a block took ~10 ms more CPU and wall time; bench/RESULTS.md).

mod args;
pub mod cert;
pub mod evidence;

use crate::codec::value::CanonicalMap;

/// One transaction of the slice, as the kernel sees it.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// Position in the block.
    pub index: u32,
    pub sender: &'a [u8],
    pub method: &'a str,
    pub args: CanonicalMap<'a>,
}

/// A built-in contract whose every call reads and writes the single key it names.
pub trait SingleKeyContract: Sync {
    const NAME: &'static str;
    type Op: Send;
    /// Decodes and validates a call: appends the (UTF-8) key it touches within the contract's
    /// namespace to `key`, and says what to do.
    fn parse(&self, call: &Call<'_>, key: &mut Vec<u8>) -> Result<Self::Op, String>;
    /// The key's new value given its current one, or why the call fails. `key` is the call's key
    /// within the namespace.
    fn apply(&self, call: &Call<'_>, key: &str, op: Self::Op, current: Option<&[u8]>) -> Result<Vec<u8>, String>;
}

const NO_GROUP: u32 = u32::MAX;

/// Parsed calls of a slice: each the state key it touches and its operation, or its error.
pub struct Plan<Op> {
    prefix_len: usize,
    /// Per call: the full state key (`contract "/" key`; empty when parsing failed).
    keys: Vec<Vec<u8>>,
    ops: Vec<Result<Op, String>>,
    /// Per call: the index of its key among `distinct` (`NO_GROUP` when parsing failed).
    group: Vec<u32>,
    /// One call per distinct key, ordered by key bytes.
    distinct: Vec<u32>,
}

impl<Op> Plan<Op> {
    /// Distinct state keys to read before [`apply`], in increasing byte order (which is also the
    /// order a B-tree store reads fastest).
    pub fn keys(&self) -> Vec<&[u8]> {
        self.distinct.iter().map(|&j| self.keys[j as usize].as_slice()).collect()
    }

    /// The committed values of [`Plan::keys`], aligned with them, from the `(key, value)` pairs
    /// of those that exist (in any order; pairs of other keys are ignored).
    pub fn current<'v>(&self, found: impl IntoIterator<Item = (&'v [u8], &'v [u8])>) -> Vec<Option<&'v [u8]>> {
        let mut current = vec![None; self.distinct.len()];
        for (key, value) in found {
            if let Ok(g) = self.distinct.binary_search_by(|&j| self.keys[j as usize].as_slice().cmp(key)) {
                current[g] = Some(value);
            }
        }
        current
    }
}

/// The first 16 bytes of `key`, zero-padded, as a big-endian number: where two heads differ, they
/// order as the keys do.
fn head(key: &[u8]) -> u128 {
    let mut buf = [0u8; 16];
    let n = key.len().min(16);
    buf[..n].copy_from_slice(&key[..n]);
    u128::from_be_bytes(buf)
}

pub fn plan<C: SingleKeyContract>(contract: &C, calls: &[Call<'_>]) -> Plan<C::Op> {
    let prefix_len = C::NAME.len() + 1;
    let parse = |call: &Call<'_>| {
        let mut key = Vec::with_capacity(prefix_len + 40);
        key.extend_from_slice(C::NAME.as_bytes());
        key.push(b'/');
        let op = contract.parse(call, &mut key);
        if op.is_err() {
            key = Vec::new();
        }
        (key, op)
    };
    let (keys, ops): (Vec<_>, Vec<_>) = calls.iter().map(parse).unzip();
    // Sort by the 16 key bytes after the namespace first (held inline, so most comparisons touch
    // no key), then by the whole key.
    let mut order: Vec<(u128, u32)> =
        (0..calls.len()).filter(|&j| ops[j].is_ok()).map(|j| (head(&keys[j][prefix_len..]), j as u32)).collect();
    let by_key =
        |a: &(u128, u32), b: &(u128, u32)| a.0.cmp(&b.0).then_with(|| keys[a.1 as usize].cmp(&keys[b.1 as usize]));
    order.sort_unstable_by(by_key);
    let mut group = vec![NO_GROUP; calls.len()];
    let mut distinct: Vec<u32> = Vec::new();
    for &(_, j) in &order {
        let same = distinct.last().is_some_and(|&d| keys[d as usize] == keys[j as usize]);
        if !same {
            distinct.push(j);
        }
        group[j as usize] = (distinct.len() - 1) as u32;
    }
    Plan { prefix_len, keys, ops, group, distinct }
}

/// What a slice did, aligned with its calls; writes are `(state key, value, block index)`.
#[derive(Debug, Default)]
pub struct Outcome {
    pub ok: Vec<bool>,
    pub errors: Vec<(u32, String)>,
    pub writes: Vec<(Vec<u8>, Vec<u8>, u32)>,
}

/// Decides every call in block order. `current` holds the committed values of the plan's keys,
/// aligned with [`Plan::keys`] (see [`Plan::current`]).
pub fn apply<C: SingleKeyContract>(
    contract: &C,
    calls: &[Call<'_>],
    plan: Plan<C::Op>,
    current: &[Option<&[u8]>],
) -> Outcome {
    assert_eq!(current.len(), plan.distinct.len(), "one current value per distinct key");
    let Plan { prefix_len, mut keys, ops, group, .. } = plan;
    let mut out = Outcome { ok: vec![false; calls.len()], ..Outcome::default() };
    // Per distinct key: its latest write in this slice, as (call, value index in `values`).
    let mut latest: Vec<u32> = vec![NO_GROUP; current.len()];
    let mut values: Vec<(u32, Vec<u8>, u32)> = Vec::new();
    for (j, (call, op)) in calls.iter().zip(ops).enumerate() {
        let op = match op {
            Ok(op) => op,
            Err(reason) => {
                out.errors.push((call.index, reason));
                continue;
            }
        };
        let g = group[j] as usize;
        let now = match latest[g] {
            NO_GROUP => current[g],
            w => Some(values[w as usize].1.as_slice()),
        };
        let local = std::str::from_utf8(&keys[j][prefix_len..]).expect("built-in keys are UTF-8");
        match contract.apply(call, local, op, now) {
            Ok(value) => {
                out.ok[j] = true;
                latest[g] = values.len() as u32;
                values.push((j as u32, value, call.index));
            }
            Err(reason) => out.errors.push((call.index, reason)),
        }
    }
    out.writes =
        values.into_iter().map(|(j, value, index)| (std::mem::take(&mut keys[j as usize]), value, index)).collect();
    out
}

#[cfg(test)]
mod tests;
