//! Byte layouts of the ledger's store keys. Changing any of these changes the on-disk format.

/// Length of a version: `u64 height || u32 tx index`, big-endian so versions sort by age.
pub const VERSION_LEN: usize = 12;
/// Longest namespaced state key: `contract "/" key` must fit the history prefix's u16 length.
pub const MAX_STATE_KEY_LEN: usize = u16::MAX as usize;

/// `contract "/" key`. Contract names are `[a-z0-9_]`, so the first `/` ends the namespace.
pub fn state_key(contract: &str, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(contract.len() + 1 + key.len());
    out.extend_from_slice(contract.as_bytes());
    out.push(b'/');
    out.extend_from_slice(key);
    out
}

pub fn version(height: u64, index: u32) -> [u8; VERSION_LEN] {
    let mut out = [0u8; VERSION_LEN];
    out[..8].copy_from_slice(&height.to_be_bytes());
    out[8..].copy_from_slice(&index.to_be_bytes());
    out
}

/// `u16 length || state key`: every history entry of one key, and no other key's, starts with it.
pub fn history_prefix(state_key: &[u8]) -> Vec<u8> {
    debug_assert!(state_key.len() <= MAX_STATE_KEY_LEN);
    let mut out = Vec::with_capacity(2 + state_key.len() + VERSION_LEN);
    out.extend_from_slice(&(state_key.len() as u16).to_be_bytes());
    out.extend_from_slice(state_key);
    out
}

/// History prefix followed by the version, so one key's changes sort oldest first.
pub fn history_key(state_key: &[u8], height: u64, index: u32) -> Vec<u8> {
    let mut out = history_prefix(state_key);
    out.extend_from_slice(&version(height, index));
    out
}

/// `sender public key || u64 nonce`: present once the sender has used that nonce.
pub fn nonce_key(sender: &[u8], nonce: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(sender.len() + 8);
    out.extend_from_slice(sender);
    out.extend_from_slice(&nonce.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keys_of_one_key_sort_by_version_and_never_collide_with_longer_keys() {
        let a = history_key(b"evidence/ab", 2, 0);
        let b = history_key(b"evidence/ab", 10, 3);
        assert!(a < b);
        let longer = history_key(b"evidence/abc", 1, 0);
        assert!(!longer.starts_with(&history_prefix(b"evidence/ab")));
        assert!(a.starts_with(&history_prefix(b"evidence/ab")));
    }
}
