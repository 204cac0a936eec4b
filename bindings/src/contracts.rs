//! Runs a built-in contract's slice of a block natively: plan, one bulk read through Python, apply.

use ledgercore_native::contracts::{self, cert::Cert, evidence::Evidence, Call, Outcome, SingleKeyContract};
use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyTuple};

use crate::errors::malformed;
use crate::txbatch::TxBatch;

fn run<C: SingleKeyContract>(
    py: Python<'_>,
    contract: &C,
    calls: &[Call<'_>],
    read: &Bound<'_, PyAny>,
) -> PyResult<Outcome> {
    let plan = py.detach(|| contracts::plan(contract, calls));
    // Sorted distinct keys: the store reads them in one ordered pass.
    let keys: Vec<Bound<'_, PyBytes>> = plan.keys().into_iter().map(|k| PyBytes::new(py, k)).collect();
    // The callback returns the committed (key, value) pairs of those keys that exist.
    let found: Vec<(PyBackedBytes, PyBackedBytes)> = read.call1((keys,))?.extract()?;
    let current = plan.current(found.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
    Ok(py.detach(|| contracts::apply(contract, calls, plan, &current)))
}

/// Executes the transactions at `indices` of `batch` with the built-in contract `name`.
/// `read(keys) -> [(key, value)]` reads committed state. Returns
/// `(ok, errors, keys, values, txs)`: ok aligned with `indices`, errors `[(index, reason)]`,
/// and the writes as columns.
#[pyfunction]
pub fn run_builtin<'py>(
    py: Python<'py>,
    name: &str,
    batch: &TxBatch,
    indices: PyReadonlyArray1<'py, i64>,
    read: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    let txs = batch.txs();
    let calls = indices
        .as_slice()?
        .iter()
        .map(|&i| {
            let tx = usize::try_from(i).ok().and_then(|i| txs.get(i)).ok_or_else(|| {
                malformed("indices", format!("{i} is not a transaction of this block of {}", txs.len()))
            })?;
            Ok(Call { index: i as u32, sender: tx.sender(), method: tx.method(), args: tx.args() })
        })
        .collect::<PyResult<Vec<_>>>()?;
    let out = match name {
        Evidence::NAME => run(py, &Evidence, &calls, read)?,
        Cert::NAME => run(py, &Cert, &calls, read)?,
        other => return Err(malformed("contract", format!("{other:?} is not a built-in contract"))),
    };
    let keys: Vec<Bound<'py, PyBytes>> = out.writes.iter().map(|(k, _, _)| PyBytes::new(py, k)).collect();
    let values: Vec<Bound<'py, PyBytes>> = out.writes.iter().map(|(_, v, _)| PyBytes::new(py, v)).collect();
    let tx_of: Vec<u32> = out.writes.iter().map(|(_, _, t)| *t).collect();
    (PyArray1::from_vec(py, out.ok), out.errors, keys, values, PyArray1::from_vec(py, tx_of)).into_pyobject(py)
}
