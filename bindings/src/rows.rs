//! Batch inputs: a sequence of bytes-like items, or a C-contiguous 2-D uint8 numpy array (one row each).
//! Items are borrowed without copying when they are `bytes` or array rows.

use numpy::{PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView};

use crate::errors::malformed;

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
            return Ok(Self::Array(array));
        }
        if obj.is_instance_of::<PyBytes>() || obj.is_instance_of::<PyByteArray>() {
            return Err(malformed(what, "expected a sequence of byte strings, got a single byte string"));
        }
        // len() is only a hint: an object may claim 10**12 items (an allocation that aborts the process).
        let mut items = Vec::with_capacity(obj.len().unwrap_or(0).min(1 << 16));
        let iter = obj.try_iter().map_err(|_| {
            let type_name = obj.get_type().name().map(|n| n.to_string()).unwrap_or_default();
            malformed(what, format!("expected a sequence of byte strings, got {type_name}"))
        })?;
        for (i, item) in iter.enumerate() {
            let item = item?;
            items.push(match item.cast_into::<PyBytes>() {
                Ok(bytes) => Item::Bytes(bytes),
                Err(err) => {
                    let other = err.into_inner();
                    if let Some(copy) = copied_bytes(&other) {
                        Item::Copied(copy.map_err(|err| malformed(what, format!("item {i}: {err}")))?)
                    } else {
                        let type_name = other.get_type().name()?;
                        return Err(malformed(what, format!("item {i} is {type_name}, not bytes")));
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

/// The pairs' bytes, borrowed.
pub fn borrowed<'a>(pairs: &'a Pairs<'_>) -> Vec<(&'a [u8], &'a [u8])> {
    pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())).collect()
}
