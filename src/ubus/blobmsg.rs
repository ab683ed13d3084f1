//! blobmsg: named, typed values on top of blob attributes, and their JSON mapping.
//!
//! A blobmsg attribute is a blob attribute with the extended bit set, whose id is the
//! value type and whose payload starts with a name header:
//!
//! ```text
//!  u16 BE name length | name bytes | NUL | zero padding to a multiple of 4
//! ```
//!
//! followed by the value: nested attributes for arrays and tables, a NUL-terminated
//! string, or a big-endian integer / IEEE double of exactly the type's size. Elements of
//! an array carry an empty name.
//!
//! The JSON mapping follows libubox's `blobmsg_json`, which is what `ubus call` and
//! `ubus send` use on the command line:
//!
//! | JSON | blobmsg |
//! |---|---|
//! | object | table |
//! | array | array |
//! | string | string |
//! | `true` / `false` | int8 (blobmsg's bool is int8) |
//! | integer in i32 range | int32 |
//! | other integer | int64; above `i64::MAX` saturates to `i64::MAX`, as json-c does |
//! | fractional number | double |
//! | `null` | unspec with no value |
//!
//! Decoding maps int8 to a bool (any non-zero byte is `true`), int16/int32/int64 to
//! numbers, and a double to a number, except NaN and the infinities, which JSON cannot
//! carry: they become `null`. Attributes of a type this code does not know are skipped;
//! malformed ones (wrong integer size, unterminated string or name) make the whole
//! decode fail, since the sender is then not speaking blobmsg.
//!
//! Object keys are encoded in the order the `serde_json::Map` iterates them.

use serde_json::{Map, Number, Value};

use super::blob::{self, Attr, Attrs, Writer};

/// blobmsg value types (the blob id of a blobmsg attribute).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Type {
    /// No value; JSON `null`.
    Unspec = 0,
    Array = 1,
    Table = 2,
    String = 3,
    Int64 = 4,
    Int32 = 5,
    Int16 = 6,
    /// Also blobmsg's bool.
    Int8 = 7,
    Double = 8,
}

impl Type {
    /// blobmsg's bool is the int8 type.
    pub const BOOL: Type = Type::Int8;

    pub fn from_u8(id: u8) -> Option<Type> {
        Some(match id {
            0 => Type::Unspec,
            1 => Type::Array,
            2 => Type::Table,
            3 => Type::String,
            4 => Type::Int64,
            5 => Type::Int32,
            6 => Type::Int16,
            7 => Type::Int8,
            8 => Type::Double,
            _ => return None,
        })
    }
}

/// Nesting deeper than this is refused when decoding, so that hostile input cannot
/// exhaust the stack; nothing on a router nests nearly this deep.
pub const MAX_DEPTH: usize = 32;

/// Why a blobmsg list could not be decoded.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// An attribute's header or length runs past the data around it.
    Truncated,
    /// A name header is missing, too long for its attribute, or not NUL-terminated.
    BadName,
    /// A value does not have the size or terminator its type requires.
    BadValue(Type),
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated => write!(f, "blobmsg attribute runs past its container"),
            DecodeError::BadName => write!(f, "malformed blobmsg name header"),
            DecodeError::BadValue(t) => write!(f, "malformed blobmsg {t:?} value"),
            DecodeError::TooDeep => write!(f, "blobmsg nested deeper than {MAX_DEPTH} levels"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// One blobmsg attribute split into name and value bytes.
#[derive(Copy, Clone, Debug)]
pub struct Field<'a> {
    /// The raw type id (see [`Type::from_u8`]).
    pub type_id: u8,
    pub name: &'a str,
    pub data: &'a [u8],
}

impl<'a> Field<'a> {
    /// Splits a blob attribute into name and value. Attributes without the extended bit
    /// have no name and their whole payload is the value.
    pub fn from_attr(attr: Attr<'a>) -> Result<Field<'a>, DecodeError> {
        if !attr.extended {
            return Ok(Field {
                type_id: attr.id,
                name: "",
                data: attr.payload,
            });
        }
        let p = attr.payload;
        let len = p.get(..2).ok_or(DecodeError::BadName)?;
        let name_len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let hdr_len = blob::pad(2 + name_len + 1);
        if p.len() < hdr_len || p.get(2 + name_len) != Some(&0) {
            return Err(DecodeError::BadName);
        }
        // A C reader sees the name up to its first NUL; so do we. Names are identifiers
        // in practice: a non-UTF-8 one is refused rather than silently renamed.
        let name = &p[2..2 + name_len];
        let name = name.split(|&b| b == 0).next().unwrap_or(&[]);
        let name = std::str::from_utf8(name).map_err(|_| DecodeError::BadName)?;
        Ok(Field {
            type_id: attr.id,
            name,
            data: &p[hdr_len..],
        })
    }
}

/// Decodes a list of blobmsg attributes as a table (the payload of a table, or the
/// `UBUS_ATTR_DATA` of a ubus message). Entries without a name are skipped, since JSON
/// objects cannot hold them.
pub fn decode_table(list: &[u8]) -> Result<Map<String, Value>, DecodeError> {
    decode_table_at(list, 0)
}

/// Decodes a list of blobmsg attributes as an array; names are ignored.
pub fn decode_array(list: &[u8]) -> Result<Vec<Value>, DecodeError> {
    decode_array_at(list, 0)
}

fn fields(list: &[u8]) -> impl Iterator<Item = Result<Field<'_>, DecodeError>> {
    let mut attrs = Attrs::new(list);
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        match attrs.next() {
            Some(attr) => Some(Field::from_attr(attr)),
            None => {
                done = true;
                (!attrs.rest().is_empty()).then_some(Err(DecodeError::Truncated))
            }
        }
    })
}

