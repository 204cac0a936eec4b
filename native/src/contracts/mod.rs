//! Built-in contracts as native kernels, so a block of them costs no Python per transaction.
//!
//! Each built-in touches one state key per call. A slice runs in two passes around one bulk store
//! read: [`plan`] parses every call in parallel and names its key; [`apply`] then decides each
//! call in block order against the key's current value and the slice's earlier writes.

mod args;
pub mod cert;
pub mod evidence;

use std::collections::HashMap;

use rayon::prelude::*;

use crate::ledger::keys::state_key;

/// One transaction of the slice, as the kernel sees it.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// Position in the block.
    pub index: u32,
    pub sender: &'a [u8],
    pub method: &'a str,
    pub args: &'a [u8],
}

/// A built-in contract whose every call reads and writes the single key it names.
pub trait SingleKeyContract: Sync {
    const NAME: &'static str;
    type Op: Send;
    /// Decodes and validates a call: the key (within the contract's namespace) and what to do.
    fn parse(&self, call: &Call<'_>) -> Result<(Vec<u8>, Self::Op), String>;
    /// The key's new value given its current one, or why the call fails.
    fn apply(&self, call: &Call<'_>, op: Self::Op, current: Option<&[u8]>) -> Result<Vec<u8>, String>;
}

/// Parsed calls of a slice: each the state key it touches and its operation, or its error.
pub struct Plan<Op> {
    entries: Vec<Result<(Vec<u8>, Op), String>>,
}

impl<Op> Plan<Op> {
    /// Distinct state keys to read before [`apply`], in first-use order.
    pub fn keys(&self) -> Vec<&[u8]> {
        let mut seen = std::collections::HashSet::new();
        self.entries
            .iter()
            .filter_map(|e| e.as_ref().ok())
            .map(|(k, _)| k.as_slice())
            .filter(|k| seen.insert(*k))
            .collect()
    }
}

pub fn plan<C: SingleKeyContract>(contract: &C, calls: &[Call<'_>]) -> Plan<C::Op> {
    let entries = calls
        .par_iter()
        .with_min_len(256)
        .map(|call| contract.parse(call).map(|(key, op)| (state_key(C::NAME, &key), op)))
        .collect();
    Plan { entries }
}

/// What a slice did, aligned with its calls; writes are `(state key, value, block index)`.
#[derive(Debug, Default)]
pub struct Outcome {
    pub ok: Vec<bool>,
    pub errors: Vec<(u32, String)>,
    pub writes: Vec<(Vec<u8>, Vec<u8>, u32)>,
}

/// Decides every call in block order. `current` holds the committed values of the plan's keys.
pub fn apply<C: SingleKeyContract>(
    contract: &C,
    calls: &[Call<'_>],
    plan: Plan<C::Op>,
    current: &HashMap<&[u8], &[u8]>,
) -> Outcome {
    let mut out = Outcome { ok: vec![false; calls.len()], ..Outcome::default() };
    // Index into `out.writes` of the latest write of each key in this slice.
    let mut latest: HashMap<Vec<u8>, usize> = HashMap::new();
    for (j, (call, entry)) in calls.iter().zip(plan.entries).enumerate() {
        let (key, op) = match entry {
            Ok(parsed) => parsed,
            Err(reason) => {
                out.errors.push((call.index, reason));
                continue;
            }
        };
        let now = match latest.get(&key) {
            Some(&w) => Some(out.writes[w].1.as_slice()),
            None => current.get(key.as_slice()).copied(),
        };
        match contract.apply(call, op, now) {
            Ok(value) => {
                out.ok[j] = true;
                latest.insert(key.clone(), out.writes.len());
                out.writes.push((key, value, call.index));
            }
            Err(reason) => out.errors.push((call.index, reason)),
        }
    }
    out
}

#[cfg(test)]
mod tests;
