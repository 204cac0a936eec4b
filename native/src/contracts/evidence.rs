//! `evidence.put(key, digest, meta=None)`: anchors a digest under a key, once. A second put of the
//! same key fails, so an anchored digest can never be replaced.
//! State: `evidence/<key>` -> `{"digest": bytes, "meta": any, "owner": sender}`.

use super::args::{record, Args};
use super::{Call, SingleKeyContract};
use crate::codec::value::Value;

pub const MAX_KEY: usize = 256;
pub const MIN_DIGEST: usize = 16;
pub const MAX_DIGEST: usize = 64;
pub const MAX_META: usize = 4096;

pub struct Evidence;

impl SingleKeyContract for Evidence {
    const NAME: &'static str = "evidence";
    /// The key (for messages) and the record to store.
    type Op = (String, Vec<u8>);

    fn parse(&self, call: &Call<'_>) -> Result<(Vec<u8>, Self::Op), String> {
        if call.method != "put" {
            return Err(format!("contract \"evidence\" has no method {:?}", call.method));
        }
        let mut args = Args::parse(call.args, "evidence.put", &["key", "digest", "meta"])?;
        let key = args.str("key", MAX_KEY)?;
        let digest = args.bytes("digest", MIN_DIGEST, MAX_DIGEST)?;
        let meta = args.any("meta", MAX_META)?;
        let value = record(vec![
            ("digest", Value::Bytes(digest)),
            ("meta", meta),
            ("owner", Value::Bytes(call.sender.to_vec())),
        ]);
        Ok((key.clone().into_bytes(), (key, value)))
    }

    fn apply(&self, _call: &Call<'_>, (key, value): Self::Op, current: Option<&[u8]>) -> Result<Vec<u8>, String> {
        match current {
            Some(_) => Err(format!("evidence.put: key {key:?} is already anchored")),
            None => Ok(value),
        }
    }
}
