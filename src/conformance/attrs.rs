//! Reading a case's attributes, strictly: an attribute the op does not
//! take, a missing one, or a value of the wrong kind is an error that names
//! the op and the attribute.

use serde_json::{Map, Value};
use wengert_core::{Error, Result};

pub(super) type Attrs = Map<String, Value>;

pub(super) fn unsupported(op: &str, what: impl std::fmt::Display) -> Error {
    Error::argument("conformance", op, format!("unsupported {what}"))
}

/// Fails unless every attribute is one of `known`.
pub(super) fn only(op: &str, attrs: &Attrs, known: &[&str]) -> Result<()> {
    match attrs.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(unsupported(op, format!("attribute '{k}'"))),
        None => Ok(()),
    }
}

pub(super) fn get<'a>(op: &str, attrs: &'a Attrs, key: &str) -> Result<&'a Value> {
    attrs.get(key).ok_or_else(|| unsupported(op, format!("case: attribute '{key}' is missing")))
}

pub(super) fn int(op: &str, v: &Value, key: &str) -> Result<i64> {
    v.as_i64().ok_or_else(|| unsupported(op, format!("value {v} for '{key}'")))
}

pub(super) fn usize_of(op: &str, v: &Value, key: &str) -> Result<usize> {
    usize::try_from(int(op, v, key)?).map_err(|_| unsupported(op, format!("value {v} for '{key}'")))
}

/// A pair attribute, given as `[a, b]` or as one number for both.
pub(super) fn pair(op: &str, attrs: &Attrs, key: &str) -> Result<[usize; 2]> {
    match get(op, attrs, key)? {
        Value::Array(a) if a.len() == 2 => Ok([usize_of(op, &a[0], key)?, usize_of(op, &a[1], key)?]),
        v => {
            let n = usize_of(op, v, key)?;
            Ok([n, n])
        }
    }
}

pub(super) fn float(op: &str, attrs: &Attrs, key: &str) -> Result<f64> {
    let v = get(op, attrs, key)?;
    v.as_f64().ok_or_else(|| unsupported(op, format!("value {v} for '{key}'")))
}

pub(super) fn boolean(op: &str, attrs: &Attrs, key: &str, default: bool) -> Result<bool> {
    match attrs.get(key) {
        None => Ok(default),
        Some(v) => v.as_bool().ok_or_else(|| unsupported(op, format!("value {v} for '{key}'"))),
    }
}

pub(super) fn text<'a>(op: &str, attrs: &'a Attrs, key: &str) -> Result<&'a str> {
    let v = get(op, attrs, key)?;
    v.as_str().ok_or_else(|| unsupported(op, format!("value {v} for '{key}'")))
}

/// An integer list attribute; `null` gives `None`.
pub(super) fn ints(op: &str, attrs: &Attrs, key: &str) -> Result<Option<Vec<isize>>> {
    match get(op, attrs, key)? {
        Value::Null => Ok(None),
        Value::Array(a) => a.iter().map(|v| int(op, v, key).map(|i| i as isize)).collect::<Result<_>>().map(Some),
        v => Ok(Some(vec![int(op, v, key)? as isize])),
    }
}

pub(super) fn reduction_mean(op: &str, attrs: &Attrs) -> Result<()> {
    match attrs.get("reduction").map(|v| v.as_str()) {
        None | Some(Some("mean")) => Ok(()),
        Some(v) => Err(unsupported(op, format!("reduction {v:?}"))),
    }
}
