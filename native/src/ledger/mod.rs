//! Pure pieces of the ledger's commit path: key layouts, the block's write set turned into store
//! entries, the state commitment, and first-use checks. The store itself (LMDB) lives in Python.

pub mod commitment;
pub mod fresh;
pub mod keys;
pub mod writes;