fn decode_table_at(list: &[u8], depth: usize) -> Result<Map<String, Value>, DecodeError> {
    let mut map = Map::new();
    for field in fields(list) {
        let field = field?;
        if let Some(v) = decode_value(&field, depth)? {
            if !field.name.is_empty() {
                map.insert(field.name.to_owned(), v);
            }
        }
    }
    Ok(map)
}

fn decode_array_at(list: &[u8], depth: usize) -> Result<Vec<Value>, DecodeError> {
    let mut out = Vec::new();
    for field in fields(list) {
        if let Some(v) = decode_value(&field?, depth)? {
            out.push(v);
        }
    }
    Ok(out)
}

/// Decodes one field's value; `None` for types this code does not know.
pub fn decode_value(field: &Field<'_>, depth: usize) -> Result<Option<Value>, DecodeError> {
    let Some(ty) = Type::from_u8(field.type_id) else {
        return Ok(None);
    };
    let d = field.data;
    let bad = || DecodeError::BadValue(ty);
    let value = match ty {
        Type::Unspec => Value::Null,
        Type::Array | Type::Table => {
            if depth >= MAX_DEPTH {
                return Err(DecodeError::TooDeep);
            }
            if ty == Type::Array {
                Value::Array(decode_array_at(d, depth + 1)?)
            } else {
                Value::Object(decode_table_at(d, depth + 1)?)
            }
        }
        Type::String => {
            let attr = Attr {
                id: 0,
                extended: false,
                payload: d,
            };
            Value::String(attr.string().ok_or_else(bad)?)
        }
        Type::Int64 => {
            let b: [u8; 8] = d.try_into().map_err(|_| bad())?;
            Value::from(i64::from_be_bytes(b))
        }
        Type::Int32 => {
            let b: [u8; 4] = d.try_into().map_err(|_| bad())?;
            Value::from(i32::from_be_bytes(b))
        }
        Type::Int16 => {
            let b: [u8; 2] = d.try_into().map_err(|_| bad())?;
            Value::from(i16::from_be_bytes(b))
        }
        Type::Int8 => {
            let [b]: [u8; 1] = d.try_into().map_err(|_| bad())?;
            Value::Bool(b != 0)
        }
        Type::Double => {
            let b: [u8; 8] = d.try_into().map_err(|_| bad())?;
            Number::from_f64(f64::from_be_bytes(b)).map_or(Value::Null, Value::Number)
        }
    };
    Ok(Some(value))
}

/// Encodes the entries of `map` as a list of blobmsg attributes (a table's payload).
pub fn encode_table(map: &Map<String, Value>) -> Vec<u8> {
    let mut w = Writer::new();
    write_table(&mut w, map);
    w.into_bytes()
}

/// Appends the entries of `map` to `w`, one named attribute each.
pub fn write_table(w: &mut Writer, map: &Map<String, Value>) {
    for (k, v) in map {
        write_value(w, k, v);
    }
}

/// Appends one named value. Names longer than a u16 can count are cut (at a character
/// boundary), and a name is cut at an interior NUL, as any C reader would see it.
pub fn write_value(w: &mut Writer, name: &str, value: &Value) {
    match value {
        Value::Null => {
            let start = open(w, Type::Unspec, name);
            w.finish(start);
        }
        Value::Bool(b) => put(w, Type::Int8, name, &[u8::from(*b)]),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                match i32::try_from(i) {
                    Ok(i) => put(w, Type::Int32, name, &i.to_be_bytes()),
                    Err(_) => put(w, Type::Int64, name, &i.to_be_bytes()),
                }
            } else if n.as_u64().is_some() {
                // Only values above i64::MAX get here; json-c saturates them the same way.
                put(w, Type::Int64, name, &i64::MAX.to_be_bytes());
            } else {
                // serde_json numbers are finite, so this is always a real double.
                let f = n.as_f64().unwrap_or(0.0);
                put(w, Type::Double, name, &f.to_be_bytes());
            }
        }
        Value::String(s) => {
            let s = s.split('\0').next().unwrap_or("");
            let start = open(w, Type::String, name);
            w.raw().extend_from_slice(s.as_bytes());
            w.raw().push(0);
            w.finish(start);
        }
        Value::Array(items) => {
            let start = open(w, Type::Array, name);
            for item in items {
                write_value(w, "", item);
            }
            w.finish(start);
        }
        Value::Object(map) => {
            let start = open(w, Type::Table, name);
            write_table(w, map);
            w.finish(start);
        }
    }
}

