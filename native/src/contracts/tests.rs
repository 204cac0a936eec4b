use std::collections::HashMap;

use super::cert::Cert;
use super::evidence::Evidence;
use super::*;
use crate::codec::value::Value;

fn args(fields: Vec<(&str, Value)>) -> Vec<u8> {
    Value::map(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()).unwrap().encode().unwrap()
}

fn call<'a>(index: u32, sender: &'a [u8], method: &'a str, args: &'a [u8]) -> Call<'a> {
    Call { index, sender, method, args: CanonicalMap::new(args).unwrap() }
}

fn run<C: SingleKeyContract>(c: &C, calls: &[Call<'_>], committed: &HashMap<Vec<u8>, Vec<u8>>) -> Outcome {
    let plan = plan(c, calls);
    let current = plan.current(committed.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
    apply(c, calls, plan, &current)
}

fn put(key: &str) -> Vec<u8> {
    args(vec![("key", Value::Str(key.into())), ("digest", Value::Bytes(vec![7; 32]))])
}

#[test]
fn evidence_anchors_once_within_and_across_blocks() {
    let (a, b) = (put("lic/1"), put("lic/2"));
    let calls = [call(0, b"s", "put", &a), call(1, b"s", "put", &b), call(2, b"s", "put", &a)];
    let out = run(&Evidence, &calls, &HashMap::new());
    assert_eq!(out.ok, [true, true, false]);
    assert_eq!(out.errors, [(2, "evidence.put: key \"lic/1\" is already anchored".to_owned())]);
    assert_eq!(out.writes[0].0, b"evidence/lic/1");
    let committed: HashMap<Vec<u8>, Vec<u8>> = out.writes.into_iter().map(|(k, v, _)| (k, v)).collect();
    let again = run(&Evidence, &[call(0, b"s", "put", &b)], &committed);
    assert_eq!(again.ok, [false]);
}

#[test]
fn evidence_rejects_bad_arguments_with_reasons() {
    let cases = [
        (args(vec![("key", Value::Str("k".into()))]), "missing argument \"digest\""),
        (
            args(vec![("key", Value::Str("k".into())), ("digest", Value::Bytes(vec![1; 3]))]),
            "digest must be 16..64 bytes, got 3",
        ),
        (args(vec![("key", Value::Int(5)), ("digest", Value::Bytes(vec![1; 32]))]), "key must be a str, got int"),
        (
            args(vec![("key", Value::Str("k".into())), ("digest", Value::Bytes(vec![1; 32])), ("x", Value::Null)]),
            "unexpected argument \"x\"",
        ),
        (
            args(vec![
                ("key", Value::Str("k".into())),
                ("digest", Value::Bytes(vec![1; 32])),
                ("meta", Value::Bytes(vec![0; 5000])),
            ]),
            "over the 4096-byte limit",
        ),
    ];
    for (raw, want) in &cases {
        let out = run(&Evidence, &[call(4, b"s", "put", raw)], &HashMap::new());
        assert_eq!(out.ok, [false]);
        assert!(out.errors[0].1.contains(want), "{} lacks {want}", out.errors[0].1);
        assert!(out.writes.is_empty());
    }
    let out = run(&Evidence, &[call(0, b"s", "delete", &put("k"))], &HashMap::new());
    assert!(out.errors[0].1.contains("has no method \"delete\""));
}

#[test]
fn cert_issue_revoke_lifecycle() {
    let issue = args(vec![("cert_id", Value::Str("id-1".into())), ("digest", Value::Bytes(vec![9; 32]))]);
    let revoke = args(vec![("cert_id", Value::Str("id-1".into())), ("reason", Value::Str("expired".into()))]);
    let calls = [
        call(0, b"bureau", "revoke", &revoke),
        call(1, b"bureau", "issue", &issue),
        call(2, b"bureau", "issue", &issue),
        call(3, b"thief", "revoke", &revoke),
        call(4, b"bureau", "revoke", &revoke),
        call(5, b"bureau", "revoke", &revoke),
    ];
    let out = run(&Cert, &calls, &HashMap::new());
    assert_eq!(out.ok, [false, true, false, false, true, false]);
    let reasons: Vec<&str> = out.errors.iter().map(|(_, r)| r.as_str()).collect();
    assert!(reasons[0].contains("not registered"));
    assert!(reasons[1].contains("already registered"));
    assert!(reasons[2].contains("only the issuer"));
    assert!(reasons[3].contains("already revoked"));
    let Value::Map(fields) = Value::decode(&out.writes[1].1).unwrap() else { panic!() };
    assert!(fields.contains(&("revoked".to_owned(), Value::Bool(true))));
    assert!(fields.contains(&("reason".to_owned(), Value::Str("expired".into()))));
    assert!(fields.contains(&("issuer".to_owned(), Value::Bytes(b"bureau".to_vec()))));
}

#[test]
fn large_slices_group_repeated_keys_and_read_them_once_in_order() {
    // Enough calls for the parallel parse and sort; keys repeat, some longer than the sort head.
    let raw: Vec<Vec<u8>> = (0..1000u32)
        .map(|i| {
            let key = if i % 3 == 0 { format!("k/{}", i % 50) } else { format!("lic/shared-prefix-{:05}", i % 400) };
            args(vec![("key", Value::Str(key)), ("digest", Value::Bytes(vec![i as u8; 16]))])
        })
        .collect();
    let calls: Vec<Call<'_>> = raw.iter().enumerate().map(|(i, a)| call(i as u32, b"s", "put", a)).collect();
    let p = plan(&Evidence, &calls);
    let keys = p.keys();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "distinct and sorted");
    assert_eq!(keys.len(), 50 + 400);
    let first = b"evidence/k/0".to_vec();
    let committed: HashMap<Vec<u8>, Vec<u8>> =
        [(first.clone(), b"old".to_vec()), (b"evidence/zzz".to_vec(), b"x".to_vec())].into();
    let current = p.current(committed.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
    assert_eq!(current.iter().filter(|c| c.is_some()).count(), 1);
    let out = apply(&Evidence, &calls, p, &current);
    // The first call of each key anchors it, except k/0 which was committed already; the rest fail.
    let mut seen = std::collections::HashSet::new();
    for (j, a) in raw.iter().enumerate() {
        let Value::Map(fields) = Value::decode(a).unwrap() else { panic!() };
        let Value::Str(key) = &fields.iter().find(|(k, _)| k == "key").unwrap().1 else { panic!() };
        let fresh = seen.insert(key.clone()) && key != "k/0";
        assert_eq!(out.ok[j], fresh, "call {j} key {key}");
    }
    assert_eq!(out.writes.len(), 50 + 400 - 1);
    assert!(out.writes.windows(2).all(|w| w[0].2 < w[1].2), "writes in block order");
    let Value::Map(record) = Value::decode(&out.writes[0].1).unwrap() else { panic!() };
    assert_eq!(record.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["digest", "meta", "owner"]);
}

#[test]
fn records_copy_meta_encodings_exactly() {
    let meta = Value::map(vec![
        ("b".into(), Value::List(vec![Value::Int(-1), Value::Null])),
        ("a".into(), Value::Str("é".into())),
    ])
    .unwrap();
    let a = args(vec![("key", Value::Str("k".into())), ("digest", Value::Bytes(vec![1; 32])), ("meta", meta.clone())]);
    let out = run(&Evidence, &[call(0, b"owner", "put", &a)], &HashMap::new());
    let want = Value::map(vec![
        ("digest".into(), Value::Bytes(vec![1; 32])),
        ("meta".into(), meta),
        ("owner".into(), Value::Bytes(b"owner".to_vec())),
    ])
    .unwrap()
    .encode()
    .unwrap();
    assert_eq!(out.writes[0].1, want);
}
