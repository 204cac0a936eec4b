//! The in-memory map of committed transactions to their blocks (`native/src/ledger/locator.rs`).

use ledgercore_native::ledger::{locator, locator_run};
use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::errors::OrRaise;
use crate::rows::{Rows, Seq};

#[pyclass(module = "ledgercore._native")]
pub struct TxLocator {
    inner: locator::TxLocator,
}

#[pymethods]
impl TxLocator {
    #[new]
    fn new() -> Self {
        Self { inner: locator::TxLocator::new() }
    }

    fn __len__(&self) -> usize {
        self.inner.len() as usize
    }

    /// Records the block at `height` (above every block added before) and its ids, 32 bytes each.
    fn add_block(&mut self, height: u64, ids: &[u8]) -> PyResult<()> {
        self.inner.add_block(height, ids).or_raise()
    }

    /// `(positions, heights)`: for each of `ids` that may be committed, its position in `ids`
    /// and a height that may hold it, one pair per candidate, lowest height first per position;
    /// the map's candidates, then those of each of `runs` (uint8 arrays, e.g. views of stored runs).
    ///
    /// The map is borrowed only while no Python object is made: making one may run Python code
    /// that lets the writer thread in, whose `add_block` would then find it borrowed.
    #[pyo3(signature = (ids, runs = Seq(Vec::new())))]
    fn candidates<'py>(
        slf: &Bound<'py, Self>,
        ids: &Bound<'py, PyAny>,
        runs: Seq<PyReadonlyArray1<'py, u8>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let rows = Rows::extract(ids, "ids")?;
        let runs = runs.0.iter().map(|r| r.as_slice()).collect::<Result<Vec<_>, _>>()?;
        for run in &runs {
            locator_run::count(run).or_raise()?;
        }
        let (mut positions, mut heights) = (Vec::new(), Vec::new());
        {
            let this = slf.try_borrow()?;
            for (i, id) in rows.slices().into_iter().enumerate() {
                let in_map = this.inner.candidates(id).or_raise()?;
                let in_runs = runs.iter().flat_map(|run| locator_run::candidates(run, id).map(u64::from));
                for h in in_map.into_iter().chain(in_runs) {
                    positions.push(i as u64);
                    heights.push(h);
                }
            }
        }
        PyTuple::new(py, [PyArray1::from_vec(py, positions).into_any(), PyArray1::from_vec(py, heights).into_any()])
    }

    /// The map's contents as a locator run: sorted 12-byte records `id prefix || u32 height`.
    fn to_run<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_run())
    }
}

/// One run holding every record of `runs` (each checked: whole records, strictly ascending).
#[pyfunction]
pub fn merge_runs<'py>(py: Python<'py>, runs: Seq<Bound<'py, PyBytes>>) -> PyResult<Bound<'py, PyBytes>> {
    let slices: Vec<&[u8]> = runs.0.iter().map(|r| r.as_bytes()).collect();
    for run in &slices {
        locator_run::check(run).or_raise()?;
    }
    Ok(PyBytes::new(py, &locator_run::merge(&slices)))
}

/// The position of each of `wanted` among a block's `ids` (its first occurrence), -1 where absent.
#[pyfunction]
pub fn id_positions<'py>(
    py: Python<'py>,
    ids: &[u8],
    wanted: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    let wanted = Rows::extract(wanted, "wanted")?;
    let found = locator::id_positions(ids, &wanted.slices()).or_raise()?;
    Ok(PyArray1::from_vec(py, found.into_iter().map(|p| p.map_or(-1, i64::from)).collect()))
}
