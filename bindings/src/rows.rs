//! Batch inputs: a sequence of bytes-like items, or a C-contiguous 2-D uint8 numpy array (one row each).
//! Items are borrowed without copying when they are `bytes` or array rows.

use numpy::{PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::conversion::FromPyObjectOwned;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView, PySequence, PyString};

use crate::errors::{malformed, type_name};

/// Most rows a zero-width array may have (each is an empty item).
const MAX_EMPTY_ROWS: usize = 1 << 24;

pub enum Item<'py> {
    Bytes(Bound<'py, PyBytes>),
    Copied(Vec<u8>),
}

pub enum Rows<'py> {
    Items(Vec<Item<'py>>),
    Array(PyReadonlyArray2<'py, u8>),
}

impl<'py> Rows<'py> {
    pub fn extract(obj: &Bound<'py, PyAny>, what: &'static str) -> PyResult<Self> {
        if let Ok(array) = obj.extract::<PyReadonlyArray2<'py, u8>>() {
            if !array.is_c_contiguous() {
                return Err(malformed(what, "numpy array must be C-contiguous (use numpy.ascontiguousarray)"));
            }
            // Rows of no bytes take no memory, so nothing else bounds their count: 10**12 of them
            // are 0 bytes of input, but a slice and an output per row would abort the process.
            if array.shape()[1] == 0 && array.shape()[0] > MAX_EMPTY_ROWS {
                let reason = format!("{} rows of zero width; at most {MAX_EMPTY_ROWS}", array.shape()[0]);
                return Err(malformed(what, reason));
            }
            return Ok(Self::Array(array));
        }
        if obj.is_instance_of::<PyBytes>()
            || obj.is_instance_of::<PyByteArray>()
            || obj.is_instance_of::<PyMemoryView>()
        {
            return Err(malformed(what, "expected a sequence of byte strings, got a single byte string"));
        }
        let iter = obj.try_iter().map_err(|err| {
            if !err.is_instance_of::<PyTypeError>(obj.py()) {
                return err; // the object's own __iter__ failed: its error says why
            }
            malformed(what, format!("expected a sequence of byte strings, got {}", type_name(obj)))
        })?;
        let mut items = Vec::with_capacity(capacity_hint(obj));
        for (i, item) in iter.enumerate() {
            let item = item?;
            items.push(match item.cast_into::<PyBytes>() {
                Ok(bytes) => Item::Bytes(bytes),
                Err(err) => {
                    let other = err.into_inner();
                    if let Some(copy) = copied_bytes(&other) {
                        Item::Copied(copy.map_err(|err| malformed(what, format!("item {i}: {err}")))?)
                    } else {
                        return Err(malformed(what, format!("item {i} is {}, not bytes", type_name(&other))));
                    }
                }
            });
        }
        Ok(Self::Items(items))
    }

    /// Row `i` as a `bytes` object: the caller's own object when it passed `bytes`, else a copy.
    pub fn object(&self, py: Python<'py>, i: usize) -> Bound<'py, PyBytes> {
        match self {
            Self::Items(items) => match &items[i] {
                Item::Bytes(b) => b.clone(),
                Item::Copied(v) => PyBytes::new(py, v),
            },
            Self::Array(array) => {
                let width = array.shape()[1];
                let data = array.as_slice().expect("checked C-contiguous");
                PyBytes::new(py, &data[i * width..(i + 1) * width])
            }
        }
    }

    /// Borrowed views of every row; valid while `self` is.
    pub fn slices(&self) -> Vec<&[u8]> {
        match self {
            Self::Items(items) => items
                .iter()
                .map(|item| match item {
                    Item::Bytes(b) => b.as_bytes(),
                    Item::Copied(v) => v.as_slice(),
                })
                .collect(),
            Self::Array(array) => {
                let [n, width] = [array.shape()[0], array.shape()[1]];
                let data = array.as_slice().expect("checked C-contiguous");
                if width == 0 {
                    vec![&data[..0]; n]
                } else {
                    data.chunks_exact(width).collect()
                }
            }
        }
    }
}

/// Room to reserve for `obj`'s items: its `len()` is only a hint, since an object may claim 10**12
/// items (an allocation that aborts the process).
fn capacity_hint(obj: &Bound<'_, PyAny>) -> usize {
    obj.len().unwrap_or(0).min(1 << 16)
}

/// A sequence argument read item by item, for the arguments PyO3 would extract as a `Vec`: its
/// extraction reserves room for as many items as `len()` claims. A sequence, as there: an
/// unordered `set` or `dict` would pair its items with another argument's in no given order.
pub struct Seq<T>(pub Vec<T>);

impl<'a, 'py, T: FromPyObjectOwned<'py>> FromPyObject<'a, 'py> for Seq<T> {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() || obj.cast::<PySequence>().is_err() {
            return Err(PyTypeError::new_err(format!("expected a sequence, got {}", type_name(&obj))));
        }
        let mut items = Vec::with_capacity(capacity_hint(&obj));
        for item in obj.try_iter()? {
            items.push(item?.extract::<T>().map_err(Into::into)?);
        }
        Ok(Self(items))
    }
}

/// A bytearray's bytes, or a memoryview's raw bytes whatever its format and shape (as `bytes(view)`
/// reads them, not one byte per element); `None` for any other object. A released view is an error.
pub fn copied_bytes(obj: &Bound<'_, PyAny>) -> Option<PyResult<Vec<u8>>> {
    if let Ok(array) = obj.cast::<PyByteArray>() {
        return Some(Ok(array.to_vec()));
    }
    if !obj.is_instance_of::<PyMemoryView>() {
        return None;
    }
    Some(obj.call_method0("tobytes").and_then(|copy| Ok(copy.cast::<PyBytes>()?.as_bytes().to_vec())))
}

/// `(key, value)` byte-string pairs as Python passes them (store rows, entries).
pub type Pairs<'py> = Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>;

/// [`Pairs`] as an argument.
pub type PairsArg<'py> = Seq<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>;

/// The pairs' bytes, borrowed.
pub fn borrowed<'a>(pairs: &'a [(Bound<'_, PyBytes>, Bound<'_, PyBytes>)]) -> Vec<(&'a [u8], &'a [u8])> {
    pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())).collect()
}
