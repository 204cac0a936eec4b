//! The ledger's commit-path helpers: whole blocks in, store entries out; no per-transaction Python.

use std::collections::HashMap;

use ledgercore_native::codec::check_name;
use ledgercore_native::ledger::keys::CHANGE_ID_LEN;
use ledgercore_native::ledger::writes::{StateValue, STATE_HEADER_LEN};
use ledgercore_native::ledger::{commitment, keys, writes};
use ledgercore_native::{Digest, HashAlgo};
use numpy::PyReadonlyArray1;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::{malformed, OrRaise};
use crate::key_values::KeyValues;
use crate::rows::{PairsArg, Rows, Seq};
use crate::state_overlay::StateOverlay;

/// A block's writes as three columns: state keys, values (`None` deletes) and writing tx index.
struct WriteColumns<'py> {
    keys: Rows<'py>,
    values: Vec<Option<Bound<'py, PyBytes>>>,
    txs: PyReadonlyArray1<'py, u32>,
}

impl<'py> WriteColumns<'py> {
    fn extract(keys: &Bound<'py, PyAny>, values: &Bound<'py, PyAny>, txs: &Bound<'py, PyAny>) -> PyResult<Self> {
        let values = values
            .try_iter()?
            .enumerate()
            .map(|(i, v)| {
                let v = v?;
                if v.is_none() {
                    return Ok(None);
                }
                v.cast_into::<PyBytes>().map(Some).map_err(|e| {
                    let type_name = e.into_inner().get_type().name().map(|n| n.to_string()).unwrap_or_default();
                    malformed("writes", format!("value {i} is {type_name}, not bytes or None"))
                })
            })
            .collect::<PyResult<_>>()?;
        let cols = Self { keys: Rows::extract(keys, "keys")?, values, txs: txs.extract()? };
        let (k, v, t) = (cols.keys.slices().len(), cols.values.len(), cols.txs.as_slice()?.len());
        if k != v || k != t {
            return Err(malformed("writes", format!("{k} keys, {v} values, {t} tx indices")));
        }
        Ok(cols)
    }

    fn writes(&self) -> PyResult<Vec<writes::Write<'_>>> {
        let txs = self.txs.as_slice()?;
        let state_keys = self.keys.slices();
        let bad = |k: &&[u8]| k.is_empty() || k.len() > keys::MAX_STATE_KEY_LEN;
        if let Some((i, key)) = state_keys.iter().enumerate().find(|(_, k)| bad(k)) {
            let allowed = keys::MAX_STATE_KEY_LEN;
            return Err(malformed(
                "writes",
                format!("write {i} has a state key of {} bytes: 1..={allowed} allowed", key.len()),
            ));
        }
        Ok(state_keys
            .into_iter()
            .zip(&self.values)
            .zip(txs)
            .map(|((key, value), &tx)| writes::Write { key, value: value.as_ref().map(|v| v.as_bytes()), tx })
            .collect())
    }
}

/// Checks a contract name by the rule transactions follow (`[a-z0-9_]`, a letter first), so that
/// no name can reach into another contract's namespace.
#[pyfunction]
pub fn check_contract_name(name: &str) -> PyResult<()> {
    check_name(name.as_bytes()).map_err(|reason| malformed("contract name", reason))
}

/// Position of the first of `keys` outside `contract`'s namespace, if any: a slice's writes are
/// checked with it, so that no contract writes another's state.
#[pyfunction]
pub fn first_outside_namespace(contract: &str, keys: &Bound<'_, PyAny>) -> PyResult<Option<usize>> {
    Ok(keys::first_outside_namespace(contract, &Rows::extract(keys, "keys")?.slices()))
}

#[pyfunction]
pub fn state_key<'py>(py: Python<'py>, contract: &str, key: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    check_contract_name(contract)?;
    let full = keys::state_key(contract, key);
    if full.len() > keys::MAX_STATE_KEY_LEN {
        return Err(malformed("state key", format!("{} bytes exceeds {}", full.len(), keys::MAX_STATE_KEY_LEN)));
    }
    Ok(PyBytes::new(py, &full))
}

