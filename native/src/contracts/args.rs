//! Reading a call's arguments: a canonical map checked against what the method accepts.
//!
//! Arguments are read in place: each entry's value stays a slice of the call's encoding (which is
//! canonical, so a slice is exactly that value's encoding), and records are written straight into
//! their output buffer. Nothing is allocated per argument.

use crate::codec::value::{tag, CanonicalMap, Value};

pub struct Args<'a> {
    /// `(name, encoded value)` in the map's order; a taken entry's name is cleared.
    entries: Vec<(&'a str, &'a [u8])>,
    method: &'static str,
}

fn type_name(encoded: &[u8]) -> &'static str {
    match encoded.first() {
        Some(&tag::NULL) => "null",
        Some(&tag::FALSE | &tag::TRUE) => "bool",
        Some(&tag::INT) => "int",
        Some(&tag::BYTES) => "bytes",
        Some(&tag::STR) => "str",
        Some(&tag::LIST) => "list",
        _ => "map",
    }
}

fn u32_at(data: &[u8], at: usize) -> usize {
    u32::from_be_bytes(data[at..at + 4].try_into().expect("4 bytes")) as usize
}

/// Length of the (validated, canonical) value encoding at the start of `data`.
fn value_len(data: &[u8]) -> usize {
    match data[0] {
        tag::NULL | tag::FALSE | tag::TRUE => 1,
        tag::INT => 9,
        tag::BYTES | tag::STR => 5 + u32_at(data, 1),
        tag::LIST => {
            let mut at = 5;
            for _ in 0..u32_at(data, 1) {
                at += value_len(&data[at..]);
            }
            at
        }
        _ => {
            let mut at = 5;
            for _ in 0..u32_at(data, 1) {
                at += 4 + u32_at(data, at);
                at += value_len(&data[at..]);
            }
            at
        }
    }
}

/// The contents of a str or bytes encoding.
fn contents(encoded: &[u8]) -> &[u8] {
    &encoded[5..]
}

impl<'a> Args<'a> {
    /// Splits the map into its entries and rejects any argument name not in `allowed`.
    pub fn parse(map: CanonicalMap<'a>, method: &'static str, allowed: &[&str]) -> Result<Self, String> {
        let raw = map.bytes();
        let count = u32_at(raw, 1);
        let mut entries = Vec::with_capacity(count);
        let mut at = 5;
        for _ in 0..count {
            let len = u32_at(raw, at);
            let name = std::str::from_utf8(&raw[at + 4..at + 4 + len]).expect("validated UTF-8");
            at += 4 + len;
            let end = at + value_len(&raw[at..]);
            entries.push((name, &raw[at..end]));
            at = end;
        }
        if let Some((name, _)) = entries.iter().find(|(k, _)| !allowed.contains(k)) {
            return Err(format!("{method}: unexpected argument {name:?}"));
        }
        Ok(Self { entries, method })
    }

    fn take(&mut self, name: &str) -> Option<&'a [u8]> {
        let at = self.entries.iter().position(|(k, _)| *k == name)?;
        Some(self.entries.swap_remove(at).1)
    }

    /// A str argument of 1..=`max_len` bytes.
    pub fn str(&mut self, name: &str, max_len: usize) -> Result<&'a str, String> {
        match self.take(name) {
            Some(v) if v[0] == tag::STR => {
                let s = contents(v);
                if s.is_empty() || s.len() > max_len {
                    return Err(format!("{}: {name} must be 1..{max_len} bytes, got {}", self.method, s.len()));
                }
                Ok(std::str::from_utf8(s).expect("validated UTF-8"))
            }
            Some(other) => Err(format!("{}: {name} must be a str, got {}", self.method, type_name(other))),
            None => Err(format!("{}: missing argument {name:?}", self.method)),
        }
    }

    /// A bytes argument of `min_len..=max_len` bytes.
    pub fn bytes(&mut self, name: &str, min_len: usize, max_len: usize) -> Result<&'a [u8], String> {
        match self.take(name) {
            Some(v) if v[0] == tag::BYTES => {
                let b = contents(v);
                if !(min_len..=max_len).contains(&b.len()) {
                    return Err(format!("{}: {name} must be {min_len}..{max_len} bytes, got {}", self.method, b.len()));
                }
                Ok(b)
            }
            Some(other) => Err(format!("{}: {name} must be bytes, got {}", self.method, type_name(other))),
            None => Err(format!("{}: missing argument {name:?}", self.method)),
        }
    }

    /// An optional argument of any type whose encoding fits `max_encoded` bytes: its encoding
    /// (that of null when absent).
    pub fn any(&mut self, name: &str, max_encoded: usize) -> Result<&'a [u8], String> {
        const NULL: &[u8] = &[tag::NULL];
        let value = self.take(name).unwrap_or(NULL);
        if value.len() > max_encoded {
            return Err(format!(
                "{}: {name} encodes to {} bytes, over the {max_encoded}-byte limit",
                self.method,
                value.len()
            ));
        }
        Ok(value)
    }
}

/// One field of a state record, already encoded.
pub enum Field<'a> {
    Bytes(&'a [u8]),
    /// A value's whole encoding, copied as is.
    Encoded(&'a [u8]),
}

/// Encodes a state record (a canonical map) whose field names are given in increasing byte order.
pub fn record(fields: &[(&str, Field<'_>)]) -> Vec<u8> {
    debug_assert!(fields.windows(2).all(|w| w[0].0.as_bytes() < w[1].0.as_bytes()), "sorted field names");
    let size = 5 + fields
        .iter()
        .map(|(k, f)| {
            4 + k.len()
                + match f {
                    Field::Bytes(b) => 5 + b.len(),
                    Field::Encoded(e) => e.len(),
                }
        })
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.push(tag::MAP);
    out.extend_from_slice(&(fields.len() as u32).to_be_bytes());
    for (name, field) in fields {
        out.extend_from_slice(&(name.len() as u32).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        match field {
            Field::Bytes(b) => {
                out.push(tag::BYTES);
                out.extend_from_slice(&(b.len() as u32).to_be_bytes());
                out.extend_from_slice(b);
            }
            Field::Encoded(e) => out.extend_from_slice(e),
        }
    }
    debug_assert_eq!(out.len(), size);
    debug_assert!(Value::decode(&out).is_ok(), "records are canonical");
    out
}
