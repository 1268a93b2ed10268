//! Typed reads from a normalized JSON object, with errors that name the field.

use crate::{GenesisError, Result};
use alloy_primitives::{Address, Bytes, B256, U256};
use serde_json::{Map, Value};

/// Lower-cases every object key, as Besu's `JsonUtil.normalizeKeys` does.
pub(crate) fn normalize_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), normalize_keys(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(normalize_keys).collect()),
        other => other,
    }
}

/// A JSON object together with its path, for error messages.
pub(crate) struct Obj<'a> {
    pub(crate) path: String,
    pub(crate) map: &'a Map<String, Value>,
}

impl<'a> Obj<'a> {
    pub(crate) fn root(value: &'a Value) -> Result<Self> {
        value
            .as_object()
            .map(|map| Obj {
                path: String::new(),
                map,
            })
            .ok_or_else(|| GenesisError::field("(root)", "the genesis must be a JSON object"))
    }

    pub(crate) fn name(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub(crate) fn object(&self, key: &str) -> Result<Option<Obj<'a>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Obj {
                path: self.name(key),
                map,
            })),
            Some(other) => Err(GenesisError::field(
                self.name(key),
                format!("expected an object, got {other}"),
            )),
        }
    }

    pub(crate) fn u256(&self, key: &str) -> Result<Option<U256>> {
        self.get(key)
            .map(|v| parse_u256(v).map_err(|r| GenesisError::field(self.name(key), r)))
            .transpose()
    }

    pub(crate) fn u64(&self, key: &str) -> Result<Option<u64>> {
        match self.u256(key)? {
            None => Ok(None),
            Some(v) => u64::try_from(v).map(Some).map_err(|_| {
                GenesisError::field(self.name(key), format!("{v} does not fit in 64 bits"))
            }),
        }
    }

    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(other) => Err(GenesisError::field(
                self.name(key),
                format!("expected true or false, got {other}"),
            )),
        }
    }

    pub(crate) fn string(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(GenesisError::field(
                self.name(key),
                format!("expected a string, got {other}"),
            )),
        }
    }

    pub(crate) fn bytes(&self, key: &str) -> Result<Option<Bytes>> {
        self.string(key)?
            .map(|s| {
                parse_hex(s)
                    .map(Bytes::from)
                    .map_err(|r| GenesisError::field(self.name(key), r))
            })
            .transpose()
    }

    pub(crate) fn b256(&self, key: &str) -> Result<Option<B256>> {
        self.string(key)?
            .map(|s| parse_b256(s).map_err(|r| GenesisError::field(self.name(key), r)))
            .transpose()
    }

    pub(crate) fn address(&self, key: &str) -> Result<Option<Address>> {
        self.string(key)?
            .map(|s| parse_address(s).map_err(|r| GenesisError::field(self.name(key), r)))
            .transpose()
    }
}

/// A quantity given as a JSON number, a decimal string or a `0x` hex string.
pub(crate) fn parse_u256(value: &Value) -> std::result::Result<U256, String> {
    match value {
        Value::Number(n) => match n.as_u64() {
            Some(v) => Ok(U256::from(v)),
            None => Err(format!("{n} is not a non-negative integer that fits in 64 bits; write large values as strings")),
        },
        Value::String(s) => parse_u256_str(s),
        other => Err(format!("expected a number or a numeric string, got {other}")),
    }
}

pub(crate) fn parse_u256_str(s: &str) -> std::result::Result<U256, String> {
    let t = s.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some("") => Ok(U256::ZERO),
        Some(h) => U256::from_str_radix(h, 16),
        None if t.is_empty() => return Err("empty string is not a number".into()),
        None => U256::from_str_radix(t, 10),
    };
    parsed.map_err(|e| format!("`{s}` is not a number: {e}"))
}

pub(crate) fn parse_hex(s: &str) -> std::result::Result<Vec<u8>, String> {
    let h = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    // Besu accepts odd-length hex by left-padding a zero nibble.
    let padded;
    let h = if h.len() % 2 == 1 {
        padded = format!("0{h}");
        padded.as_str()
    } else {
        h
    };
    alloy_primitives::hex::decode(h).map_err(|e| format!("`{s}` is not hex: {e}"))
}

pub(crate) fn parse_b256(s: &str) -> std::result::Result<B256, String> {
    let bytes = parse_hex(s)?;
    if bytes.len() > 32 {
        return Err(format!("`{s}` is longer than 32 bytes"));
    }
    let mut out = [0u8; 32];
    let start = 32 - bytes.len();
    if let Some(dst) = out.get_mut(start..) {
        dst.copy_from_slice(&bytes);
    }
    Ok(B256::from(out))
}

pub(crate) fn parse_address(s: &str) -> std::result::Result<Address, String> {
    let bytes = parse_hex(s)?;
    if bytes.len() != 20 {
        return Err(format!("`{s}` is not a 20-byte address"));
    }
    Ok(Address::from_slice(&bytes))
}
