//! The canonical codec: values to and from Python objects, transactions, headers and blocks.

use ledgercore_native::codec::value::PathError;
use ledgercore_native::codec::{
    self, BlockHeader, Transaction, TxFields, Value, MAX_CHAIN_ID_LEN, MAX_DEPTH, MAX_NAME_LEN, MAX_TX_SIZE,
};
use ledgercore_native::{Digest, Error, Suite, DIGEST_LEN};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyInt, PyList, PyString, PyTuple};

use crate::errors::{to_py, type_name, OrRaise};
use crate::rows::{copied_bytes, Rows};

/// Why a Python object cannot become a value: a type or range problem (with its path), or an
/// exception Python raised while we looked.
enum Fail {
    Path(PathError),
    Py(PyErr),
}

impl From<PyErr> for Fail {
    fn from(err: PyErr) -> Self {
        Fail::Py(err)
    }
}

impl Fail {
    fn in_key(self, key: &str) -> Self {
        match self {
            Fail::Path(p) => Fail::Path(p.in_key(key)),
            other => other,
        }
    }

    fn in_index(self, i: usize) -> Self {
        match self {
            Fail::Path(p) => Fail::Path(p.in_index(i)),
            other => other,
        }
    }

    fn into_py(self, root: &str) -> PyErr {
        match self {
            Fail::Path(p) => to_py(p.into_error(root)),
            Fail::Py(e) => e,
        }
    }
}

fn fail(reason: impl Into<String>) -> Fail {
    Fail::Path(PathError::new(reason))
}

fn too_deep() -> Fail {
    fail(format!("lists and maps nest more than {MAX_DEPTH} deep"))
}

fn text(s: &Bound<'_, PyString>) -> Result<String, Fail> {
    s.to_str().map(str::to_owned).map_err(|_| fail("str is not encodable as UTF-8 (it holds a lone surrogate)"))
}

/// Python object -> value: None, bool, int (i64), bytes/bytearray/memoryview, str, list/tuple,
/// dict with str keys (sorted by UTF-8 bytes). Anything else fails naming its type and path.
fn to_value(obj: &Bound<'_, PyAny>, depth: usize) -> Result<Value, Fail> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        return obj.extract::<i64>().map(Value::Int).map_err(|_| {
            fail(format!(
                "int {} is outside the i64 range [-2**63, 2**63 - 1]",
                obj.str().map(|s| s.to_string()).unwrap_or_default()
            ))
        });
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Value::Bytes(b.as_bytes().to_vec()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return text(s).map(Value::Str);
    }
    if let Some(copy) = copied_bytes(obj) {
        return copy.map(Value::Bytes).map_err(|err| fail(format!("bytes-like value: {err}")));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        if depth >= MAX_DEPTH {
            return Err(too_deep());
        }
        let mut entries = Vec::with_capacity(d.len());
        for (k, v) in d.iter() {
            let key = match k.cast::<PyString>() {
                Ok(k) => text(k)?,
                Err(_) => {
                    let shown = k.repr().map(|r| r.to_string()).unwrap_or_default();
                    return Err(fail(format!("map key {shown} is {}, not str", type_name(&k))));
                }
            };
            let value = to_value(&v, depth + 1).map_err(|e| e.in_key(&key))?;
            entries.push((key, value));
        }
        return Value::map(entries).map_err(Fail::Path);
    }
    let items = if let Ok(l) = obj.cast::<PyList>() {
        Some(l.iter().collect::<Vec<_>>())
    } else if let Ok(t) = obj.cast::<PyTuple>() {
        Some(t.iter().collect::<Vec<_>>())
    } else {
        None
    };
    if let Some(items) = items {
        if depth >= MAX_DEPTH {
            return Err(too_deep());
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(to_value(item, depth + 1).map_err(|e| e.in_index(i))?);
        }
        return Ok(Value::List(out));
    }
    Err(fail(format!("{} is not encodable", type_name(obj))))
}

fn encode_object(obj: &Bound<'_, PyAny>, root: &str) -> PyResult<Vec<u8>> {
    let value = to_value(obj, 0).map_err(|f| f.into_py(root))?;
    let mut out = Vec::new();
    value.encode_into(&mut out, root).or_raise()?;
    Ok(out)
}

