//! Pure pieces of the ledger's commit path: key layouts, the block's write set turned into store
//! entries, the state commitment, the senders' used nonces, and where committed transactions
//! are. The store itself (LMDB) lives in Python.

pub mod commitment;
pub mod keys;
pub mod locator;
pub mod locator_run;
pub mod nonce_runs;
pub mod slab_map;
pub mod state_overlay;
pub mod writes;
