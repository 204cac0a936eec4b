//! Raft entry runs (`ledgercore_native::consensus::entries`) to and from lists of Python `Entry`
//! named tuples, one call per run: the replication hot path, kept off a per-entry Python loop.

use ledgercore_native::consensus::entries::{self, EntryRef};
use ledgercore_native::Error;
use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple, PyType};

use crate::errors::{to_py, type_name, OrRaise};
use crate::rows::copied_bytes;

fn encode_error(what: String, reason: &str) -> PyErr {
    to_py(Error::Encode { what, reason: reason.into() })
}

/// The data of entry `i` as bytes: bytes themselves, or a copy of a bytearray or memoryview (not
/// `bytes(obj)`, which makes an int `n` into `n` zero bytes).
fn entry_data<'py>(i: usize, obj: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    match obj.cast_into::<PyBytes>() {
        Ok(b) => Ok(b),
        Err(e) => {
            let obj = e.into_inner();
            let what = || format!("entries[{i}].data");
            match copied_bytes(&obj) {
                Some(Ok(copy)) => Ok(PyBytes::new(obj.py(), &copy)),
                Some(Err(err)) => Err(encode_error(what(), &err.to_string())),
                None => Err(encode_error(what(), &format!("is {}, not bytes", type_name(&obj)))),
            }
        }
    }
}

/// The encoded run of `entries` (a sequence of `(term, index, type, data)` tuples), written
/// straight into the bytes object returned (a run can be megabytes: no intermediate buffer). With
/// `follows = (index, log_term, term)` the entries must be in append order after that entry, as
/// every receiver's `decode_entries` checks.
#[pyfunction]
#[pyo3(signature = (entries, follows=None))]
pub fn encode_entries<'py>(
    py: Python<'py>,
    entries: &Bound<'py, PyAny>,
    follows: Option<(u64, u64, u64)>,
) -> PyResult<Bound<'py, PyBytes>> {
    let mut heads = Vec::new();
    let mut datas = Vec::new();
    for (i, item) in entries.try_iter()?.enumerate() {
        let item = item?;
        let t = item
            .cast::<PyTuple>()
            .ok()
            .filter(|t| t.len() == 4)
            .ok_or_else(|| encode_error(format!("entries[{i}]"), "is not an Entry"))?;
        let bad_u64 = |_| encode_error(format!("entries[{i}]"), "term or index is not a u64");
        let term: u64 = t.get_item(0)?.extract().map_err(bad_u64)?;
        let index: u64 = t.get_item(1)?.extract().map_err(bad_u64)?;
        let kind: u8 =
            t.get_item(2)?.extract().map_err(|_| encode_error(format!("entries[{i}].type"), "is not an entry type"))?;
        heads.push((term, index, kind));
        datas.push(entry_data(i, t.get_item(3)?)?);
    }
    let refs: Vec<EntryRef<'_>> = heads
        .iter()
        .zip(&datas)
        .map(|(&(term, index, kind), d)| EntryRef { term, index, kind, data: d.as_bytes() })
        .collect();
    if let Some((index, log_term, term)) = follows {
        if let Some(i) = entries::first_out_of_order(&refs, index, log_term, term) {
            let (e, prev) = (&refs[i], if i == 0 { (index, log_term) } else { (refs[i - 1].index, refs[i - 1].term) });
            let reason = format!(
                "(index {}, term {}) does not follow index {} of term {} in an append of term {term}",
                e.index, e.term, prev.0, prev.1
            );
            return Err(encode_error(format!("entries[{i}]"), &reason));
        }
    }
    PyBytes::new_with(py, entries::encoded_len(&refs), |out| entries::encode_to(out, &refs).or_raise())
}

/// A new instance of the tuple subclass `cls` holding `items` (references stolen), built as
/// CPython's own `tuple.__new__(cls, items)` does but without a Python-level constructor call.
///
/// # Safety
/// `cls` must be a subtype of `tuple` with no extra fields (a named tuple), and every item a new
/// reference to an object that cannot refer back to the tuple (ints, bytes, enum members).
unsafe fn new_tuple_of(
    py: Python<'_>,
    cls: *mut ffi::PyTypeObject,
    items: [*mut ffi::PyObject; 4],
) -> PyResult<Bound<'_, PyAny>> {
    let obj = ffi::PyType_GenericAlloc(cls, 4);
    if obj.is_null() {
        for item in items {
            ffi::Py_DECREF(item);
        }
        return Err(PyErr::fetch(py));
    }
    for (i, item) in items.into_iter().enumerate() {
        // Cannot fail: obj is a fresh tuple (refcount 1) and i is in range; steals item.
        ffi::PyTuple_SetItem(obj, i as ffi::Py_ssize_t, item);
    }
    // Out of the cycle collector, as CPython does for exact tuples of atoms (it never does for
    // tuple subclasses): a Raft log keeps ~100k entries alive, and every full collection scanning
    // them made building an entry 3x slower. Safe: no reference cycle can pass through an entry.
    ffi::PyObject_GC_UnTrack(obj.cast());
    Ok(Bound::from_owned_ptr(py, obj))
}

