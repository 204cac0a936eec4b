use super::*;
use crate::hash::HashAlgo;

const ALGOS: [HashAlgo; 3] = [HashAlgo::Blake3, HashAlgo::Sha256, HashAlgo::Sm3];

/// RFC 9162's recursive MTH, written straight from the definition as an independent reference.
fn mth(algo: HashAlgo, leaves: &[Vec<u8>]) -> Digest {
    match leaves.len() {
        0 => empty_root(algo),
        1 => leaf_hash(algo, &leaves[0]),
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(algo, &mth(algo, &leaves[..k]), &mth(algo, &leaves[k..]))
        }
    }
}

fn leaves(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("leaf-{i}").into_bytes()).collect()
}

#[test]
fn roots_match_the_recursive_definition_for_every_prefix() {
    for algo in ALGOS {
        let data = leaves(70);
        let log = MerkleLog::from_leaves(algo, &data);
        for size in 0..=70 {
            assert_eq!(log.root(size as u64).unwrap(), mth(algo, &data[..size]), "{algo:?} size {size}");
        }
    }
}

#[test]
fn append_one_by_one_equals_bulk_extend() {
    let data = leaves(9000);
    let bulk = MerkleLog::from_leaves(HashAlgo::Sha256, &data);
    let mut single = MerkleLog::new(HashAlgo::Sha256);
    for (i, leaf) in data.iter().enumerate() {
        assert_eq!(single.append(leaf), i as u64);
    }
    let mut mixed = MerkleLog::new(HashAlgo::Sha256);
    mixed.extend(&data[..4999]);
    mixed.extend(&data[4999..]);
    for size in [0u64, 1, 2, 3, 4097, 8192, 9000] {
        let want = bulk.root(size).unwrap();
        assert_eq!(single.root(size).unwrap(), want);
        assert_eq!(mixed.root(size).unwrap(), want);
    }
}

#[test]
fn every_inclusion_proof_verifies_and_tampering_fails() {
    for algo in ALGOS {
        let data = leaves(33);
        let log = MerkleLog::from_leaves(algo, &data);
        for size in 1..=33u64 {
            let root = log.root(size).unwrap();
            for index in 0..size {
                let proof = log.inclusion_proof(index, size).unwrap();
                let leaf = &data[index as usize];
                assert!(verify_inclusion(algo, leaf, index, size, &proof, &root));
                assert!(!verify_inclusion(algo, b"other", index, size, &proof, &root));
                if size > 1 {
                    assert!(!verify_inclusion(algo, leaf, (index + 1) % size, size, &proof, &root));
                }
                for i in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[i][7] ^= 1;
                    assert!(!verify_inclusion(algo, leaf, index, size, &bad, &root));
                }
            }
        }
    }
}

#[test]
fn every_consistency_proof_verifies_and_tampering_fails() {
    for algo in ALGOS {
        let log = MerkleLog::from_leaves(algo, &leaves(40));
        for new in 0..=40u64 {
            let new_root = log.root(new).unwrap();
            for old in 0..=new {
                let old_root = log.root(old).unwrap();
                let proof = log.consistency_proof(old, new).unwrap();
                assert!(verify_consistency(algo, old, new, &old_root, &new_root, &proof), "{old}->{new}");
                for i in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[i][0] ^= 0x80;
                    assert!(!verify_consistency(algo, old, new, &old_root, &new_root, &bad));
                }
                if new == 0 {
                    // Both trees empty: the new root must be the empty tree's too.
                    assert!(!verify_consistency(algo, 0, 0, &old_root, &log.root(1).unwrap(), &proof));
                }
                if old > 0 && old < new {
                    let wrong_old = log.root(old - 1).unwrap();
                    assert!(!verify_consistency(algo, old, new, &wrong_old, &new_root, &proof));
                }
            }
        }
    }
}

#[test]
fn out_of_range_requests_are_errors() {
    let log = MerkleLog::from_leaves(HashAlgo::Sha256, &leaves(5));
    assert!(log.root(6).is_err());
    assert!(log.inclusion_proof(5, 5).is_err());
    assert!(log.inclusion_proof(0, 0).is_err());
    assert!(log.consistency_proof(4, 3).is_err());
    assert!(log.consistency_proof(1, 6).is_err());
}

#[test]
fn serialisation_round_trips_and_rejects_garbage() {
    let log = MerkleLog::from_leaves(HashAlgo::Sm3, &leaves(1000));
    let bytes = log.to_bytes();
    let back = MerkleLog::from_bytes(&bytes).unwrap();
    assert_eq!(back.size(), 1000);
    assert_eq!(back.root(1000).unwrap(), log.root(1000).unwrap());
    assert_eq!(back.algo(), HashAlgo::Sm3);
    assert!(MerkleLog::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    assert!(MerkleLog::from_bytes(b"nonsense").is_err());
    let mut wrong_algo = bytes.clone();
    wrong_algo[5] = 9;
    assert!(MerkleLog::from_bytes(&wrong_algo).is_err());
}

#[test]
fn root_from_leaves_matches_the_definition_and_the_log() {
    for algo in ALGOS {
        let data = leaves(300);
        for size in 0..=300 {
            assert_eq!(root(algo, &data[..size]), mth(algo, &data[..size]), "{algo:?} size {size}");
        }
    }
    // Sizes above the sequential cut-off take the parallel path: aligned, unaligned, and odd.
    let cut = root::SEQUENTIAL_MAX_LEAVES;
    let data = leaves(4 * cut + 4097);
    let log = MerkleLog::from_leaves(HashAlgo::Sha256, &data);
    for size in [cut, cut + 1, 2 * cut, 2 * cut + 999, 4 * cut, data.len()] {
        assert_eq!(root(HashAlgo::Sha256, &data[..size]), log.root(size as u64).unwrap(), "size {size}");
    }
}
