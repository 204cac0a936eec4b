use super::*;

const SCHEMES: [Scheme; 3] = [Scheme::Ed25519, Scheme::Sm2, Scheme::P256];

fn key(scheme: Scheme, i: u8) -> SecretKey {
    SecretKey::from_bytes(scheme, &[i.max(1); 32]).unwrap()
}

#[test]
fn rfc8032_test_1() {
    let seed = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60").unwrap();
    let k = SecretKey::from_bytes(Scheme::Ed25519, &seed).unwrap();
    assert_eq!(hex::encode(k.public_key()), "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    assert_eq!(
        hex::encode(k.sign(b"")),
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    );
}

#[test]
fn sign_then_verify_and_tamper() {
    for scheme in SCHEMES {
        let k = key(scheme, 7);
        let pk = k.public_key();
        assert_eq!(pk.len(), scheme.public_key_len());
        let sig = k.sign(b"message");
        assert!(scheme.verify(&pk, b"message", &sig).unwrap());
        assert!(!scheme.verify(&pk, b"messagf", &sig).unwrap());
        let mut bad = sig;
        bad[10] ^= 1;
        assert!(!scheme.verify(&pk, b"message", &bad).unwrap());
        assert!(scheme.verify(&pk[1..], b"message", &sig).is_err());
        assert!(scheme.verify(&pk, b"message", &sig[1..]).is_err());
        assert_eq!(SecretKey::from_bytes(scheme, &k.to_bytes()).unwrap().public_key(), pk);
    }
}

#[test]
fn ecdsa_secret_scalar_out_of_range_is_an_error() {
    for scheme in [Scheme::Sm2, Scheme::P256] {
        assert!(SecretKey::from_bytes(scheme, &[0u8; 32]).is_err());
        assert!(SecretKey::from_bytes(scheme, &[0xffu8; 32]).is_err());
    }
    // SM2 keys must be in [1, n - 2] (GB/T 32918.1): d = n - 1 has no (1 + d)^-1 and could not sign.
    let n_minus_1 = hex::decode("fffffffeffffffffffffffffffffffff7203df6b21c6052b53bbf40939d54122").unwrap();
    assert!(matches!(SecretKey::from_bytes(Scheme::Sm2, &n_minus_1), Err(Error::InvalidKey { .. })));
    let n_minus_2 = hex::decode("fffffffeffffffffffffffffffffffff7203df6b21c6052b53bbf40939d54121").unwrap();
    let k = SecretKey::from_bytes(Scheme::Sm2, &n_minus_2).unwrap();
    assert!(Scheme::Sm2.verify(&k.public_key(), b"m", &k.sign(b"m")).unwrap());
}

#[test]
fn batch_marks_exactly_the_bad_signatures() {
    for scheme in SCHEMES {
        let n = if scheme == Scheme::Ed25519 { 3000 } else { 300 };
        let keys: Vec<SecretKey> = (1..=20).map(|i| key(scheme, i)).collect();
        let msgs: Vec<Vec<u8>> = (0..n).map(|i| (i as u32).to_be_bytes().to_vec()).collect();
        let pks: Vec<Vec<u8>> = (0..n).map(|i| keys[i % 20].public_key()).collect();
        let mut sigs: Vec<[u8; 64]> = (0..n).map(|i| keys[i % 20].sign(&msgs[i])).collect();
        let bad = [0usize, 17, n / 2, n - 1];
        for &b in &bad {
            sigs[b][33] ^= 0x40;
        }
        for spread in [Spread::AllThreads, Spread::OneThread] {
            let got = scheme.verify_batch(&pks, &msgs, &sigs, [9; 32], spread).unwrap();
            for i in 0..n {
                assert_eq!(got[i], !bad.contains(&i), "{scheme:?} {spread:?} item {i}");
                if i % 97 == 0 {
                    assert_eq!(got[i], scheme.verify(&pks[i], &msgs[i], &sigs[i]).unwrap());
                }
            }
        }
    }
}

