//! State entries not yet folded into the store's `state` table
//! (`native/src/ledger/state_overlay.rs`). Every method holds the GIL: the writer's updates and
//! readers' lookups never overlap.

use ledgercore_native::ledger::state_overlay;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::errors::{malformed, OrRaise};

type Pairs<'py> = Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>;

#[pyclass(module = "ledgercore._native")]
pub struct StateOverlay {
    inner: state_overlay::StateOverlay,
}

fn pairs<'a, 'py>(py: Python<'py>, items: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, items.map(|(k, v)| (PyBytes::new(py, k), PyBytes::new(py, v))))
}

#[pymethods]
impl StateOverlay {
    #[new]
    fn new() -> Self {
        Self { inner: state_overlay::StateOverlay::new() }
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// The entry of `key` (the write in progress's first when `staged`), or None.
    #[pyo3(signature = (key, staged = false))]
    fn get<'py>(&self, py: Python<'py>, key: &[u8], staged: bool) -> Option<Bound<'py, PyBytes>> {
        self.inner.get(key, staged).map(|v| PyBytes::new(py, v))
    }

    /// `(found, missing)`: `(key, entry)` for each of `keys` that has an entry here, and the keys
    /// that have none (the same objects), for the store to look up.
    #[pyo3(signature = (keys, staged = false))]
    fn split<'py>(&self, py: Python<'py>, keys: &Bound<'py, PyList>, staged: bool) -> PyResult<Bound<'py, PyTuple>> {
        let found = PyList::empty(py);
        let missing = PyList::empty(py);
        for key in keys.iter() {
            let bytes = key.cast::<PyBytes>().map_err(|_| malformed("keys", "each must be bytes"))?;
            match self.inner.get(bytes.as_bytes(), staged) {
                Some(v) => found.append((bytes, PyBytes::new(py, v)))?,
                None => missing.append(bytes)?,
            }
        }
        PyTuple::new(py, [found.into_any(), missing.into_any()])
    }

    /// Stages `(key, entry)` pairs (entries `change id || flag`) for the write in progress.
    fn stage(&mut self, entries: Pairs<'_>) -> PyResult<()> {
        for (k, v) in &entries {
            self.inner.stage(k.as_bytes(), v.as_bytes()).or_raise()?;
        }
        Ok(())
    }

    /// Adds committed changes from stored `(change id, history entry)` pairs, in change-id order.
    fn load(&mut self, entries: Pairs<'_>) -> PyResult<()> {
        for (change, entry) in &entries {
            self.inner.load(change.as_bytes(), entry.as_bytes()).or_raise()?;
        }
        Ok(())
    }

    /// Picks the write in progress's fold, up to `n` entries next in key order after the last
    /// fold's, and returns them as `(key, entry)` pairs to write into `state`.
    fn fold<'py>(&mut self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyList>> {
        pairs(py, self.inner.fold(n).iter().map(|(k, v)| (&k[..], &v[..])))
    }

    /// The lowest height of a change neither in `state` nor folded once the write in progress
    /// commits, or None.
    fn lowest_height(&self) -> Option<u64> {
        self.inner.lowest_height()
    }

    /// The write in progress is durable: what it staged becomes visible, what it folded leaves.
    fn publish(&mut self) {
        self.inner.publish();
    }

    /// The write in progress failed: forget what it staged and folded.
    fn discard(&mut self) {
        self.inner.discard();
    }

    /// Committed `(key, entry)` pairs in key order.
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        pairs(py, self.inner.items().map(|(k, v)| (k, &v[..])))
    }
}
