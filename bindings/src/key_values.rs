//! Key-value pairs for LMDB's `putmulti`, held in one native buffer and handed to Python one tuple
//! at a time. `putmulti` drops each pair once it is written, so a block's thousands of store
//! entries never exist as Python objects together: no list of them, and no tuples piling up to set
//! off the cycle collector (which then walks them all) several times a block.

use pyo3::exceptions::PyIndexError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

#[pyclass(module = "ledgercore._native", frozen, sequence)]
pub struct KeyValues {
    bytes: Vec<u8>,
    /// Per pair, where its key and its value start in `bytes`; the value ends where the next
    /// pair's key starts (the last one's at the end).
    starts: Vec<(usize, usize)>,
}

impl KeyValues {
    pub fn with_capacity(pairs: usize, bytes: usize) -> Self {
        Self { bytes: Vec::with_capacity(bytes), starts: Vec::with_capacity(pairs) }
    }

    /// Appends a pair whose `len`-byte value `fill` writes in place.
    pub fn push_with(&mut self, key: &[u8], len: usize, fill: impl FnOnce(&mut [u8])) {
        let k = self.bytes.len();
        self.bytes.extend_from_slice(key);
        let v = self.bytes.len();
        self.bytes.resize(v + len, 0);
        fill(&mut self.bytes[v..]);
        self.starts.push((k, v));
    }

    pub fn push(&mut self, key: &[u8], value: &[u8]) {
        self.push_with(key, value.len(), |b| b.copy_from_slice(value));
    }

    fn tuple<'py>(&self, py: Python<'py>, i: usize) -> PyResult<Bound<'py, PyTuple>> {
        let (k, v) = self.starts[i];
        let end = self.starts.get(i + 1).map_or(self.bytes.len(), |next| next.0);
        PyTuple::new(py, [PyBytes::new(py, &self.bytes[k..v]), PyBytes::new(py, &self.bytes[v..end])])
    }
}

#[pymethods]
impl KeyValues {
    fn __len__(&self) -> usize {
        self.starts.len()
    }

    /// Pair `index` as `(key, value)`; negative indices count from the end.
    fn __getitem__<'py>(&self, py: Python<'py>, index: isize) -> PyResult<Bound<'py, PyTuple>> {
        let len = self.starts.len();
        let i = if index < 0 { index + len as isize } else { index };
        if !(0..len as isize).contains(&i) {
            return Err(PyIndexError::new_err(format!("pair {index} of {len}")));
        }
        self.tuple(py, i as usize)
    }

    fn __iter__(slf: Bound<'_, Self>) -> KeyValuesIter {
        KeyValuesIter { pairs: slf.unbind(), next: 0 }
    }
}

#[pyclass(module = "ledgercore._native")]
pub struct KeyValuesIter {
    pairs: Py<KeyValues>,
    next: usize,
}

#[pymethods]
impl KeyValuesIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(mut slf: PyRefMut<'py, Self>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let i = slf.next;
        let pairs = slf.pairs.get();
        if i >= pairs.starts.len() {
            return Ok(None);
        }
        let pair = pairs.tuple(slf.py(), i)?;
        slf.next += 1;
        Ok(Some(pair))
    }
}
