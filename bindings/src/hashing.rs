//! `hash_digest` and `hash_many`.

use ledgercore_native::{HashAlgo, DIGEST_LEN};
use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::OrRaise;
use crate::rows::Rows;

#[pyfunction]
pub fn hash_digest<'py>(py: Python<'py>, algo: &str, data: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let algo = HashAlgo::from_name(algo).or_raise()?;
    Ok(PyBytes::new(py, &algo.digest(data)))
}

#[pyfunction]
pub fn hash_many<'py>(py: Python<'py>, algo: &str, items: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray2<u8>>> {
    let algo = HashAlgo::from_name(algo).or_raise()?;
    let rows = Rows::extract(items, "items")?;
    let slices = rows.slices();
    let n = slices.len();
    let out = py.detach(|| algo.digest_many(&slices));
    PyArray1::from_vec(py, out).reshape([n, DIGEST_LEN])
}