/// Writes a typed, named attribute with a raw value.
pub fn put(w: &mut Writer, ty: Type, name: &str, data: &[u8]) {
    let start = open(w, ty, name);
    w.raw().extend_from_slice(data);
    w.finish(start);
}

/// Starts a blobmsg attribute: header and name; the caller appends the value and calls
/// `finish`.
fn open(w: &mut Writer, ty: Type, name: &str) -> usize {
    let name = clip_name(name);
    let start = w.header(ty as u8, true);
    let buf = w.raw();
    buf.extend_from_slice(&(name.len() as u16).to_be_bytes());
    buf.extend_from_slice(name.as_bytes());
    buf.push(0);
    buf.resize(blob::pad(buf.len()), 0);
    start
}

fn clip_name(name: &str) -> &str {
    let name = name.split('\0').next().unwrap_or("");
    let mut end = name.len().min(usize::from(u16::MAX));
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn roundtrip(v: Value) -> Value {
        let Value::Object(map) = v else { panic!() };
        Value::Object(decode_table(&encode_table(&map)).unwrap())
    }

    #[test]
    fn encodes_like_blobmsg_json() {
        // {"a": 1} as `ubus call` builds it: int32 named "a".
        let bytes = encode_table(json!({"a": 1}).as_object().unwrap());
        assert_eq!(
            bytes,
            [0x85, 0, 0, 0x0c, 0, 1, b'a', 0, 0, 0, 0, 1],
            "extended int32, 12 bytes, name header padded to 4"
        );
        let bytes = encode_table(json!({"flag": true}).as_object().unwrap());
        assert_eq!(
            bytes,
            [0x87, 0, 0, 0x0d, 0, 4, b'f', b'l', b'a', b'g', 0, 0, 1, 0, 0, 0]
        );
    }

    #[test]
    fn json_round_trips() {
        let v = json!({
            "s": "text", "t": true, "f": false, "n": null,
            "small": -5, "big": 1_i64 << 40, "min": i64::MIN, "d": 1.5,
            "arr": [1, "x", [], {}], "tab": {"k": {"deep": [true]}}
        });
        assert_eq!(roundtrip(v.clone()), v);
    }

    #[test]
    fn out_of_range_numbers_saturate() {
        let v = json!({"u": u64::MAX});
        assert_eq!(roundtrip(v), json!({"u": i64::MAX}));
    }

    #[test]
    fn non_finite_doubles_decode_as_null() {
        let mut w = Writer::new();
        put(&mut w, Type::Double, "x", &f64::NAN.to_be_bytes());
        put(&mut w, Type::Double, "y", &f64::INFINITY.to_be_bytes());
        let m = decode_table(&w.into_bytes()).unwrap();
        assert_eq!(Value::Object(m), json!({"x": null, "y": null}));
    }

    #[test]
    fn int16_decodes_and_unknown_types_are_skipped() {
        let mut w = Writer::new();
        put(&mut w, Type::Int16, "h", &(-2i16).to_be_bytes());
        let start = open(&mut w, Type::String, "later");
        w.finish(start);
        // Type 9 does not exist (yet): skipped, the rest still decodes.
        let s = w.header(9, true);
        w.raw().extend_from_slice(&[0, 1, b'z', 0]);
        w.finish(s);
        let bytes = w.into_bytes();
        // The empty "later" string has no NUL: malformed.
        assert_eq!(
            decode_table(&bytes),
            Err(DecodeError::BadValue(Type::String))
        );
        let mut w = Writer::new();
        put(&mut w, Type::Int16, "h", &(-2i16).to_be_bytes());
        let s = w.header(9, true);
        w.raw().extend_from_slice(&[0, 1, b'z', 0]);
        w.finish(s);
        assert_eq!(
            Value::Object(decode_table(&w.into_bytes()).unwrap()),
            json!({"h": -2})
        );
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        // Wrong int32 size.
        let mut w = Writer::new();
        put(&mut w, Type::Int32, "a", &[1, 2]);
        assert_eq!(
            decode_table(&w.into_bytes()),
            Err(DecodeError::BadValue(Type::Int32))
        );
        // Name length past the attribute.
        assert_eq!(
            decode_table(&[0x85, 0, 0, 8, 0, 9, b'a', 0]),
            Err(DecodeError::BadName)
        );
        // Trailing garbage.
        assert_eq!(decode_table(&[0, 0]), Err(DecodeError::Truncated));
        assert_eq!(decode_table(&[]), Ok(Map::new()));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut v = json!(1);
        for _ in 0..=MAX_DEPTH {
            v = json!([v]);
        }
        let bytes = encode_table(json!({"x": v}).as_object().unwrap());
        assert_eq!(decode_table(&bytes), Err(DecodeError::TooDeep));
    }

    #[test]
    fn names_are_clipped_at_nul() {
        let bytes = encode_table(json!({"a\0b": "x\0y"}).as_object().unwrap());
        assert_eq!(
            Value::Object(decode_table(&bytes).unwrap()),
            json!({"a": "x"})
        );
    }
}
