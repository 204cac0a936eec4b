//! Canonical values: the tagged tree that transaction arguments and contract state values use.
//!
//! `0x00` null, `0x01` false, `0x02` true, `0x03` int (i64, 8 bytes), `0x04` bytes (u32 length +
//! data), `0x05` str (u32 length + UTF-8), `0x06` list (u32 count + items), `0x07` map (u32 count +
//! entries; an entry is a key, u32 length + UTF-8, then a value; keys strictly increasing by bytes).
//! Lists and maps nest at most [`MAX_DEPTH`] deep. Every value has exactly one encoding.

use std::borrow::Cow;
use std::fmt;

use super::{put_long, Reader, MAX_DEPTH};
use crate::error::{Error, Result};

/// The one-byte type tags.
pub mod tag {
    pub const NULL: u8 = 0x00;
    pub const FALSE: u8 = 0x01;
    pub const TRUE: u8 = 0x02;
    pub const INT: u8 = 0x03;
    pub const BYTES: u8 = 0x04;
    pub const STR: u8 = 0x05;
    pub const LIST: u8 = 0x06;
    pub const MAP: u8 = 0x07;
}

/// Smallest encoded map entry: an empty key (4-byte length) and a one-byte value.
const MIN_ENTRY_LEN: usize = 5;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Bytes(Vec<u8>),
    Str(String),
    List(Vec<Value>),
    /// Entries in strictly increasing key order (by UTF-8 bytes); [`Value::map`] sorts them.
    Map(Vec<(String, Value)>),
}

/// One step of a path into a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step<'a> {
    Key(Cow<'a, str>),
    Index(usize),
}

/// What part of the value at a path a message is about.
#[derive(Clone, Copy)]
enum Part {
    Whole,
    Named(&'static str),
    MapKey(usize),
}

/// A path into a value rendered the way it is written: `args["meta"][2]`, plus the part meant.
/// Rendered only when a message is built, so decoding pays nothing for it.
struct PathDisplay<'p, 'a> {
    root: &'p str,
    steps: &'p [Step<'a>],
    part: Part,
}

impl fmt::Display for PathDisplay<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.root)?;
        for step in self.steps {
            match step {
                Step::Key(k) => write!(f, "[{k:?}]")?,
                Step::Index(i) => write!(f, "[{i}]")?,
            }
        }
        match self.part {
            Part::Whole => Ok(()),
            Part::Named(name) => write!(f, " {name}"),
            Part::MapKey(i) => write!(f, " (map key #{i})"),
        }
    }
}

/// Why a value cannot be encoded, and where in it. Built while unwinding, so the path costs
/// nothing unless something fails; [`PathError::into_error`] names the root (`value`, `args`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathError {
    /// Innermost step first.
    reversed: Vec<Step<'static>>,
    reason: String,
}

impl PathError {
    pub fn new(reason: impl Into<String>) -> Self {
        Self { reversed: Vec::new(), reason: reason.into() }
    }

    pub fn in_key(mut self, key: &str) -> Self {
        self.reversed.push(Step::Key(Cow::Owned(key.to_owned())));
        self
    }

    pub fn in_index(mut self, index: usize) -> Self {
        self.reversed.push(Step::Index(index));
        self
    }

    pub fn path(&self, root: &str) -> String {
        let steps: Vec<Step<'static>> = self.reversed.iter().rev().cloned().collect();
        PathDisplay { root, steps: &steps, part: Part::Whole }.to_string()
    }

    pub fn into_error(self, root: &str) -> Error {
        Error::Encode { what: self.path(root), reason: self.reason }
    }
}

fn too_deep() -> String {
    format!("lists and maps nest more than {MAX_DEPTH} deep")
}