/// Groups are cut from the items in sender order, not by position: whatever the group count,
/// each answer lands at its own item (senders interleaved, bad signatures of several senders).
#[test]
fn batch_groups_by_sender_answer_each_item_in_place() {
    let n = 2000;
    let keys: Vec<SecretKey> = (1..=37).map(|i| key(Scheme::Ed25519, i)).collect();
    let msgs: Vec<Vec<u8>> = (0..n).map(|i| (i as u32).to_le_bytes().to_vec()).collect();
    let pks: Vec<Vec<u8>> = (0..n).map(|i| keys[(i * 7) % 37].public_key()).collect();
    let mut sigs: Vec<[u8; 64]> = (0..n).map(|i| keys[(i * 7) % 37].sign(&msgs[i])).collect();
    let bad = [3usize, 4, 700, 1311, 1999];
    for &b in &bad {
        sigs[b][40] ^= 0x08;
    }
    for parts in [1, 2, 3, 8] {
        let got = ed25519::verify_batch(&pks, &msgs, &sigs, [5; 32], parts);
        let wrong: Vec<usize> = (0..n).filter(|&i| got[i] == bad.contains(&i)).collect();
        assert!(wrong.is_empty(), "{parts} groups: wrong answers at {wrong:?}");
    }
}

#[test]
fn batch_rejects_ragged_columns_and_bad_lengths() {
    let k = key(Scheme::Ed25519, 1);
    let pk = k.public_key();
    let sig = k.sign(b"m");
    assert!(Scheme::Ed25519
        .verify_batch(&[&pk[..]], &[b"m"], &[&sig[..], &sig[..]], [0; 32], Spread::AllThreads)
        .is_err());
    let err = Scheme::Ed25519.verify_batch(
        &[&pk[..], &pk[..31]],
        &[b"m", b"m"],
        &[&sig[..], &sig[..]],
        [0; 32],
        Spread::AllThreads,
    );
    assert!(err.unwrap_err().to_string().contains("item 1"));
    assert!(Scheme::Ed25519
        .verify_batch::<&[u8], &[u8], &[u8]>(&[], &[], &[], [0; 32], Spread::OneThread)
        .unwrap()
        .is_empty());
}

/// Every point of small order is one of the eight-torsion points, and ZIP-215 decodes a point from
/// its y or y + p (where that is below 2^255) with either sign bit (for x = 0 both name the point;
/// otherwise the other bit names -P, itself of small order): the candidates below are all the
/// encodings of small-order points, and the table must hold exactly those that decode.
#[test]
fn small_order_keys_are_exactly_the_encodings_of_the_eight_torsion_points() {
    use curve25519_dalek::constants::EIGHT_TORSION;
    use curve25519_dalek::edwards::CompressedEdwardsY;
    use ed25519_zebra::{VerificationKey, VerificationKeyBytes};
    use std::collections::BTreeSet;

    const P_LE: [u8; 32] = {
        let mut p = [0xff; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        p
    };
    fn add_p(y: [u8; 32]) -> Option<[u8; 32]> {
        let (mut out, mut carry) = ([0u8; 32], 0u16);
        for i in 0..32 {
            let sum = u16::from(y[i]) + u16::from(P_LE[i]) + carry;
            out[i] = sum as u8;
            carry = sum >> 8;
        }
        (carry == 0 && out[31] & 0x80 == 0).then_some(out)
    }
    let mut derived = BTreeSet::new();
    for point in EIGHT_TORSION.iter() {
        let mut y = point.compress().to_bytes();
        y[31] &= 0x7f;
        for y in [Some(y), add_p(y)].into_iter().flatten() {
            for sign in [0u8, 0x80] {
                let mut enc = y;
                enc[31] |= sign;
                let decodes = VerificationKey::try_from(VerificationKeyBytes::from(enc)).is_ok();
                let small = CompressedEdwardsY(enc).decompress().is_some_and(|p| p.is_small_order());
                if decodes && small {
                    derived.insert(enc);
                }
            }
        }
    }
    let table: BTreeSet<[u8; 32]> = super::ed25519::SMALL_ORDER_KEYS.iter().copied().collect();
    assert_eq!(table.len(), super::ed25519::SMALL_ORDER_KEYS.len(), "duplicates in the table");
    assert_eq!(derived, table);
    // Why they are refused: a signature with R of small order and s = 0 verifies under each, for any message.
    let mut forged = [0u8; 64];
    forged[0] = 1; // R = the identity
    for key in &table {
        assert!(Scheme::Ed25519.names_no_signer(key));
        for message in [&b""[..], b"anything at all"] {
            assert!(Scheme::Ed25519.verify(key, message, &forged).unwrap(), "{}", hex::encode(key));
        }
    }
    let real = SecretKey::from_bytes(Scheme::Ed25519, &[7; 32]).unwrap().public_key();
    assert!(!Scheme::Ed25519.names_no_signer(&real));
    assert!(!Scheme::Sm2.names_no_signer(&[4; 65]) && !Scheme::P256.names_no_signer(&[4; 65]));
}
