use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::value::{validate, PathError};
use super::*;
use crate::error::Error;
use crate::signature::SecretKey;
use crate::suite::Suite;

fn msg(err: Error) -> String {
    err.to_string()
}

fn decode_err(data: &[u8]) -> String {
    msg(Value::decode(data).unwrap_err())
}

fn random_value(rng: &mut ChaCha20Rng, depth: usize) -> Value {
    let kind = rng.next_u32() % if depth >= 4 { 6 } else { 8 };
    let text = |rng: &mut ChaCha20Rng| {
        let alphabet = ["a", "b", "é", "中", "", "z9", "\u{1F600}", "\0"];
        (0..rng.next_u32() % 4).map(|_| alphabet[(rng.next_u32() % 8) as usize]).collect::<String>()
    };
    match kind {
        0 => Value::Null,
        1 => Value::Bool(rng.next_u32() % 2 == 0),
        2 | 3 => Value::Int(rng.next_u64() as i64),
        4 => Value::Bytes((0..rng.next_u32() % 9).map(|_| rng.next_u32() as u8).collect()),
        5 => Value::Str(text(rng)),
        6 => Value::List((0..rng.next_u32() % 4).map(|_| random_value(rng, depth + 1)).collect()),
        _ => {
            let mut entries: Vec<(String, Value)> =
                (0..rng.next_u32() % 4).map(|_| (text(rng), random_value(rng, depth + 1))).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            entries.dedup_by(|a, b| a.0 == b.0);
            Value::map(entries).unwrap()
        }
    }
}

#[test]
fn value_known_encoding() {
    let v = Value::map(vec![
        ("n".into(), Value::Int(-2)),
        ("b".into(), Value::Bytes(vec![0xab])),
        ("l".into(), Value::List(vec![Value::Null, Value::Bool(true), Value::Str("é".into())])),
    ])
    .unwrap();
    let hex = hex::encode(v.encode().unwrap());
    assert_eq!(
        hex,
        concat!(
            "0700000003",
            "0000000162",
            "0400000001ab",
            "000000016c",
            "0600000003",
            "00",
            "02",
            "0500000002c3a9",
            "000000016e",
            "03fffffffffffffffe",
        )
    );
}

#[test]
fn values_round_trip_and_every_truncation_fails() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    for _ in 0..400 {
        let v = random_value(&mut rng, 0);
        let enc = v.encode().unwrap();
        assert_eq!(Value::decode(&enc).unwrap(), v);
        validate(&enc).unwrap();
        for cut in 0..enc.len() {
            assert!(Value::decode(&enc[..cut]).is_err(), "prefix {cut} of {v:?} decoded");
            assert!(validate(&enc[..cut]).is_err());
        }
        let mut long = enc.clone();
        long.push(0);
        assert!(decode_err(&long).contains("trailing"));
    }
}

#[test]
fn value_rejects_non_canonical_maps() {
    // {"b": null, "a": null}: unsorted.
    let unsorted = hex::decode("07000000020000000162000000000161".to_owned() + "00").unwrap();
    let e = decode_err(&unsorted);
    assert!(e.contains("sorts before") && e.contains("map key #1") && e.contains("at byte 11"), "{e}");
    let dup = hex::decode("0700000002000000016100000000016100").unwrap();
    let e = decode_err(&dup);
    assert!(e.contains("repeats"), "{e}");
    // Values built out of order refuse to encode; Value::map sorts, and refuses duplicates.
    let bad = Value::Map(vec![("b".into(), Value::Null), ("a".into(), Value::Null)]);
    assert!(msg(bad.encode().unwrap_err()).contains("sorted"));
    let dup = Value::map(vec![("a".into(), Value::Null), ("a".into(), Value::Null)]).unwrap_err();
    assert!(dup.path("args").starts_with("args"));
    // Byte order, not code point order of UTF-16 or anything else: "Z" < "a" < "é".
    let v = Value::map(vec![("é".into(), Value::Null), ("a".into(), Value::Null), ("Z".into(), Value::Null)]).unwrap();
    match &v {
        Value::Map(e) => assert_eq!(e.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["Z", "a", "é"]),
        _ => unreachable!(),
    }
}