impl Value {
    /// A map from entries in any order: sorts them by key bytes; a repeated key is an error.
    pub fn map(mut entries: Vec<(String, Value)>) -> std::result::Result<Value, PathError> {
        entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        if let Some(pair) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(PathError::new(format!("duplicate map key {:?}", pair[0].0)));
        }
        Ok(Value::Map(entries))
    }

    /// The canonical encoding. Fails only for values no decoder would accept: unsorted or repeated
    /// map keys (build maps with [`Value::map`]), nesting deeper than [`MAX_DEPTH`], or a string,
    /// byte string or container too long for its u32 length.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.encode_into(&mut out, "value")?;
        Ok(out)
    }

    /// Appends the encoding to `out`; errors name paths from `root`.
    pub fn encode_into(&self, out: &mut Vec<u8>, root: &str) -> Result<()> {
        write(self, out, 0).map_err(|e| e.into_error(root))
    }

    /// Decodes exactly one value filling `data`.
    pub fn decode(data: &[u8]) -> Result<Value> {
        let mut r = Reader::new("value", data);
        let value = read(&mut r, "value", &mut Vec::new(), 0, true)?.expect("built");
        r.finish("value")?;
        Ok(value)
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Bytes(_) => "bytes",
            Value::Str(_) => "str",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }
}

/// Checks that `data` is exactly one canonical value, without building it.
pub fn validate(data: &[u8]) -> Result<()> {
    let mut r = Reader::new("value", data);
    read(&mut r, "value", &mut Vec::new(), 0, false)?;
    r.finish("value")
}

/// Checks that all of `data` (absolute offset `base` in an encoding of `what`) is one canonical map;
/// messages name paths from `root`.
pub(crate) fn validate_map(what: &'static str, root: &str, data: &[u8], base: usize) -> Result<()> {
    let mut r = Reader::at(what, data, base);
    if let Some(&t) = data.first() {
        if t != tag::MAP {
            return Err(r.error_at(&root, base, format_args!("must be a map, got {} (tag 0x{t:02x})", tag_name(t))));
        }
    }
    read(&mut r, root, &mut Vec::new(), 0, false)?;
    r.finish(root)
}

/// The encoding of one canonical map, checked once when it was made: a decoded transaction's args
/// come as one, so the contracts that read them do not check them again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CanonicalMap<'a>(&'a [u8]);

impl<'a> CanonicalMap<'a> {
    /// Checks that all of `data` is one canonical map.
    pub fn new(data: &'a [u8]) -> Result<Self> {
        validate_map("map", "map", data, 0)?;
        Ok(Self(data))
    }

    /// `data` that the caller has checked with [`validate_map`].
    pub(crate) fn checked(data: &'a [u8]) -> Self {
        Self(data)
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.0
    }
}

fn tag_name(t: u8) -> &'static str {
    match t {
        tag::NULL => "null",
        tag::FALSE | tag::TRUE => "bool",
        tag::INT => "int",
        tag::BYTES => "bytes",
        tag::STR => "str",
        tag::LIST => "list",
        tag::MAP => "map",
        _ => "an unknown tag",
    }
}

