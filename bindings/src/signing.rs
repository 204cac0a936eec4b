//! Keys, single verification and batch verification.

use ledgercore_native::{Scheme, SecretKey as NativeSecretKey, Spread};
use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::{malformed, OrRaise};
use crate::rows::Rows;

/// A private key of one scheme. Python's `signing.KeyPair` wraps it.
#[pyclass(frozen, module = "ledgercore._native")]
pub struct SecretKey {
    inner: NativeSecretKey,
    public_key: Py<PyBytes>,
}

#[pymethods]
impl SecretKey {
    #[new]
    fn new(py: Python<'_>, scheme: &str, private_bytes: &[u8]) -> PyResult<Self> {
        let scheme = Scheme::from_name(scheme).or_raise()?;
        let inner = NativeSecretKey::from_bytes(scheme, private_bytes).or_raise()?;
        let public_key = PyBytes::new(py, &inner.public_key()).unbind();
        Ok(Self { inner, public_key })
    }

    #[getter]
    fn scheme(&self) -> &'static str {
        self.inner.scheme().name()
    }

    #[getter]
    fn public_key(&self, py: Python<'_>) -> Py<PyBytes> {
        self.public_key.clone_ref(py)
    }

    fn private_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_bytes())
    }

    fn sign<'py>(&self, py: Python<'py>, message: &[u8]) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.sign(message))
    }

    /// Signs every message (one signature per row of the result), in parallel without the GIL.
    fn sign_many<'py>(&self, py: Python<'py>, messages: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray1<u8>>> {
        let rows = Rows::extract(messages, "messages")?;
        let slices = rows.slices();
        let out = py.detach(|| {
            use rayon::prelude::*;
            slices.par_iter().flat_map_iter(|m| self.inner.sign(m)).collect::<Vec<u8>>()
        });
        Ok(PyArray1::from_vec(py, out))
    }
}

#[pyfunction]
pub fn verify(scheme: &str, public_key: &[u8], message: &[u8], signature: &[u8]) -> PyResult<bool> {
    Scheme::from_name(scheme).or_raise()?.verify(public_key, message, signature).or_raise()
}

#[pyfunction]
pub fn verify_batch<'py>(
    py: Python<'py>,
    scheme: &str,
    public_keys: &Bound<'py, PyAny>,
    messages: &Bound<'py, PyAny>,
    signatures: &Bound<'py, PyAny>,
    seed: &[u8],
) -> PyResult<Bound<'py, PyArray1<bool>>> {
    let scheme = Scheme::from_name(scheme).or_raise()?;
    let seed: [u8; 32] = seed.try_into().map_err(|_| malformed("seed", "must be 32 random bytes"))?;
    let (keys, msgs, sigs) = (
        Rows::extract(public_keys, "public_keys")?,
        Rows::extract(messages, "messages")?,
        Rows::extract(signatures, "signatures")?,
    );
    let (keys, msgs, sigs) = (keys.slices(), msgs.slices(), sigs.slices());
    let out = py.detach(|| scheme.verify_batch(&keys, &msgs, &sigs, seed, Spread::AllThreads)).or_raise()?;
    Ok(PyArray1::from_vec(py, out))
}
