//! The Merkle log class and the proof verifiers.

use ledgercore_native::merkle;
use ledgercore_native::{Digest, HashAlgo, MerkleLog as NativeLog, DIGEST_LEN};
use pyo3::exceptions::PyOverflowError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyInt, PyString};

use crate::errors::{malformed, raise_as, type_name, OrRaise};
use crate::rows::Rows;

fn digest(bytes: &[u8], what: &'static str) -> PyResult<Digest> {
    bytes.try_into().map_err(|_| malformed(what, format!("must be {DIGEST_LEN} bytes, got {}", bytes.len())))
}

/// An index or size argument. Negative or too-large integers raise `OutOfRangeError` (a `ValueError`),
/// as every other out-of-range index does, rather than PyO3's bare `OverflowError`. A bool is refused
/// (PyO3 would read `True` as 1), as the ledger's heights and sizes are.
fn position(obj: &Bound<'_, PyAny>, what: &'static str) -> PyResult<u64> {
    if obj.is_instance_of::<PyBool>() {
        return Err(malformed(what, "expected an int, got bool"));
    }
    match obj.extract::<u64>() {
        Ok(value) => Ok(value),
        Err(err) if err.is_instance_of::<PyOverflowError>(obj.py()) => Err(raise_as(
            obj.py(),
            "OutOfRangeError",
            // Not the value itself: str() refuses ints of over 4300 digits.
            format!(
                "{what} out of range: it is {}, and must be an integer in [0, 2**64)",
                // The int itself: an object with __index__ need not have __lt__.
                if obj.py().import("operator")?.call_method1("index", (obj,))?.lt(0)? {
                    "below 0"
                } else {
                    "2**64 or more"
                }
            ),
        )),
        Err(_) if !obj.is_instance_of::<PyInt>() => {
            Err(malformed(what, format!("expected an int, got {}", type_name(obj))))
        }
        Err(err) => Err(err),
    }
}

fn optional_position(obj: Option<&Bound<'_, PyAny>>, what: &'static str) -> PyResult<Option<u64>> {
    obj.filter(|o| !o.is_none()).map(|o| position(o, what)).transpose()
}

fn proof_path(proof: &Bound<'_, PyAny>) -> PyResult<Vec<Digest>> {
    let rows = Rows::extract(proof, "proof")?;
    rows.slices().into_iter().map(|node| digest(node, "proof node")).collect()
}

