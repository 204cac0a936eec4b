//! Each sender's used nonces as runs (`native/src/ledger/nonce_runs.rs`): a block's check and
//! writes in one call each, the store's lookups in between done in bulk by the Python store.

use ledgercore_native::ledger::nonce_runs;
use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::{malformed, OrRaise};
use crate::rows::{borrowed, Pairs, PairsArg, Rows};

type Owned = Vec<(Vec<u8>, Vec<u8>)>;

fn columns<'a>(senders: &'a Rows<'_>, nonces: &'a PyReadonlyArray1<'_, u64>) -> PyResult<(Vec<&'a [u8]>, &'a [u64])> {
    let (senders, nonces) = (senders.slices(), nonces.as_slice()?);
    if senders.len() != nonces.len() {
        return Err(malformed("nonces", format!("{} senders, {} nonces", senders.len(), nonces.len())));
    }
    Ok((senders, nonces))
}

fn to_python<'py>(py: Python<'py>, rows: Owned) -> Pairs<'py> {
    rows.iter().map(|(k, v)| (PyBytes::new(py, k), PyBytes::new(py, v))).collect()
}

/// The head-run keys of the distinct senders, sorted: what to look up first.
#[pyfunction]
pub fn nonce_heads<'py>(py: Python<'py>, senders: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    let senders = Rows::extract(senders, "senders")?;
    Ok(nonce_runs::head_keys(&senders.slices()).iter().map(|k| PyBytes::new(py, k)).collect())
}

/// Where to read stored runs from (at most two rows from each, short of the sender's head row),
/// for the nonces below their sender's head run (`heads`: the stored head rows found).
#[pyfunction]
pub fn nonce_lookups<'py>(
    py: Python<'py>,
    senders: &Bound<'py, PyAny>,
    nonces: PyReadonlyArray1<'py, u64>,
    heads: PairsArg<'py>,
) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    let senders = Rows::extract(senders, "senders")?;
    let (senders, nonces) = columns(&senders, &nonces)?;
    let keys = nonce_runs::lookups(&senders, nonces, &borrowed(&heads.0)).or_raise()?;
    Ok(keys.iter().map(|k| PyBytes::new(py, k)).collect())
}

/// `(fresh, puts, deletes)`: which transactions use a nonce their sender has not used, and the
/// rows to put and keys to delete (each sorted) that record them. `rows`: the stored head rows
/// and what the walks read.
#[pyfunction]
#[allow(clippy::type_complexity)]
pub fn nonce_update<'py>(
    py: Python<'py>,
    senders: &Bound<'py, PyAny>,
    nonces: PyReadonlyArray1<'py, u64>,
    rows: PairsArg<'py>,
) -> PyResult<(Bound<'py, PyArray1<bool>>, Pairs<'py>, Vec<Bound<'py, PyBytes>>)> {
    let senders = Rows::extract(senders, "senders")?;
    let (senders, nonces) = columns(&senders, &nonces)?;
    let w = nonce_runs::update(&senders, nonces, &borrowed(&rows.0)).or_raise()?;
    let deletes = w.deletes.iter().map(|k| PyBytes::new(py, k)).collect();
    Ok((PyArray1::from_vec(py, w.fresh), to_python(py, w.puts), deletes))
}

/// `(rows, open)`: the runs of a batch of rows of the one-row-per-nonce layout, in key order;
/// `open` (sender, start, end) is the run still growing, carried into the next batch, None after
/// the `last`.
#[pyfunction]
#[allow(clippy::type_complexity)]
pub fn nonce_runs_of_used<'py>(
    py: Python<'py>,
    keys: &Bound<'py, PyAny>,
    sender_len: usize,
    open: Option<(Bound<'py, PyBytes>, u64, u64)>,
    last: bool,
) -> PyResult<(Pairs<'py>, Option<(Bound<'py, PyBytes>, u64, u64)>)> {
    let keys = Rows::extract(keys, "keys")?;
    let mut open = open.map(|(s, a, b)| (s.as_bytes().to_vec(), a, b));
    let rows = nonce_runs::runs_of_used(&keys.slices(), sender_len, &mut open, last).or_raise()?;
    Ok((to_python(py, rows), open.map(|(s, a, b)| (PyBytes::new(py, &s), a, b))))
}