fn to_py_value<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Int(n) => n.into_pyobject(py)?.into_any(),
        Value::Bytes(b) => PyBytes::new(py, b).into_any(),
        Value::Str(s) => PyString::new(py, s).into_any(),
        Value::List(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py_value(py, item)?)?;
            }
            list.into_any()
        }
        Value::Map(entries) => {
            let dict = PyDict::new(py);
            for (k, v) in entries {
                dict.set_item(PyString::new(py, k), to_py_value(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// The canonical encoding of a Python value.
#[pyfunction]
pub fn encode_value<'py>(py: Python<'py>, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, &encode_object(obj, "value")?))
}

/// The Python value of a canonical encoding (maps become dicts, lists lists).
#[pyfunction]
pub fn decode_value<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let value = Value::decode(data).or_raise()?;
    to_py_value(py, &value)
}

/// `(name, scheme, hash, code, public_key_size)` of every suite, in code order.
#[pyfunction]
pub fn suites() -> Vec<(&'static str, &'static str, &'static str, u8, usize)> {
    Suite::ALL.iter().map(|s| (s.name(), s.scheme().name(), s.hash().name(), s.code(), s.public_key_len())).collect()
}

fn uint<T: TryFrom<u64>>(obj: &Bound<'_, PyAny>, what: &str, max: &str) -> PyResult<T> {
    obj.extract::<u64>().ok().and_then(|n| T::try_from(n).ok()).ok_or_else(|| {
        let shown = obj.repr().map(|r| r.to_string()).unwrap_or_default();
        to_py(Error::Encode { what: what.into(), reason: format!("must be an int in 0..={max}, got {shown}") })
    })
}

const U64_MAX: &str = "2**64 - 1";

fn digest(bytes: &[u8], what: &'static str) -> PyResult<Digest> {
    bytes.try_into().map_err(|_| to_py(Error::BadLength { what, expected: DIGEST_LEN, got: bytes.len() }))
}

/// The payload (signed bytes) of a version-1 transaction. `args` must be a dict.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn encode_tx_payload<'py>(
    py: Python<'py>,
    suite: &str,
    chain_id: &str,
    sender: &[u8],
    nonce: &Bound<'py, PyAny>,
    timestamp: &Bound<'py, PyAny>,
    contract: &str,
    method: &str,
    args: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let suite = Suite::from_name(suite).or_raise()?;
    if !args.is_instance_of::<PyDict>() {
        return Err(to_py(Error::Encode {
            what: "args".into(),
            reason: format!("must be a dict, got {}", type_name(args)),
        }));
    }
    let args = encode_object(args, "args")?;
    let fields = TxFields {
        suite,
        chain_id,
        sender,
        nonce: uint(nonce, "nonce", U64_MAX)?,
        timestamp: uint(timestamp, "timestamp", U64_MAX)?,
        contract,
        method,
        args: &args,
    };
    Ok(PyBytes::new(py, &fields.encode_payload().or_raise()?))
}

type TxTuple<'py> = (
    &'static str,
    Bound<'py, PyString>,
    Bound<'py, PyBytes>,
    u64,
    u64,
    Bound<'py, PyString>,
    Bound<'py, PyString>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    usize,
    Bound<'py, PyBytes>,
);

/// `(suite, chain_id, sender, nonce, timestamp, contract, method, args, signature, payload_len, id)`
/// of a whole transaction encoding; `args` is the canonical encoding of the args map.
#[pyfunction]
pub fn decode_tx<'py>(py: Python<'py>, raw: &[u8]) -> PyResult<TxTuple<'py>> {
    let tx = Transaction::decode_slice(raw).or_raise()?;
    Ok((
        tx.suite().name(),
        PyString::new(py, tx.chain_id()),
        PyBytes::new(py, tx.sender()),
        tx.nonce(),
        tx.timestamp(),
        PyString::new(py, tx.contract()),
        PyString::new(py, tx.method()),
        PyBytes::new(py, tx.args().bytes()),
        PyBytes::new(py, tx.signature()),
        tx.payload().len(),
        PyBytes::new(py, tx.id()),
    ))
}

