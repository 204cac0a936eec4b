//! State entries not yet folded into the store's `state` table
//! (`native/src/ledger/state_overlay.rs`). Every method holds the GIL, so the writer's updates and
//! readers' lookups never overlap; and each borrows the overlay only while no Python object is
//! made (making one may run Python code that lets another thread in, whose borrow would fail). A
//! borrow that fails all the same (a caller's own code run inside a method, such as an argument's
//! `__index__`) raises RuntimeError, as PyO3's own borrows do, never a panic.

use ledgercore_native::ledger::state_overlay::{self, Key};
use ledgercore_native::ledger::writes::StateValue;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::errors::{malformed, OrRaise};
use crate::key_values::KeyValues;
use crate::rows::{borrowed, PairsArg};

#[pyclass(module = "ledgercore._native")]
pub struct StateOverlay {
    inner: state_overlay::StateOverlay,
}

fn pairs<'py>(py: Python<'py>, items: Vec<(Key, StateValue)>) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, items.iter().map(|(k, v)| (PyBytes::new(py, k), PyBytes::new(py, v))))
}

impl StateOverlay {
    /// Stages `(key, entry)` pairs (entries `change id || flag`) for the write in progress.
    pub fn stage_all<'a>(&mut self, entries: impl IntoIterator<Item = (&'a [u8], StateValue)>) -> PyResult<()> {
        for (key, value) in entries {
            self.inner.stage(key, &value).or_raise()?;
        }
        Ok(())
    }
}

#[pymethods]
impl StateOverlay {
    /// An empty overlay; `cursor`: the key after which its sweep goes on (None: from the first).
    #[new]
    #[pyo3(signature = (cursor = None))]
    fn new(cursor: Option<&[u8]>) -> Self {
        let inner = cursor.map_or_else(state_overlay::StateOverlay::new, state_overlay::StateOverlay::resuming);
        Self { inner }
    }

    /// The last key folded, after which the next fold starts (None: no fold yet).
    #[getter]
    fn cursor<'py>(slf: &Bound<'py, Self>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let cursor = slf.try_borrow()?.inner.cursor().map(Key::from);
        Ok(cursor.map(|k| PyBytes::new(slf.py(), &k)))
    }

    fn __len__(&mut self) -> usize {
        self.inner.settle();
        self.inner.len()
    }

    /// The entry of `key` (the write in progress's first when `staged`), or None.
    #[pyo3(signature = (key, staged = false))]
    fn get<'py>(slf: &Bound<'py, Self>, key: &[u8], staged: bool) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let found = slf.try_borrow()?.inner.get(key, staged).copied();
        Ok(found.map(|v| PyBytes::new(slf.py(), &v)))
    }

    /// `(found, missing)`: `(key, entry)` for each of `keys` that has an entry here, and the keys
    /// that have none (the same objects), for the store to look up.
    #[pyo3(signature = (keys, staged = false))]
    fn split<'py>(slf: &Bound<'py, Self>, keys: &Bound<'py, PyList>, staged: bool) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let keys = keys
            .iter()
            .map(|k| k.cast_into::<PyBytes>().map_err(|_| malformed("keys", "each must be bytes")))
            .collect::<PyResult<Vec<_>>>()?;
        let entries: Vec<Option<StateValue>> = {
            let this = slf.try_borrow()?;
            keys.iter().map(|k| this.inner.get(k.as_bytes(), staged).copied()).collect()
        };
        let found = PyList::empty(py);
        let missing = PyList::empty(py);
        for (key, entry) in keys.into_iter().zip(entries) {
            match entry {
                Some(v) => found.append((key, PyBytes::new(py, &v)))?,
                None => missing.append(key)?,
            }
        }
        PyTuple::new(py, [found.into_any(), missing.into_any()])
    }

    /// Adds committed changes from stored `(change id, history entry)` pairs, in change-id order
    /// (after any loaded before); nothing if one is malformed.
    fn load(&mut self, entries: PairsArg<'_>) -> PyResult<()> {
        self.inner.load(borrowed(&entries.0)).or_raise()
    }

    /// Picks the write in progress's fold, up to `n` entries next in key order after the last
    /// fold's, and returns them as `(key, entry)` pairs to write into `state`.
    fn fold(slf: &Bound<'_, Self>, n: usize) -> PyResult<KeyValues> {
        let mut this = slf.try_borrow_mut()?;
        let picked = this.inner.fold(n);
        let mut out = KeyValues::with_capacity(picked.len(), picked.iter().map(|(k, v)| k.len() + v.len()).sum());
        for (k, v) in picked {
            out.push(k, v);
        }
        Ok(out) // the borrow ends before PyO3 makes the returned object
    }

    /// The lowest height of a change neither in `state` nor folded once the write in progress
    /// commits, or None.
    fn lowest_height(&mut self) -> Option<u64> {
        self.inner.settle();
        self.inner.lowest_height()
    }

    /// The write in progress is durable: what it staged is committed from now on. The merge that
    /// makes what it folded leave waits for the next call that changes the overlay.
    fn publish(&mut self) {
        self.inner.publish();
    }

    /// Forgets committed entries of changes below `height` (another process folded them into
    /// `state`); only between writes.
    fn forget_below(&mut self, height: u64) {
        self.inner.forget_below(height);
    }

    /// The write in progress failed: forget what it staged and folded (after merging a published
    /// write, which stays).
    fn discard(&mut self) {
        self.inner.discard();
    }

    /// Committed `(key, entry)` pairs in key order.
    fn items<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyList>> {
        let all = {
            let mut this = slf.try_borrow_mut()?;
            this.inner.settle();
            this.inner.items().map(|(k, v)| (Key::from(k), *v)).collect()
        };
        pairs(slf.py(), all)
    }
}
