//! `ledgercore._native`: the Python face of the native core. Every batch call releases the GIL.

mod codec;
mod contracts;
mod errors;
mod hashing;
mod key_values;
mod ledger;
mod locator;
mod merkle;
mod nonce_runs;
mod raft;
mod rows;
mod signature_check;
mod signing;
mod state_overlay;
mod txbatch;
mod txgen;

use pyo3::prelude::*;

/// Sizes rayon's global pool, and so signature checks' own pool, from `LEDGERCORE_THREADS` (default: all cores).
fn configure_threads() -> PyResult<()> {
    let Ok(raw) = std::env::var("LEDGERCORE_THREADS") else {
        return Ok(());
    };
    let threads: usize =
        raw.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            errors::malformed("LEDGERCORE_THREADS", format!("must be a positive integer, got {raw:?}"))
        })?;
    // Fails only if the pool already exists (module initialised twice); the first size stands.
    let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
    Ok(())
}

/// Worker threads batch calls run on.
#[pyfunction]
fn thread_count() -> usize {
    rayon::current_num_threads()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    configure_threads()?;
    m.add_function(wrap_pyfunction!(thread_count, m)?)?;
    m.add_function(wrap_pyfunction!(hashing::hash_digest, m)?)?;
    m.add_function(wrap_pyfunction!(hashing::hash_many, m)?)?;
    m.add_function(wrap_pyfunction!(signing::verify, m)?)?;
    m.add_function(wrap_pyfunction!(signing::verify_batch, m)?)?;
    m.add_function(wrap_pyfunction!(merkle::merkle_root, m)?)?;
    m.add_function(wrap_pyfunction!(merkle::merkle_verify_inclusion, m)?)?;
    m.add_function(wrap_pyfunction!(merkle::merkle_verify_consistency, m)?)?;
    m.add_function(wrap_pyfunction!(ledger::check_contract_name, m)?)?;
    m.add_function(wrap_pyfunction!(ledger::state_key, m)?)?;
    m.add_function(wrap_pyfunction!(ledger::first_outside_namespace, m)?)?;
    m.add("MAX_STATE_KEY_LEN", ledgercore_native::ledger::keys::MAX_STATE_KEY_LEN)?;
    m.add_function(wrap_pyfunction!(nonce_runs::nonce_heads, m)?)?;
    m.add_function(wrap_pyfunction!(nonce_runs::nonce_lookups, m)?)?;
    m.add_function(wrap_pyfunction!(nonce_runs::nonce_update, m)?)?;
    m.add_function(wrap_pyfunction!(nonce_runs::nonce_runs_of_used, m)?)?;
    m.add_function(wrap_pyfunction!(ledger::stage_block_entries, m)?)?;
    m.add_function(wrap_pyfunction!(ledger::state_root, m)?)?;
    m.add_function(wrap_pyfunction!(ledger::sorted_keys, m)?)?;
    m.add_function(wrap_pyfunction!(ledger::history_values, m)?)?;
    m.add_function(wrap_pyfunction!(ledger::replaced_entry_fault, m)?)?;
    m.add_function(wrap_pyfunction!(locator::id_positions, m)?)?;
    m.add_function(wrap_pyfunction!(locator::merge_runs, m)?)?;
    m.add_function(wrap_pyfunction!(contracts::run_builtin, m)?)?;
    m.add_function(wrap_pyfunction!(codec::suites, m)?)?;
    m.add_function(wrap_pyfunction!(codec::encode_value, m)?)?;
    m.add_function(wrap_pyfunction!(codec::decode_value, m)?)?;
    m.add_function(wrap_pyfunction!(codec::encode_tx_payload, m)?)?;
    m.add_function(wrap_pyfunction!(codec::decode_tx, m)?)?;
    m.add_function(wrap_pyfunction!(codec::encode_header, m)?)?;
    m.add_function(wrap_pyfunction!(codec::decode_header, m)?)?;
    m.add_function(wrap_pyfunction!(codec::encode_block, m)?)?;
    m.add_function(wrap_pyfunction!(codec::decode_block, m)?)?;
    m.add_function(wrap_pyfunction!(raft::encode_entries, m)?)?;
    m.add_function(wrap_pyfunction!(raft::decode_entries, m)?)?;
    m.add_function(wrap_pyfunction!(raft::make_entries, m)?)?;
    m.add_function(wrap_pyfunction!(raft::entries_prefix, m)?)?;
    m.add_function(wrap_pyfunction!(txbatch::decode_txs, m)?)?;
    m.add_function(wrap_pyfunction!(txgen::make_txs, m)?)?;
    codec::add_constants(m)?;
    m.add_class::<txbatch::TxBatch>()?;
    m.add_class::<signing::SecretKey>()?;
    m.add_class::<merkle::MerkleLog>()?;
    m.add_class::<locator::TxLocator>()?;
    m.add_class::<state_overlay::StateOverlay>()?;
    m.add_class::<key_values::KeyValues>()?;
    m.add_class::<signature_check::SignatureCheck>()?;
    m.add("CHECK_THREAD_NAME", ledgercore_native::signature::CHECK_THREAD_NAME)?;
    Ok(())
}