#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn encode_header<'py>(
    py: Python<'py>,
    suite: &str,
    chain_id: &str,
    height: &Bound<'py, PyAny>,
    prev_hash: &[u8],
    tx_root: &[u8],
    state_root: &[u8],
    history_root: &[u8],
    receipts_root: &[u8],
    timestamp: &Bound<'py, PyAny>,
    proposer: &[u8],
    tx_count: &Bound<'py, PyAny>,
    consensus: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let header = BlockHeader {
        suite: Suite::from_name(suite).or_raise()?,
        chain_id: chain_id.to_owned(),
        height: uint(height, "height", U64_MAX)?,
        prev_hash: digest(prev_hash, "prev_hash")?,
        tx_root: digest(tx_root, "tx_root")?,
        state_root: digest(state_root, "state_root")?,
        history_root: digest(history_root, "history_root")?,
        // Empty: a version 1 header, as blocks written before receipts roots have.
        receipts_root: if receipts_root.is_empty() { None } else { Some(digest(receipts_root, "receipts_root")?) },
        timestamp: uint(timestamp, "timestamp", U64_MAX)?,
        proposer: proposer.to_vec(),
        tx_count: uint(tx_count, "tx_count", "2**32 - 1")?,
        consensus: consensus.to_vec(),
    };
    Ok(PyBytes::new(py, &header.encode().or_raise()?))
}

type HeaderTuple<'py> = (
    &'static str,
    Bound<'py, PyString>,
    u64,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    u64,
    Bound<'py, PyBytes>,
    u32,
    Bound<'py, PyBytes>,
);

fn header_tuple<'py>(py: Python<'py>, h: &BlockHeader) -> HeaderTuple<'py> {
    (
        h.suite.name(),
        PyString::new(py, &h.chain_id),
        h.height,
        PyBytes::new(py, &h.prev_hash),
        PyBytes::new(py, &h.tx_root),
        PyBytes::new(py, &h.state_root),
        PyBytes::new(py, &h.history_root),
        PyBytes::new(py, h.receipts_root.as_ref().map_or(&[][..], |r| &r[..])),
        h.timestamp,
        PyBytes::new(py, &h.proposer),
        h.tx_count,
        PyBytes::new(py, &h.consensus),
    )
}

/// `(suite, chain_id, height, prev_hash, tx_root, state_root, history_root, receipts_root,
/// timestamp, proposer, tx_count, consensus)` of a header encoding (receipts_root empty in a
/// version 1 header).
#[pyfunction]
pub fn decode_header<'py>(py: Python<'py>, raw: &[u8]) -> PyResult<HeaderTuple<'py>> {
    let header = BlockHeader::decode(raw).or_raise()?;
    Ok(header_tuple(py, &header))
}

/// A block from a header encoding and the raw transactions (their count must be the header's).
#[pyfunction]
pub fn encode_block<'py>(py: Python<'py>, header: &[u8], raws: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let header = BlockHeader::decode(header).or_raise()?;
    let rows = Rows::extract(raws, "raws")?;
    let slices = rows.slices();
    let frame = codec::BlockFrame::new(&header, &slices).or_raise()?;
    // Written straight into the new bytes object (not yet visible to any other code).
    PyBytes::new_with(py, frame.encoded_len(), |out| {
        py.detach(|| frame.write(out));
        Ok(())
    })
}

/// `(header fields, header encoding, raw transactions)` of a block encoding.
#[pyfunction]
pub fn decode_block<'py>(
    py: Python<'py>,
    data: &[u8],
) -> PyResult<(HeaderTuple<'py>, Bound<'py, PyBytes>, Vec<Bound<'py, PyBytes>>)> {
    let block = codec::decode_block(data).or_raise()?;
    let txs = block.txs.iter().map(|raw| PyBytes::new(py, raw)).collect();
    Ok((header_tuple(py, &block.header), PyBytes::new(py, block.header_bytes), txs))
}

/// Size limits of the format, as module constants.
pub fn add_constants(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("MAX_TX_SIZE", MAX_TX_SIZE)?;
    m.add("MAX_VALUE_DEPTH", MAX_DEPTH)?;
    m.add("MAX_NAME_LEN", MAX_NAME_LEN)?;
    m.add("MAX_CHAIN_ID_LEN", MAX_CHAIN_ID_LEN)?;
    Ok(())
}