fn write(value: &Value, out: &mut Vec<u8>, depth: usize) -> std::result::Result<(), PathError> {
    let long = |out: &mut Vec<u8>, bytes: &[u8]| {
        put_long(out, "", bytes).map_err(|_| PathError::new(format!("{} bytes do not fit a u32 length", bytes.len())))
    };
    let count = |out: &mut Vec<u8>, n: usize| {
        let n = u32::try_from(n).map_err(|_| PathError::new(format!("{n} items do not fit a u32 count")))?;
        out.extend_from_slice(&n.to_be_bytes());
        Ok::<(), PathError>(())
    };
    match value {
        Value::Null => out.push(tag::NULL),
        Value::Bool(false) => out.push(tag::FALSE),
        Value::Bool(true) => out.push(tag::TRUE),
        Value::Int(n) => {
            out.push(tag::INT);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Value::Bytes(b) => {
            out.push(tag::BYTES);
            long(out, b)?;
        }
        Value::Str(s) => {
            out.push(tag::STR);
            long(out, s.as_bytes())?;
        }
        Value::List(items) => {
            if depth >= MAX_DEPTH {
                return Err(PathError::new(too_deep()));
            }
            out.push(tag::LIST);
            count(out, items.len())?;
            for (i, item) in items.iter().enumerate() {
                write(item, out, depth + 1).map_err(|e| e.in_index(i))?;
            }
        }
        Value::Map(entries) => {
            if depth >= MAX_DEPTH {
                return Err(PathError::new(too_deep()));
            }
            out.push(tag::MAP);
            count(out, entries.len())?;
            let mut prev: Option<&str> = None;
            for (key, item) in entries {
                if let Some(prev) = prev {
                    if key.as_bytes() <= prev.as_bytes() {
                        return Err(PathError::new(format!(
                            "map key {key:?} follows {prev:?}: keys must be unique and sorted by bytes (build maps with Value::map)"
                        )));
                    }
                }
                prev = Some(key);
                long(out, key.as_bytes()).map_err(|e| e.in_key(key))?;
                write(item, out, depth + 1).map_err(|e| e.in_key(key))?;
            }
        }
    }
    Ok(())
}

/// Reads one value at `path` (from `root`). With `build` false nothing is allocated and `None`
/// comes back: the same checks, for validating.
fn read<'a>(
    r: &mut Reader<'a>,
    root: &str,
    path: &mut Vec<Step<'a>>,
    depth: usize,
    build: bool,
) -> Result<Option<Value>> {
    let at = r.offset();
    macro_rules! field {
        () => {
            &PathDisplay { root, steps: path, part: Part::Whole }
        };
        ($part:expr) => {
            &PathDisplay { root, steps: path, part: $part }
        };
    }
    let t = r.u8(field!())?;
    let value = match t {
        tag::NULL => build.then_some(Value::Null),
        tag::FALSE => build.then_some(Value::Bool(false)),
        tag::TRUE => build.then_some(Value::Bool(true)),
        tag::INT => {
            let n = i64::from_be_bytes(r.array(field!(Part::Named("(int)")))?);
            build.then_some(Value::Int(n))
        }
        tag::BYTES => {
            let len = r.u32(field!(Part::Named("(bytes length)")))? as usize;
            let data = r.take(len, field!(Part::Named("(bytes)")))?;
            build.then(|| Value::Bytes(data.to_vec()))
        }
        tag::STR => {
            let len = r.u32(field!(Part::Named("(str length)")))? as usize;
            let text_at = r.offset();
            let data = r.take(len, field!(Part::Named("(str)")))?;
            let text = utf8(r, data, field!(Part::Named("(str)")), text_at)?;
            build.then(|| Value::Str(text.to_owned()))
        }
        tag::LIST => {
            if depth >= MAX_DEPTH {
                return Err(r.error_at(field!(), at, too_deep()));
            }
            let count = r.u32(field!(Part::Named("(list count)")))? as usize;
            // Every item takes at least one byte: never reserve more than the input could hold.
            let mut items = Vec::with_capacity(if build { count.min(r.remaining()) } else { 0 });
            for i in 0..count {
                path.push(Step::Index(i));
                let item = read(r, root, path, depth + 1, build)?;
                path.pop();
                items.extend(item);
            }
            build.then_some(Value::List(items))
        }
        tag::MAP => {
            if depth >= MAX_DEPTH {
                return Err(r.error_at(field!(), at, too_deep()));
            }
            let count = r.u32(field!(Part::Named("(map count)")))? as usize;
            let mut entries = Vec::with_capacity(if build { count.min(r.remaining() / MIN_ENTRY_LEN) } else { 0 });
            let mut prev: Option<&'a str> = None;
            for i in 0..count {
                let key_at = r.offset();
                let len = r.u32(field!(Part::MapKey(i)))? as usize;
                let data = r.take(len, field!(Part::MapKey(i)))?;
                let key = utf8(r, data, field!(Part::MapKey(i)), key_at + 4)?;
                if let Some(prev) = prev {
                    if key.as_bytes() <= prev.as_bytes() {
                        let what = if key == prev { "repeats" } else { "sorts before" };
                        return Err(r.error_at(
                            field!(Part::MapKey(i)),
                            key_at,
                            format_args!("{key:?} {what} the previous key {prev:?}; map keys must be unique and in increasing byte order"),
                        ));
                    }
                }
                prev = Some(key);
                path.push(Step::Key(Cow::Borrowed(key)));
                let item = read(r, root, path, depth + 1, build)?;
                path.pop();
                if let Some(item) = item {
                    entries.push((key.to_owned(), item));
                }
            }
            build.then_some(Value::Map(entries))
        }
        other => return Err(r.error_at(field!(), at, format_args!("unknown tag 0x{other:02x}"))),
    };
    Ok(value)
}

fn utf8<'a>(r: &Reader<'_>, data: &'a [u8], field: &dyn fmt::Display, at: usize) -> Result<&'a str> {
    std::str::from_utf8(data).map_err(|e| r.error_at(field, at + e.valid_up_to(), "not valid UTF-8"))
}
