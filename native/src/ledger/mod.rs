//! Pure pieces of the ledger's commit path: key layouts, the block's write set turned into store
//! entries, the state commitment, first-use checks, and where committed transactions are. The
//! store itself (LMDB) lives in Python.

pub mod commitment;
pub mod fresh;
pub mod keys;
pub mod locator;
pub mod locator_run;
pub mod state_overlay;
pub mod writes;
