//! `SignatureCheck`: a block's batch signature check running on native threads while the caller
//! goes on (executing the block), started and awaited without a Python thread in between.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use ledgercore_native::codec::Transaction;
use ledgercore_native::signature::spawn_check;
use ledgercore_native::{Result, Scheme, Spread};
use numpy::PyArray1;
use pyo3::prelude::*;

use crate::errors::OrRaise;

/// What a check found: one bool per item (or, should it panic, the panic's message), and the
/// seconds it took on its threads.
type Outcome = (std::result::Result<Result<Vec<bool>>, String>, f64);

#[pyclass(frozen, module = "ledgercore._native")]
pub struct SignatureCheck {
    pending: Mutex<Option<Receiver<Outcome>>>,
    outcome: OnceLock<Outcome>,
}

impl SignatureCheck {
    /// Starts checking each transaction's signature over its payload by its sender (`txs` moved
    /// to the check's threads, shared with the batch they came from).
    pub fn start(scheme: Scheme, txs: Arc<Vec<Transaction>>, seed: [u8; 32], spread: Spread) -> Self {
        let (send, receive) = sync_channel(1);
        spawn_check(move || {
            let began = Instant::now();
            // A panic on the pool's thread would abort the process: it is carried to the waiter.
            let valid = catch_unwind(AssertUnwindSafe(|| {
                let keys: Vec<&[u8]> = txs.iter().map(Transaction::sender).collect();
                let messages: Vec<&[u8]> = txs.iter().map(Transaction::payload).collect();
                let signatures: Vec<&[u8]> = txs.iter().map(Transaction::signature).collect();
                scheme.verify_batch(&keys, &messages, &signatures, seed, spread)
            }))
            .map_err(|panic| {
                let text = panic.downcast_ref::<&str>().map(|s| s.to_string());
                text.or_else(|| panic.downcast_ref::<String>().cloned()).unwrap_or_default()
            });
            // The receiver may be gone (its owner dropped the check): nobody wants the answer.
            let _ = send.send((valid, began.elapsed().as_secs_f64()));
        });
        Self { pending: Mutex::new(Some(receive)), outcome: OnceLock::new() }
    }

    /// Blocks until the check is done (the GIL released meanwhile); later calls return at once.
    fn outcome(&self, py: Python<'_>) -> &Outcome {
        py.detach(|| {
            self.outcome.get_or_init(|| {
                let receive = self.pending.lock().unwrap_or_else(|p| p.into_inner()).take();
                receive.and_then(|r| r.recv().ok()).expect("a started check always sends its outcome")
            })
        })
    }
}

#[pymethods]
impl SignatureCheck {
    /// Waits for the check: a bool array, True where the signature is valid.
    pub fn wait<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<bool>>> {
        match &self.outcome(py).0 {
            Ok(valid) => Ok(PyArray1::from_vec(py, valid.clone().or_raise()?)),
            Err(panic) => panic!("the signature check panicked: {panic}"),
        }
    }

    /// Seconds the check took on its native threads (waits for it).
    #[getter]
    fn seconds(&self, py: Python<'_>) -> f64 {
        self.outcome(py).1
    }
}
