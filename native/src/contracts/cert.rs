//! E-certificates (电子证照): `issue(cert_id, digest, meta=None)` registers a certificate's digest;
//! `revoke(cert_id, reason)` marks it revoked, and only its issuer may do so.
//! State: `cert/<cert_id>` -> `{"digest", "issuer", "meta", "reason", "revoked"}`.

use super::args::{record, Args, Field};
use super::{Call, SingleKeyContract};
use crate::codec::value::{tag, Value};

pub const MAX_ID: usize = 256;
pub const MAX_REASON: usize = 512;
pub use super::evidence::{MAX_DIGEST, MAX_META, MIN_DIGEST};

pub struct Cert;

pub enum Op {
    /// The record to store.
    Issue(Vec<u8>),
    Revoke {
        reason: String,
    },
}

impl SingleKeyContract for Cert {
    const NAME: &'static str = "cert";
    type Op = Op;

    fn parse(&self, call: &Call<'_>, key: &mut Vec<u8>) -> Result<Op, String> {
        match call.method {
            "issue" => {
                let mut args = Args::parse(call.args, "cert.issue", &["cert_id", "digest", "meta"])?;
                let id = args.str("cert_id", MAX_ID)?;
                let digest = args.bytes("digest", MIN_DIGEST, MAX_DIGEST)?;
                let meta = args.any("meta", MAX_META)?;
                key.extend_from_slice(id.as_bytes());
                Ok(Op::Issue(record(&[
                    ("digest", Field::Bytes(digest)),
                    ("issuer", Field::Bytes(call.sender)),
                    ("meta", Field::Encoded(meta)),
                    ("reason", Field::Encoded(&[tag::NULL])),
                    ("revoked", Field::Encoded(&[tag::FALSE])),
                ])))
            }
            "revoke" => {
                let mut args = Args::parse(call.args, "cert.revoke", &["cert_id", "reason"])?;
                let id = args.str("cert_id", MAX_ID)?;
                let reason = args.str("reason", MAX_REASON)?;
                key.extend_from_slice(id.as_bytes());
                Ok(Op::Revoke { reason: reason.to_owned() })
            }
            other => Err(format!("contract \"cert\" has no method {other:?}")),
        }
    }

    fn apply(&self, call: &Call<'_>, id: &str, op: Op, current: Option<&[u8]>) -> Result<Vec<u8>, String> {
        match (op, current) {
            (Op::Issue(_), Some(_)) => Err(format!("cert.issue: certificate {id:?} is already registered")),
            (Op::Issue(record), None) => Ok(record),
            (Op::Revoke { .. }, None) => Err(format!("cert.revoke: certificate {id:?} is not registered")),
            (Op::Revoke { reason }, Some(stored)) => {
                let Ok(Value::Map(mut fields)) = Value::decode(stored) else {
                    return Err(format!("cert.revoke: stored record of {id:?} is corrupt"));
                };
                let field = |fields: &[(String, Value)], name: &str| {
                    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
                };
                if field(&fields, "issuer") != Some(Value::Bytes(call.sender.to_vec())) {
                    return Err(format!("cert.revoke: only the issuer may revoke certificate {id:?}"));
                }
                if field(&fields, "revoked") == Some(Value::Bool(true)) {
                    return Err(format!("cert.revoke: certificate {id:?} is already revoked"));
                }
                for (k, v) in fields.iter_mut() {
                    match k.as_str() {
                        "revoked" => *v = Value::Bool(true),
                        "reason" => *v = Value::Str(reason.clone()),
                        _ => {}
                    }
                }
                Value::Map(fields).encode().map_err(|e| format!("cert.revoke: {e}"))
            }
        }
    }
}