/// Makes `(term, index, type, data)` entries of the named-tuple class `cls`.
struct Maker<'py> {
    py: Python<'py>,
    cls: *mut ffi::PyTypeObject,
    /// The Python value of each entry type code (the `EntryType` members), indexed by code.
    types: Vec<Bound<'py, PyAny>>,
}

impl<'py> Maker<'py> {
    fn new(cls: &Bound<'py, PyType>, types: &Bound<'py, PyTuple>) -> PyResult<Self> {
        let py = cls.py();
        // A named tuple of four fields declares __slots__ = () and derives from tuple alone: its
        // instance is exactly a 4-item tuple. A struct sequence (time.struct_time) is a tuple
        // subclass of the same size too, but keeps more items than it shows (`n_fields`).
        let tuple = py.get_type::<PyTuple>();
        let basic = tuple.getattr("__basicsize__")?.extract::<isize>()?;
        let fields = cls.getattr("_fields").and_then(|f| f.len()).unwrap_or(0);
        let bases = cls.getattr("__bases__")?;
        let named_tuple = bases.len()? == 1
            && bases.get_item(0)?.is(&tuple)
            && cls.getattr("__basicsize__")?.extract::<isize>()? == basic
            && fields == 4
            && !cls.hasattr("n_fields")?;
        if !named_tuple {
            return Err(PyTypeError::new_err("entry class must be a named tuple of four fields"));
        }
        if types.len() != usize::from(entries::MAX_ENTRY_TYPE) + 1 {
            return Err(PyTypeError::new_err("entry types must name every entry type code"));
        }
        Ok(Self { py, cls: cls.as_type_ptr(), types: types.iter().collect() })
    }

    fn make(&self, term: u64, index: u64, kind: u8, data: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = self.py;
        let items = [
            term.into_pyobject(py)?.into_any().into_ptr(),
            index.into_pyobject(py)?.into_any().into_ptr(),
            self.types[usize::from(kind)].clone().into_ptr(),
            data.into_ptr(),
        ];
        // SAFETY: Maker::new checked cls is a named tuple; every item is a new reference.
        unsafe { new_tuple_of(py, self.cls, items) }
    }
}

/// Decodes the run at `buf[pos:]` into a list of `cls(term, index, types[type], data)`; returns
/// it with the offset just after the run. With `follows = (index, log_term, term)` the entries
/// must also be in append order after that entry (`entries::check_follows`).
#[pyfunction]
#[pyo3(signature = (buf, pos, cls, types, follows=None))]
pub fn decode_entries<'py>(
    buf: &Bound<'py, PyBytes>,
    pos: usize,
    cls: &Bound<'py, PyType>,
    types: &Bound<'py, PyTuple>,
    follows: Option<(u64, u64, u64)>,
) -> PyResult<(Bound<'py, PyList>, usize)> {
    let maker = Maker::new(cls, types)?;
    let py = buf.py();
    let (ents, end) = entries::decode(buf.as_bytes(), pos).or_raise()?;
    if let Some((index, log_term, term)) = follows {
        entries::check_follows(&ents, index, log_term, term).or_raise()?;
    }
    let made = ents
        .iter()
        .map(|e| maker.make(e.term, e.index, e.kind, PyBytes::new(py, e.data).into_any()))
        .collect::<PyResult<Vec<_>>>()?;
    Ok((PyList::new(py, made)?, end))
}

/// `cls(term, first + i, types[kind], bytes(datas[i]))` for every data: a leader's new entries.
#[pyfunction]
pub fn make_entries<'py>(
    cls: &Bound<'py, PyType>,
    types: &Bound<'py, PyTuple>,
    term: u64,
    first: u64,
    kind: u8,
    datas: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let maker = Maker::new(cls, types)?;
    if kind > entries::MAX_ENTRY_TYPE {
        return Err(encode_error("type".into(), "is not an entry type"));
    }
    let mut made = Vec::new();
    for (i, data) in datas.try_iter()?.enumerate() {
        let index = first
            .checked_add(i as u64)
            .ok_or_else(|| encode_error(format!("entries[{i}]"), "index overflows a u64"))?;
        made.push(maker.make(term, index, kind, entry_data(i, data?)?.into_any())?);
    }
    PyList::new(maker.py, made)
}

/// The longest prefix of `entries` whose sizes (`len(data) + overhead` each) sum to at most
/// `max_bytes` (0: no limit), never fewer than one entry: `(count, its size)`. Raft's batching and
/// flow control measure every append with it.
#[pyfunction]
pub fn entries_prefix(entries: &Bound<'_, PyAny>, max_bytes: u64, overhead: u64) -> PyResult<(usize, u64)> {
    let (mut count, mut size) = (0usize, 0u64);
    for item in entries.try_iter()? {
        let item = item?;
        let t = item.cast::<PyTuple>().ok().filter(|t| t.len() == 4);
        let data = t.ok_or_else(|| PyTypeError::new_err("entries must be Entry tuples"))?.get_item(3)?;
        // Saturating: a caller's overhead near u64::MAX must not wrap to a small size.
        let next = size.saturating_add(data.len()? as u64).saturating_add(overhead);
        if max_bytes != 0 && next > max_bytes && count > 0 {
            break;
        }
        (count, size) = (count + 1, next);
    }
    Ok((count, size))
}