/// Stages the state entries of the block at `height` in `overlay` (for the write in progress:
/// the last write of each key) and returns its history entries, for LMDB `putmulti` in change-id
/// order (appended after every earlier block's). `current` holds the stored state
/// entries, as `(state key, value)`, of those written keys that exist: it links each key's first
/// write in the block to the key's latest earlier change. The state entries never become Python
/// objects: they go from here straight into the overlay.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn stage_block_entries<'py>(
    py: Python<'py>,
    overlay: &Bound<'py, StateOverlay>,
    height: u64,
    keys: &Bound<'py, PyAny>,
    values: &Bound<'py, PyAny>,
    txs: &Bound<'py, PyAny>,
    txids: &Bound<'py, PyAny>,
    current: PairsArg<'py>,
) -> PyResult<KeyValues> {
    let cols = WriteColumns::extract(keys, values, txs)?;
    let writes = cols.writes()?;
    let ids = Rows::extract(txids, "txids")?;
    let ids: Vec<Digest> = ids
        .slices()
        .into_iter()
        .map(|id| id.try_into().map_err(|_| malformed("txids", "each must be 32 bytes")))
        .collect::<PyResult<_>>()?;
    if let Some(w) = writes.iter().find(|w| w.tx as usize >= ids.len()) {
        return Err(malformed("writes", format!("tx index {} but the block has {} transactions", w.tx, ids.len())));
    }
    let before: HashMap<&[u8], writes::ChangeId> = current
        .0
        .iter()
        .map(|(k, v)| match writes::stored_change(v.as_bytes()) {
            Some(change) => Ok((k.as_bytes(), change)),
            None => Err(malformed("current state", format!("{} bytes stored for a key", v.as_bytes().len()))),
        })
        .collect::<PyResult<_>>()?;
    let lookup = |key: &[u8]| before.get(key).copied();
    let mut history = KeyValues::with_capacity(
        writes.len(),
        writes.iter().map(|w| CHANGE_ID_LEN + writes::history_value_len(w)).sum(),
    );
    let built: Result<_, std::convert::Infallible> = py.detach(|| {
        writes::build_entries(
            height,
            &writes,
            &writes::order(&writes),
            &ids,
            lookup,
            |i, _, fill| {
                let mut value: StateValue = [0; STATE_HEADER_LEN];
                fill(&mut value);
                Ok((writes[i as usize].key, value))
            },
            |change, len, fill| {
                history.push_with(&change, len, fill);
                Ok(())
            },
        )
    });
    let Ok((state, _)) = built;
    overlay.try_borrow_mut()?.stage_all(state)?;
    Ok(history)
}

#[pyfunction]
pub fn state_root<'py>(
    py: Python<'py>,
    algo: &str,
    prev_root: &[u8],
    keys: &Bound<'py, PyAny>,
    values: &Bound<'py, PyAny>,
    txs: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let algo = HashAlgo::from_name(algo).or_raise()?;
    let prev: Digest = prev_root.try_into().map_err(|_| malformed("previous state root", "must be 32 bytes"))?;
    let cols = WriteColumns::extract(keys, values, txs)?;
    let writes = cols.writes()?;
    let root = py.detach(|| commitment::state_root(algo, &prev, &writes));
    Ok(PyBytes::new(py, &root))
}

/// The distinct keys in increasing byte order (the same `bytes` objects where `bytes` were given):
/// the order in which a B-tree store looks up a batch of keys fastest.
#[pyfunction]
pub fn sorted_keys<'py>(py: Python<'py>, keys: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    let rows = Rows::extract(keys, "keys")?;
    let slices = rows.slices();
    let order = py.detach(|| writes::sorted_indices(&slices));
    let mut out: Vec<Bound<'py, PyBytes>> = Vec::with_capacity(order.len());
    let mut last: Option<&[u8]> = None;
    for i in order {
        let key = slices[i as usize];
        if last != Some(key) {
            out.push(rows.object(py, i as usize));
            last = Some(key);
        }
    }
    Ok(out)
}

/// `(values, bad)`: what each stored history entry says its key became (`bytes`, or None for a
/// delete), in one call for a batch of reads. `bad` is the index of the first entry that is
/// missing (None) or not a change of its key, -1 when there is none; the values stop before it.
#[pyfunction]
pub fn history_values<'py>(
    py: Python<'py>,
    keys: &Bound<'py, PyAny>,
    entries: Seq<Option<Bound<'py, PyBytes>>>,
) -> PyResult<(Vec<Option<Bound<'py, PyBytes>>>, i64)> {
    let entries = entries.0;
    let rows = Rows::extract(keys, "keys")?;
    let keys = rows.slices();
    if keys.len() != entries.len() {
        return Err(malformed("entries", "must have one entry per key"));
    }
    let mut values = Vec::with_capacity(keys.len());
    for (i, (key, entry)) in keys.iter().zip(&entries).enumerate() {
        match entry.as_ref().and_then(|e| writes::change_of(key, e.as_bytes())) {
            Some(change) => values.push(change.map(|v| PyBytes::new(py, v))),
            None => return Ok((values, i as i64)),
        }
    }
    Ok((values, -1))
}

/// `(index, fault)` of the first of the `state` table's entries (`stored`, of `keys`) that newer
/// unfolded changes (`newer`) replace and that is not a sound older entry of its key, given the
/// history entries they name (None: missing); None when all are sound.
#[pyfunction]
pub fn replaced_entry_fault<'py>(
    keys: &Bound<'py, PyAny>,
    stored: Seq<Bound<'py, PyBytes>>,
    newer: Seq<Bound<'py, PyBytes>>,
    entries: Seq<Option<Bound<'py, PyBytes>>>,
) -> PyResult<Option<(usize, String)>> {
    let (stored, newer, entries) = (stored.0, newer.0, entries.0);
    let rows = Rows::extract(keys, "keys")?;
    let keys = rows.slices();
    if [stored.len(), newer.len(), entries.len()].iter().any(|&n| n != keys.len()) {
        return Err(malformed("replaced entries", "need one stored entry, newer entry and history entry per key"));
    }
    Ok(keys.iter().enumerate().find_map(|(i, key)| {
        let entry = entries[i].as_ref().map(|e| e.as_bytes());
        writes::replaced_entry_fault(key, stored[i].as_bytes(), newer[i].as_bytes(), entry).map(|f| (i, f))
    }))
}
