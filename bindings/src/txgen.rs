//! `make_txs`: many signed transactions at once, for benchmarks, demos and bulk loads.
//!
//! Python builds each transaction in about 30 us (encode the args, sign, decode); ten million of
//! them would take longer than the ledger needs to apply them. Here the keys are loaded, and every
//! transaction encoded and signed with `TxFields::sign`, in parallel without the GIL.

use ledgercore_native::codec::TxFields;
use ledgercore_native::{Error, SecretKey, Suite};
use numpy::PyReadonlyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use rayon::prelude::*;

use crate::errors::{malformed, OrRaise};
use crate::rows::{Rows, Seq};

/// A column that is either one value for every transaction or one value per transaction.
enum Names {
    One(String),
    Each(Vec<String>),
}

impl Names {
    fn extract(obj: &Bound<'_, PyAny>, what: &'static str, n: usize) -> PyResult<Self> {
        if let Ok(s) = obj.cast::<PyString>() {
            return Ok(Self::One(s.to_str()?.to_owned()));
        }
        let Seq(each) = obj.extract::<Seq<String>>()?;
        if each.len() != n {
            return Err(malformed(what, format!("{} names for {n} transactions", each.len())));
        }
        Ok(Self::Each(each))
    }

    fn get(&self, i: usize) -> &str {
        match self {
            Self::One(s) => s,
            Self::Each(v) => &v[i],
        }
    }
}

/// Encodes and signs transaction i with `private_keys[signers[i]]` (or `private_keys[i]` when
/// `signers` is None): sender = that key's public key, `nonces[i]`, `timestamps[i]`, `contract`,
/// `methods` (one name, or one per transaction) and `args[i]` (a canonical map encoding).
/// Returns the raw transactions, in order. Any bad field raises as `Transaction.create` would.
#[pyfunction]
#[pyo3(signature = (suite, chain_id, private_keys, contract, methods, args, nonces, timestamps, signers=None))]
#[allow(clippy::too_many_arguments)]
pub fn make_txs<'py>(
    py: Python<'py>,
    suite: &str,
    chain_id: &str,
    private_keys: &Bound<'py, PyAny>,
    contract: &str,
    methods: &Bound<'py, PyAny>,
    args: &Bound<'py, PyAny>,
    nonces: PyReadonlyArray1<'py, u64>,
    timestamps: PyReadonlyArray1<'py, u64>,
    signers: Option<PyReadonlyArray1<'py, u32>>,
) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    let suite = Suite::from_name(suite).or_raise()?;
    let keys = Rows::extract(private_keys, "private_keys")?;
    let keys = keys.slices();
    let args = Rows::extract(args, "args")?;
    let args = args.slices();
    let n = args.len();
    let (nonces, timestamps) = (nonces.as_slice()?, timestamps.as_slice()?);
    let methods = Names::extract(methods, "methods", n)?;
    if nonces.len() != n || timestamps.len() != n {
        return Err(malformed(
            "make_txs",
            format!("{n} args, {} nonces, {} timestamps", nonces.len(), timestamps.len()),
        ));
    }
    let signers: Vec<usize> = match &signers {
        Some(s) => s.as_slice()?.iter().map(|&k| k as usize).collect(),
        None => (0..keys.len()).collect(),
    };
    if signers.len() != n {
        return Err(malformed("signers", format!("{} signers for {n} transactions", signers.len())));
    }
    if let Some(bad) = signers.iter().find(|&&k| k >= keys.len()) {
        return Err(malformed("signers", format!("key index {bad}, but {} private keys were given", keys.len())));
    }
    let raws = py
        .detach(|| -> Result<Vec<Vec<u8>>, Error> {
            let scheme = suite.scheme();
            let loaded: Vec<(SecretKey, Vec<u8>)> = keys
                .par_iter()
                .with_min_len(16)
                .map(|k| {
                    let key = SecretKey::from_bytes(scheme, k)?;
                    let public = key.public_key();
                    Ok((key, public))
                })
                .collect::<Result<_, Error>>()?;
            (0..n)
                .into_par_iter()
                .with_min_len(64)
                .map(|i| {
                    let (key, sender) = &loaded[signers[i]];
                    let fields = TxFields {
                        suite,
                        chain_id,
                        sender,
                        nonce: nonces[i],
                        timestamp: timestamps[i],
                        contract,
                        method: methods.get(i),
                        args: args[i],
                    };
                    Ok(fields.sign(key)?.into_raw())
                })
                .collect()
        })
        .or_raise()?;
    Ok(raws.iter().map(|raw| PyBytes::new(py, raw)).collect())
}