#[test]
fn value_rejects_bad_utf8_unknown_tags_and_names_paths() {
    let e = decode_err(&hex::decode("0500000002c328").unwrap());
    assert!(e.contains("not valid UTF-8") && e.contains("at byte 5"), "{e}");
    let e = decode_err(&[0x08]);
    assert!(e.contains("unknown tag 0x08") && e.contains("at byte 0"), "{e}");
    // {"meta": [null, null, <tag 9>]}
    let nested = hex::decode("0700000001000000046d6574610600000003000009").unwrap();
    let e = decode_err(&nested);
    assert!(e.contains(r#"value["meta"][2] at byte 20: unknown tag 0x09"#), "{e}");
    let e = decode_err(&hex::decode("0700000001000000026869").unwrap());
    assert!(e.contains(r#"value["hi"]"#) && e.contains("truncated"), "{e}");
}

#[test]
fn nesting_is_limited_to_max_depth() {
    let nest = |levels: usize| {
        let mut v = Value::Null;
        for _ in 0..levels {
            v = Value::List(vec![v]);
        }
        v
    };
    let ok = nest(MAX_DEPTH).encode().unwrap();
    assert_eq!(Value::decode(&ok).unwrap(), nest(MAX_DEPTH));
    assert!(msg(nest(MAX_DEPTH + 1).encode().unwrap_err()).contains("nest more than 32"));
    let mut deep = vec![0x06, 0, 0, 0, 1];
    deep.extend_from_slice(&ok);
    assert!(decode_err(&deep).contains("nest more than 32"));
}

#[test]
fn huge_counts_do_not_allocate_before_the_bytes_exist() {
    for t in [value::tag::LIST, value::tag::MAP, value::tag::BYTES, value::tag::STR] {
        let e = decode_err(&[t, 0xff, 0xff, 0xff, 0xff]);
        assert!(e.contains("truncated"), "{e}");
    }
}

#[test]
fn path_errors_render_like_code() {
    let e = PathError::new("float is not encodable").in_index(2).in_key("meta").into_error("args");
    assert_eq!(e.to_string(), r#"args["meta"][2]: float is not encodable"#);
}

// ---- transactions ----

fn key(suite: Suite, seed: u8) -> SecretKey {
    SecretKey::from_bytes(suite.scheme(), &[seed; 32]).unwrap()
}

fn args() -> Vec<u8> {
    Value::map(vec![("key".into(), Value::Str("lic/91110000".into())), ("digest".into(), Value::Bytes(vec![7; 32]))])
        .unwrap()
        .encode()
        .unwrap()
}

fn evidence_put<'a>(suite: Suite, chain_id: &'a str, sender: &'a [u8], nonce: u64, args: &'a [u8]) -> TxFields<'a> {
    TxFields { suite, chain_id, sender, nonce, timestamp: 1_700_000_000_000, contract: "evidence", method: "put", args }
}

fn signed(suite: Suite, chain_id: &str, nonce: u64) -> Transaction {
    let k = key(suite, 9);
    evidence_put(suite, chain_id, &k.public_key(), nonce, &args()).sign(&k).unwrap()
}

fn tx_err(raw: &[u8]) -> String {
    msg(Transaction::decode_slice(raw).unwrap_err())
}

#[test]
fn transactions_round_trip_for_every_suite() {
    for suite in Suite::ALL {
        let tx = signed(suite, "dev", 5);
        let again = Transaction::decode(tx.raw().to_vec()).unwrap();
        assert_eq!(again, tx);
        assert_eq!(tx.suite(), suite);
        assert_eq!(tx.chain_id(), "dev");
        assert_eq!(tx.sender(), key(suite, 9).public_key());
        assert_eq!((tx.nonce(), tx.timestamp()), (5, 1_700_000_000_000));
        assert_eq!((tx.contract(), tx.method()), ("evidence", "put"));
        assert_eq!(tx.args().bytes(), args());
        assert_eq!(&tx.raw()[tx.args_offset()..tx.args_offset() + tx.args().bytes().len()], tx.args().bytes());
        assert_eq!(tx.signature().len(), 64);
        assert_eq!(tx.payload().len() + 64, tx.raw().len());
        assert_eq!(tx.id(), &suite.hash().digest(tx.payload()));
        assert!(tx.verify());
        assert_eq!(tx.payload()[..2], [1, suite.code()]);
    }
}

#[test]
fn id_ignores_the_signature_and_a_bad_signature_does_not_verify() {
    let tx = signed(Suite::Ed25519Blake3, "dev", 1);
    let mut raw = tx.raw().to_vec();
    *raw.last_mut().unwrap() ^= 1;
    let tampered = Transaction::decode(raw).unwrap();
    assert_eq!(tampered.id(), tx.id());
    assert!(!tampered.verify());
}

#[test]
fn every_truncation_and_any_trailing_byte_is_rejected() {
    for suite in Suite::ALL {
        let raw = signed(suite, "dev", 1).into_raw();
        for cut in 0..raw.len() {
            let e = tx_err(&raw[..cut]);
            assert!(e.starts_with("transaction: ") && e.contains("truncated"), "cut {cut}: {e}");
        }
        let mut long = raw.clone();
        long.push(0);
        let e = tx_err(&long);
        assert!(e.contains("1 trailing bytes") && e.contains("after the signature"), "{e}");
    }
}

#[test]
fn transaction_field_errors_name_the_field() {
    let raw = signed(Suite::Ed25519Blake3, "dev", 1).into_raw();
    let patched = |at: usize, byte: u8| {
        let mut r = raw.clone();
        r[at] = byte;
        tx_err(&r)
    };
    assert!(patched(0, 2).contains("version at byte 0: unknown version 2"));
    let e = patched(1, 9);
    assert!(e.contains("suite at byte 1: unknown suite code 9") && e.contains("2 sm2-sm3"), "{e}");
    assert!(patched(2, 0).contains("chain id length at byte 2: 0 is outside 1..=64"));
    assert!(patched(3, 0xff).contains("chain id at byte 3: not valid UTF-8"));
    // Layout: version, suite, len 3 + "dev", 32-byte key, nonce, timestamp, then the contract name.
    let contract_at = 2 + 1 + 3 + 32 + 16;
    assert!(patched(contract_at, 0).contains("contract name length"));
    let e = patched(contract_at + 1, b'E');
    assert!(e.contains("contract name at byte 55") && e.contains("lowercase"), "{e}");
    let e = patched(contract_at + 3, b'-');
    assert!(e.contains("outside [a-z0-9_] at position 2"), "{e}");
    let method_at = contract_at + 1 + 8;
    assert!(patched(method_at + 1, b'1').contains("method name"));
    let args_at = method_at + 1 + 3 + 4;
    let e = patched(args_at, value::tag::LIST);
    assert!(e.contains("args at byte 71: must be a map, got list"), "{e}");
}

#[test]
fn a_canonical_map_is_made_only_from_one_whole_canonical_map() {
    let map = Value::map(vec![("a".into(), Value::Int(1))]).unwrap().encode().unwrap();
    assert_eq!(value::CanonicalMap::new(&map).unwrap().bytes(), &map[..]);
    let err = |data: &[u8]| value::CanonicalMap::new(data).unwrap_err().to_string();
    assert!(err(&Value::List(vec![]).encode().unwrap()).contains("must be a map, got list"));
    assert!(err(&[0xff]).contains("map"));
    assert!(err(&[&map[..], &[0][..]].concat()).contains("map"));
    assert!(err(&map[..map.len() - 1]).contains("map"));
}

#[test]
fn args_must_be_canonical() {
    let k = key(Suite::Ed25519Blake3, 1);
    let pk = k.public_key();
    let unsorted = hex::decode("07000000020000000162000000000161".to_owned() + "00").unwrap();
    let fields = TxFields {
        suite: Suite::Ed25519Blake3,
        chain_id: "dev",
        sender: &pk,
        nonce: 0,
        timestamp: 0,
        contract: "c",
        method: "m",
        args: &unsorted,
    };
    let e = msg(fields.encode_payload().unwrap_err());
    assert!(e.starts_with("args: not a canonical map") && e.contains("sorts before"), "{e}");
    // Forge the same bytes directly: the decoder refuses them too, naming the key's offset.
    let mut raw = TxFields { args: &hex::decode("0700000000").unwrap(), ..fields }.encode_payload().unwrap();
    raw.truncate(raw.len() - 9);
    raw.extend_from_slice(&(unsorted.len() as u32).to_be_bytes());
    raw.extend_from_slice(&unsorted);
    raw.extend_from_slice(&[0; 64]);
    let e = tx_err(&raw);
    assert!(e.contains("args (map key #1)") && e.contains("sorts before"), "{e}");
}

#[test]
fn encoding_checks_names_lengths_keys_and_size() {
    let k = key(Suite::Sm2Sm3, 1);
    let pk = k.public_key();
    let a = args();
    let base = TxFields {
        suite: Suite::Sm2Sm3,
        chain_id: "gov-chain",
        sender: &pk,
        nonce: 0,
        timestamp: 0,
        contract: "cert",
        method: "issue",
        args: &a,
    };
    base.encode_payload().unwrap();
    let e = |f: TxFields<'_>| msg(f.encode_payload().unwrap_err());
    assert!(e(TxFields { chain_id: "", ..base }).starts_with("chain id: must be 1 to 64"));
    assert!(e(TxFields { chain_id: &"x".repeat(65), ..base }).contains("got 65"));
    assert!(e(TxFields { contract: "Cert", ..base }).starts_with("contract name: \"Cert\" must start"));
    assert!(e(TxFields { method: "is-sue", ..base }).starts_with("method name: "));
    assert!(e(TxFields { method: &"m".repeat(65), ..base }).contains("1 to 64 bytes"));
    assert!(e(TxFields { sender: &pk[..32], ..base }).contains("sm2-sm3 public key must be 65 bytes"));
    let big = Value::map(vec![("blob".into(), Value::Bytes(vec![0; MAX_TX_SIZE]))]).unwrap().encode().unwrap();
    assert!(e(TxFields { args: &big, ..base }).contains("over the 1048576-byte maximum"));
    let wrong_key = key(Suite::P256Sha256, 1);
    assert!(msg(base.sign(&wrong_key).unwrap_err()).contains("p256 key cannot sign for suite sm2-sm3"));
    // A transaction just at the limit encodes and decodes; one byte more does not decode.
    let fixed = base.encode_payload().unwrap().len() + 64 - a.len();
    let room = MAX_TX_SIZE - fixed - (1 + 4 + 4 + 1 + 1 + 4);
    let fits = Value::map(vec![("b".into(), Value::Bytes(vec![1; room]))]).unwrap().encode().unwrap();
    let tx = TxFields { args: &fits, ..base }.sign(&k).unwrap();
    assert_eq!(tx.raw().len(), MAX_TX_SIZE);
    let mut over = tx.into_raw();
    over.push(0);
    assert!(tx_err(&over).contains("1048577 bytes, over the 1048576-byte maximum"));
}

#[test]
fn batches_decode_in_order_and_name_the_bad_index() {
    let suite = Suite::P256Sha256;
    let txs: Vec<Transaction> = (0..300).map(|n| signed(suite, "dev", n)).collect();
    let raws: Vec<&[u8]> = txs.iter().map(Transaction::raw).collect();
    assert_eq!(decode_batch(suite, "dev", &raws).unwrap(), txs);

    let mut bad = raws.clone();
    let cut = &txs[200].raw()[..10];
    bad[200] = cut;
    bad[250] = &[];
    let e = decode_batch(suite, "dev", &bad).unwrap_err();
    assert!(matches!(e, Error::Decode { index: Some(200), .. }));
    assert!(msg(e).starts_with("transaction 200: "));

    let e = msg(decode_batch(suite, "prod", &raws).unwrap_err());
    assert_eq!(e, "transaction 0: chain id is \"dev\", but this chain is \"prod\"");
    let other = signed(Suite::Ed25519Blake3, "dev", 1);
    let mut mixed = raws.clone();
    mixed[3] = other.raw();
    let e = msg(decode_batch(suite, "dev", &mixed).unwrap_err());
    assert_eq!(e, "transaction 3: suite is ed25519-blake3 (code 1), but this chain uses p256-sha256 (code 3)");
    assert!(decode_batch::<&[u8]>(suite, "dev", &[]).unwrap().is_empty());
}

// ---- headers and blocks ----

fn header(suite: Suite, tx_count: u32) -> BlockHeader {
    BlockHeader {
        suite,
        chain_id: "dev".into(),
        height: 7,
        prev_hash: [1; 32],
        tx_root: [2; 32],
        state_root: [3; 32],
        history_root: [4; 32],
        receipts_root: Some([5; 32]),
        timestamp: 1_700_000_000_123,
        proposer: key(suite, 3).public_key(),
        tx_count,
        consensus: vec![],
    }
}

#[test]
fn headers_round_trip_and_hash_their_encoding() {
    for suite in Suite::ALL {
        let h = header(suite, 2);
        let enc = h.encode().unwrap();
        assert_eq!(BlockHeader::decode(&enc).unwrap(), h);
        assert_eq!(h.hash().unwrap(), suite.hash().digest(&enc));
        let bare = BlockHeader { proposer: vec![], consensus: vec![9; 300], ..h.clone() };
        assert_eq!(BlockHeader::decode(&bare.encode().unwrap()).unwrap(), bare);
        // Without a receipts root: version 1, 32 bytes shorter, and read back as such.
        let v1 = BlockHeader { receipts_root: None, ..h.clone() };
        let v1_enc = v1.encode().unwrap();
        assert_eq!((v1_enc[0], enc[0], enc.len() - v1_enc.len()), (1, 2, 32));
        assert_eq!(BlockHeader::decode(&v1_enc).unwrap(), v1);
        for cut in 0..enc.len() {
            let e = msg(BlockHeader::decode(&enc[..cut]).unwrap_err());
            assert!(e.starts_with("block header: ") && e.contains("truncated"), "{e}");
        }
        let mut long = enc.clone();
        long.push(0);
        assert!(msg(BlockHeader::decode(&long).unwrap_err()).contains("trailing"));
    }
    let h = header(Suite::Ed25519Blake3, 0);
    let e = msg(BlockHeader { proposer: vec![1; 65], ..h.clone() }.encode().unwrap_err());
    assert!(e.starts_with("proposer: must be empty or a 32-byte"), "{e}");
    let e = msg(BlockHeader { consensus: vec![0; 65536], ..h.clone() }.encode().unwrap_err());
    assert!(e.contains("65535"), "{e}");
    let mut enc = h.encode().unwrap();
    enc[0] = 3;
    assert!(msg(BlockHeader::decode(&enc).unwrap_err()).contains("unknown version 3"));
    enc[0] = 1; // a version 2 header's bytes read as version 1: the fields after the roots shift
    assert!(BlockHeader::decode(&enc).is_err());
    enc[0] = 2;
    enc[1] = 0;
    assert!(msg(BlockHeader::decode(&enc).unwrap_err()).contains("unknown suite code 0"));
    enc[1] = 1;
    let proposer_len_at = 2 + 1 + 3 + 8 + 5 * 32 + 8;
    enc[proposer_len_at] = 31;
    let e = msg(BlockHeader::decode(&enc).unwrap_err());
    assert!(e.contains(&format!("proposer length at byte {proposer_len_at}: 31 is neither 0 nor")), "{e}");
}

/// A block's encoding in a new buffer (the bindings write it into a `bytes` object instead).
fn encode_block<R: AsRef<[u8]>>(header: &BlockHeader, raws: &[R]) -> crate::error::Result<Vec<u8>> {
    let frame = BlockFrame::new(header, raws)?;
    let mut out = vec![0; frame.encoded_len()];
    frame.write(&mut out);
    Ok(out)
}

#[test]
fn blocks_round_trip_and_reject_bad_framing() {
    let suite = Suite::Sm2Sm3;
    let txs: Vec<Transaction> = (0..3).map(|n| signed(suite, "dev", n)).collect();
    let raws: Vec<&[u8]> = txs.iter().map(Transaction::raw).collect();
    let h = header(suite, 3);
    let block = encode_block(&h, &raws).unwrap();
    let d = decode_block(&block).unwrap();
    assert_eq!(d.header, h);
    assert_eq!(d.header_bytes, h.encode().unwrap());
    assert_eq!(d.txs, raws);
    for cut in 0..block.len() {
        let e = msg(decode_block(&block[..cut]).unwrap_err());
        assert!(e.contains("truncated"), "cut {cut}: {e}");
    }
    let mut long = block.clone();
    long.push(0);
    assert!(msg(decode_block(&long).unwrap_err()).contains("1 trailing bytes at byte"));

    let e = msg(encode_block(&header(suite, 2), &raws).unwrap_err());
    assert!(e.contains("tx_count is 2, but 3 transactions"), "{e}");
    let empty: [&[u8]; 1] = [b""];
    assert!(msg(encode_block(&header(suite, 1), &empty).unwrap_err()).starts_with("transaction 0: is 0 bytes"));

    // Count field disagreeing with the header.
    let count_at = 4 + h.encode().unwrap().len();
    let mut wrong = block.clone();
    wrong[count_at + 3] = 2;
    let e = msg(decode_block(&wrong).unwrap_err());
    assert!(e.contains(&format!("tx count at byte {count_at}: 2 differs from the header's tx_count 3")), "{e}");
    // A header error is reported at its offset in the block.
    let mut bad_header = block.clone();
    bad_header[4] = 9;
    assert!(msg(decode_block(&bad_header).unwrap_err()).starts_with("block header: version at byte 4"));
    // A zero-length transaction.
    let empty_block = encode_block(&header(suite, 0), &[] as &[&[u8]]).unwrap();
    let mut zero = empty_block[..empty_block.len() - 4].to_vec();
    zero.extend_from_slice(&1u32.to_be_bytes());
    zero.extend_from_slice(&0u32.to_be_bytes());
    let hdr = header(suite, 1).encode().unwrap();
    zero[4..4 + hdr.len()].copy_from_slice(&hdr);
    let e = msg(decode_block(&zero).unwrap_err());
    assert!(e.contains("transaction 0 length") && e.contains("0 is outside 1..="), "{e}");
}

#[test]
fn a_sender_key_of_small_order_neither_encodes_nor_decodes() {
    // ZIP-215 verifies any signature with R of small order and s = 0 under such a key: anyone
    // could send as it. Suites other than Ed25519 have no such keys.
    let identity = {
        let mut k = [0u8; 32];
        k[0] = 1;
        k
    };
    let a = args();
    let fields = evidence_put(Suite::Ed25519Blake3, "gov-chain", &identity, 1, &a);
    assert!(msg(fields.encode_payload().unwrap_err()).starts_with("sender: an Ed25519 key of small order"));
    let mut raw = signed(Suite::Ed25519Blake3, "gov-chain", 1).into_raw();
    let at = 3 + "gov-chain".len();
    raw[at..at + 32].copy_from_slice(&identity);
    let e = msg(Transaction::decode(raw).unwrap_err());
    assert!(e.contains(&format!("sender at byte {at}: an Ed25519 key of small order")), "{e}");
}
