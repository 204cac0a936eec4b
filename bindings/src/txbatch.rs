//! `decode_txs` and `TxBatch`: a block's transactions decoded in parallel into columns.

use std::sync::Arc;

use ledgercore_native::codec::{decode_batch, Transaction};
use ledgercore_native::signature::SIGNATURE_LEN;
use ledgercore_native::{Spread, Suite, DIGEST_LEN};
use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::errors::{malformed, OrRaise};
use crate::rows::Rows;
use crate::signature_check::SignatureCheck;

/// Decoded transactions of one chain, in block order. The decoded data stays here; each column
/// property builds a fresh array or list from it. Native code reads rows through [`TxBatch::txs`].
#[pyclass(frozen, module = "ledgercore._native")]
pub struct TxBatch {
    suite: Suite,
    chain_id: String,
    txs: Arc<Vec<Transaction>>,
}

#[allow(dead_code)] // the Rust-side accessors are for other native functions of these bindings
impl TxBatch {
    pub fn txs(&self) -> &[Transaction] {
        &self.txs
    }

    pub fn suite(&self) -> Suite {
        self.suite
    }

    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }

    /// One fixed-width field of every transaction, as an `(N, width)` uint8 array.
    fn matrix<'py>(
        &self,
        py: Python<'py>,
        width: usize,
        field: impl Fn(&Transaction) -> &[u8],
    ) -> PyResult<Bound<'py, PyArray2<u8>>> {
        let mut out = Vec::with_capacity(self.txs.len() * width);
        for tx in self.txs.iter() {
            out.extend_from_slice(field(tx));
        }
        PyArray1::from_vec(py, out).reshape([self.txs.len(), width])
    }

    /// A list of str, reusing one Python string while consecutive values repeat (block columns
    /// of contract and method names mostly do).
    fn strings<'py>(&self, py: Python<'py>, field: impl Fn(&Transaction) -> &str) -> Vec<Bound<'py, PyString>> {
        let mut last: Option<(&str, Bound<'py, PyString>)> = None;
        let mut out = Vec::with_capacity(self.txs.len());
        for tx in self.txs.iter() {
            let s = field(tx);
            let item = match &last {
                Some((prev, obj)) if *prev == s => obj.clone(),
                _ => {
                    let obj = PyString::new(py, s);
                    last = Some((s, obj.clone()));
                    obj
                }
            };
            out.push(item);
        }
        out
    }

    fn bytes<'py>(&self, py: Python<'py>, field: impl Fn(&Transaction) -> &[u8]) -> Vec<Bound<'py, PyBytes>> {
        self.txs.iter().map(|tx| PyBytes::new(py, field(tx))).collect()
    }
}

#[pymethods]
impl TxBatch {
    #[getter]
    fn count(&self) -> usize {
        self.txs.len()
    }

    fn __len__(&self) -> usize {
        self.txs.len()
    }

    #[getter(suite)]
    fn suite_name(&self) -> &'static str {
        self.suite.name()
    }

    #[getter(chain_id)]
    fn py_chain_id(&self) -> &str {
        &self.chain_id
    }

    /// `(N, 32)` uint8: each transaction's id (suite hash of its payload).
    #[getter]
    fn ids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<u8>>> {
        self.matrix(py, DIGEST_LEN, |tx| tx.id())
    }

    /// `(N, public key size)` uint8: each sender's public key.
    #[getter]
    fn public_keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<u8>>> {
        self.matrix(py, self.suite.public_key_len(), Transaction::sender)
    }

    /// `(N, 64)` uint8: each signature.
    #[getter]
    fn signatures<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<u8>>> {
        self.matrix(py, SIGNATURE_LEN, Transaction::signature)
    }

    /// Each payload: exactly the bytes that were signed.
    #[getter]
    fn messages<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        self.bytes(py, Transaction::payload)
    }

    #[getter]
    fn nonces<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u64>> {
        PyArray1::from_iter(py, self.txs.iter().map(Transaction::nonce))
    }

    #[getter]
    fn timestamps<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u64>> {
        PyArray1::from_iter(py, self.txs.iter().map(Transaction::timestamp))
    }

    #[getter]
    fn contracts<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyString>> {
        self.strings(py, Transaction::contract)
    }

    #[getter]
    fn methods<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyString>> {
        self.strings(py, Transaction::method)
    }

    /// Each transaction's args map, canonically encoded (`codec.decode_value` reads one).
    #[getter]
    fn args<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        self.bytes(py, |tx| tx.args().bytes())
    }

    /// Each whole transaction encoding.
    #[getter]
    fn raws<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        self.bytes(py, Transaction::raw)
    }

    /// Checks every signature in one batch without building columns; `seed` must be 32 fresh
    /// random bytes (see `signing.verify_batch`). A bool array, True where valid.
    fn verify_signatures<'py>(&self, py: Python<'py>, seed: &[u8]) -> PyResult<Bound<'py, PyArray1<bool>>> {
        self.start_signature_check(seed, false)?.wait(py)
    }

    /// Starts the same check on the checks' native threads and returns at once: the caller goes
    /// on (executing the block) and waits on the returned check when it needs the answer. With
    /// `one_thread` the check runs on one of them, as one batch equation: less CPU per signature,
    /// for a caller that keeps a check running on each thread.
    #[pyo3(signature = (seed, one_thread = false))]
    fn start_signature_check(&self, seed: &[u8], one_thread: bool) -> PyResult<SignatureCheck> {
        let seed: [u8; 32] = seed.try_into().map_err(|_| malformed("seed", "must be 32 random bytes"))?;
        let spread = if one_thread { Spread::OneThread } else { Spread::AllThreads };
        Ok(SignatureCheck::start(self.suite.scheme(), Arc::clone(&self.txs), seed, spread))
    }

    fn __repr__(&self) -> String {
        format!("TxBatch(suite={:?}, chain_id={:?}, count={})", self.suite.name(), self.chain_id, self.txs.len())
    }
}

/// Decodes raw transactions in parallel (GIL released). Each must decode canonically and carry
/// `suite` and `chain_id`; the first that does not raises DecodeError with its `index`.
#[pyfunction]
pub fn decode_txs(py: Python<'_>, suite: &str, chain_id: &str, raws: &Bound<'_, PyAny>) -> PyResult<TxBatch> {
    let suite = Suite::from_name(suite).or_raise()?;
    let rows = Rows::extract(raws, "raws")?;
    let slices = rows.slices();
    let txs = py.detach(|| decode_batch(suite, chain_id, &slices)).or_raise()?;
    Ok(TxBatch { suite, chain_id: chain_id.to_owned(), txs: Arc::new(txs) })
}
