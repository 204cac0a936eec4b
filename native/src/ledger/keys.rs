//! Byte layouts of the ledger's store keys. Changing any of these changes the on-disk format.

/// Length of a version: `u64 height || u32 tx index`, big-endian so versions sort by age.
pub const VERSION_LEN: usize = 12;
/// Length of a change id: `u64 height || u32 tx index || u32 write ordinal` (the write's position
/// among its block's writes). It keys the `history` table, so each block appends its changes after
/// every earlier block's, and a state entry names its key's latest change with it.
pub const CHANGE_ID_LEN: usize = 16;
/// Longest namespaced state key, `contract "/" key`: the `state` table is keyed by it, and LMDB
/// keys are at most 511 bytes (a key that passed execution but not the fold into `state` would
/// stop every later write). It also fits a history entry's u16 key length.
pub const MAX_STATE_KEY_LEN: usize = 511;

/// Position of the first of `keys` outside `contract`'s namespace (not `contract "/" ...`), if any.
pub fn first_outside_namespace<K: AsRef<[u8]>>(contract: &str, keys: &[K]) -> Option<usize> {
    let inside = |k: &[u8]| k.len() > contract.len() && k.starts_with(contract.as_bytes()) && k[contract.len()] == b'/';
    keys.iter().position(|k| !inside(k.as_ref()))
}

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

/// The version followed by the write ordinal. Never all zeros: height 0 (genesis) writes nothing,
/// so zeros can stand for "no change".
pub fn change_id(height: u64, index: u32, ordinal: u32) -> [u8; CHANGE_ID_LEN] {
    let mut out = [0u8; CHANGE_ID_LEN];
    out[..VERSION_LEN].copy_from_slice(&version(height, index));
    out[VERSION_LEN..].copy_from_slice(&ordinal.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_ids_sort_by_height_then_tx_then_ordinal() {
        let ids =
            [change_id(1, 0, 7), change_id(1, 2, 0), change_id(1, 2, 1), change_id(2, 0, 0), change_id(256, 0, 0)];
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(&change_id(3, 4, 5)[..VERSION_LEN], &version(3, 4));
    }

    #[test]
    fn a_namespace_is_the_name_and_a_slash() {
        let keys: [&[u8]; 3] = [b"reg/a", b"reg/", b"reg/b/c"];
        assert_eq!(first_outside_namespace("reg", &keys), None);
        for outside in [&b"regx/a"[..], b"re/g", b"reg", b"evidence/reg/a", b""] {
            assert_eq!(first_outside_namespace("reg", &[&b"reg/a"[..], outside]), Some(1), "{outside:?}");
        }
    }
}
