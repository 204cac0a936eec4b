//! Raft's byte formats that run per entry (the state machine itself stays in Python).

pub mod entries;
