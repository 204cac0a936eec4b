//! Reading a call's arguments: a canonical map checked against what the method accepts.

use crate::codec::value::Value;

pub struct Args {
    entries: Vec<(String, Value)>,
    method: &'static str,
}

impl Args {
    /// Decodes `raw` and rejects any argument name not in `allowed`.
    pub fn parse(raw: &[u8], method: &'static str, allowed: &[&str]) -> Result<Self, String> {
        let entries = match Value::decode(raw) {
            Ok(Value::Map(entries)) => entries,
            Ok(other) => return Err(format!("{method}: arguments must be a map, got {}", other.type_name())),
            Err(e) => return Err(format!("{method}: {e}")),
        };
        if let Some((name, _)) = entries.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            return Err(format!("{method}: unexpected argument {name:?}"));
        }
        Ok(Self { entries, method })
    }

    fn take(&mut self, name: &str) -> Option<Value> {
        let at = self.entries.iter().position(|(k, _)| k == name)?;
        Some(self.entries.swap_remove(at).1)
    }

    pub fn str(&mut self, name: &str, max_len: usize) -> Result<String, String> {
        match self.take(name) {
            Some(Value::Str(s)) if !s.is_empty() && s.len() <= max_len => Ok(s),
            Some(Value::Str(s)) => Err(format!("{}: {name} must be 1..{max_len} bytes, got {}", self.method, s.len())),
            Some(other) => Err(format!("{}: {name} must be a str, got {}", self.method, other.type_name())),
            None => Err(format!("{}: missing argument {name:?}", self.method)),
        }
    }

    pub fn bytes(&mut self, name: &str, min_len: usize, max_len: usize) -> Result<Vec<u8>, String> {
        match self.take(name) {
            Some(Value::Bytes(b)) if (min_len..=max_len).contains(&b.len()) => Ok(b),
            Some(Value::Bytes(b)) => {
                Err(format!("{}: {name} must be {min_len}..{max_len} bytes, got {}", self.method, b.len()))
            }
            Some(other) => Err(format!("{}: {name} must be bytes, got {}", self.method, other.type_name())),
            None => Err(format!("{}: missing argument {name:?}", self.method)),
        }
    }

    /// An optional argument of any type whose encoding fits `max_encoded` bytes (Null if absent).
    pub fn any(&mut self, name: &str, max_encoded: usize) -> Result<Value, String> {
        let value = self.take(name).unwrap_or(Value::Null);
        let size = value.encode().map_err(|e| format!("{}: {e}", self.method))?.len();
        if size > max_encoded {
            return Err(format!("{}: {name} encodes to {size} bytes, over the {max_encoded}-byte limit", self.method));
        }
        Ok(value)
    }
}

/// Encodes a state record; the fields are this crate's own, so encoding cannot fail.
pub fn record(fields: Vec<(&str, Value)>) -> Vec<u8> {
    let entries = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    Value::map(entries).expect("distinct field names").encode().expect("encodable record")
}
