//! `evidence.put(key, digest, meta=None)`: anchors a digest under a key, once. A second put of the
//! same key fails, so an anchored digest can never be replaced.
//! State: `evidence/<key>` -> `{"digest": bytes, "meta": any, "owner": sender}`.

use super::args::{record, Args, Field};
use super::{Call, SingleKeyContract};

pub const MAX_KEY: usize = 256;
pub const MIN_DIGEST: usize = 16;
pub const MAX_DIGEST: usize = 64;
pub const MAX_META: usize = 4096;

pub struct Evidence;

impl SingleKeyContract for Evidence {
    const NAME: &'static str = "evidence";
    /// The record to store.
    type Op = Vec<u8>;

    fn parse(&self, call: &Call<'_>, key: &mut Vec<u8>) -> Result<Self::Op, String> {
        if call.method != "put" {
            return Err(format!("contract \"evidence\" has no method {:?}", call.method));
        }
        let mut args = Args::parse(call.args, "evidence.put", &["key", "digest", "meta"])?;
        let name = args.str("key", MAX_KEY)?;
        let digest = args.bytes("digest", MIN_DIGEST, MAX_DIGEST)?;
        let meta = args.any("meta", MAX_META)?;
        key.extend_from_slice(name.as_bytes());
        Ok(record(&[
            ("digest", Field::Bytes(digest)),
            ("meta", Field::Encoded(meta)),
            ("owner", Field::Bytes(call.sender)),
        ]))
    }

    fn apply(&self, _call: &Call<'_>, key: &str, value: Self::Op, current: Option<&[u8]>) -> Result<Vec<u8>, String> {
        match current {
            Some(_) => Err(format!("evidence.put: key {key:?} is already anchored")),
            None => Ok(value),
        }
    }
}