fn to_list(py: Python<'_>, path: Vec<Digest>) -> Vec<Bound<'_, PyBytes>> {
    path.iter().map(|node| PyBytes::new(py, node)).collect()
}

#[pyclass(module = "ledgercore._native")]
pub struct MerkleLog {
    inner: NativeLog,
}

impl MerkleLog {
    fn size_or_current(&self, size: Option<u64>) -> u64 {
        size.unwrap_or_else(|| self.inner.size())
    }
}

#[pymethods]
impl MerkleLog {
    #[new]
    fn new(algo: &Bound<'_, PyAny>) -> PyResult<Self> {
        // Not a str, or one with no UTF-8 form (a lone surrogate): named as the module functions
        // name it (ledgercore.native_args), not as PyO3's TypeError or UnicodeEncodeError.
        let name = algo.cast::<PyString>().ok().and_then(|s| s.to_str().ok());
        let Some(name) = name else {
            let got = match algo.cast::<PyString>() {
                Ok(s) => s.repr().map(|r| r.to_string().chars().take(80).collect()).unwrap_or_default(),
                Err(_) => type_name(algo),
            };
            let message = format!("algo must be a str, one of {}; got {got}", HashAlgo::NAMES);
            return Err(raise_as(algo.py(), "UnknownNameError", message));
        };
        Ok(Self { inner: NativeLog::new(HashAlgo::from_name(name).or_raise()?) })
    }

    #[getter]
    fn algo(&self) -> &'static str {
        self.inner.algo().name()
    }

    #[getter]
    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn append(&mut self, leaf: &Bound<'_, PyAny>) -> PyResult<u64> {
        let bytes = leaf
            .cast::<PyBytes>()
            .map_err(|_| malformed("leaf", format!("expected bytes, got {}", type_name(leaf))))?;
        Ok(self.inner.append(bytes.as_bytes()))
    }

    /// Holds the GIL throughout: released, other threads' reads of this log (root, proofs)
    /// would fail on its mutable borrow ("Already mutably borrowed").
    fn extend(&mut self, leaves: &Bound<'_, PyAny>) -> PyResult<()> {
        let rows = Rows::extract(leaves, "leaves")?;
        self.inner.extend(&rows.slices());
        Ok(())
    }

    #[pyo3(signature = (size=None))]
    fn root<'py>(&self, py: Python<'py>, size: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyBytes>> {
        let size = optional_position(size, "tree size")?;
        let root = self.inner.root(self.size_or_current(size)).or_raise()?;
        Ok(PyBytes::new(py, &root))
    }

    #[pyo3(signature = (index, size=None))]
    fn inclusion_proof<'py>(
        &self,
        py: Python<'py>,
        index: &Bound<'py, PyAny>,
        size: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let (index, size) = (position(index, "leaf index")?, optional_position(size, "tree size")?);
        let path = self.inner.inclusion_proof(index, self.size_or_current(size)).or_raise()?;
        Ok(to_list(py, path))
    }

    #[pyo3(signature = (old_size, new_size=None))]
    fn consistency_proof<'py>(
        &self,
        py: Python<'py>,
        old_size: &Bound<'py, PyAny>,
        new_size: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let (old_size, new_size) = (position(old_size, "old size")?, optional_position(new_size, "new size")?);
        let path = self.inner.consistency_proof(old_size, self.size_or_current(new_size)).or_raise()?;
        Ok(to_list(py, path))
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_bytes())
    }

    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<Self> {
        let data = data
            .cast::<PyBytes>()
            .map_err(|_| malformed("data", format!("expected bytes, got {}", type_name(data))))?;
        let data = data.as_bytes();
        let inner = py.detach(|| NativeLog::from_bytes(data)).or_raise()?;
        Ok(Self { inner })
    }
}

#[pyfunction]
pub fn merkle_verify_inclusion(
    algo: &str,
    leaf: &[u8],
    index: &Bound<'_, PyAny>,
    tree_size: &Bound<'_, PyAny>,
    proof: &Bound<'_, PyAny>,
    root: &[u8],
) -> PyResult<bool> {
    let (index, tree_size) = (position(index, "leaf index")?, position(tree_size, "tree size")?);
    let algo = HashAlgo::from_name(algo).or_raise()?;
    let (path, root) = (proof_path(proof)?, digest(root, "root")?);
    Ok(merkle::verify_inclusion(algo, leaf, index, tree_size, &path, &root))
}

#[pyfunction]
pub fn merkle_verify_consistency(
    algo: &str,
    old_size: &Bound<'_, PyAny>,
    new_size: &Bound<'_, PyAny>,
    old_root: &[u8],
    new_root: &[u8],
    proof: &Bound<'_, PyAny>,
) -> PyResult<bool> {
    let (old_size, new_size) = (position(old_size, "old size")?, position(new_size, "new size")?);
    let algo = HashAlgo::from_name(algo).or_raise()?;
    let path = proof_path(proof)?;
    let (old_root, new_root) = (digest(old_root, "old root")?, digest(new_root, "new root")?);
    Ok(merkle::verify_consistency(algo, old_size, new_size, &old_root, &new_root, &path))
}

/// The RFC 9162 root of `leaves` without keeping a log: parallel, GIL released, O(log n) memory.
#[pyfunction]
pub fn merkle_root<'py>(py: Python<'py>, algo: &str, leaves: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let algo = HashAlgo::from_name(algo).or_raise()?;
    let rows = Rows::extract(leaves, "leaves")?;
    let slices = rows.slices();
    let root = py.detach(|| merkle::root(algo, &slices));
    Ok(PyBytes::new(py, &root))
}
