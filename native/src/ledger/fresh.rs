//! First-use checks: which keys neither exist already nor repeat an earlier key of the same batch.

use std::collections::HashSet;

/// `true` at i when `keys[i]` is not in `existing` and does not occur in `keys[..i]`.
pub fn fresh_mask<K: AsRef<[u8]>, E: AsRef<[u8]>>(keys: &[K], existing: &[E]) -> Vec<bool> {
    let mut seen: HashSet<&[u8]> = existing.iter().map(AsRef::as_ref).collect();
    keys.iter().map(|k| seen.insert(k.as_ref())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_and_existing_keys_are_not_fresh() {
        let keys: [&[u8]; 5] = [b"a", b"b", b"a", b"c", b"b"];
        let existing: [&[u8]; 1] = [b"c"];
        assert_eq!(fresh_mask(&keys, &existing), [true, true, false, false, false]);
    }
}
