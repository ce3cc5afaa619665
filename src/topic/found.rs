//! What a template placeholder finds in an item, whatever the item's form:
//! [`field_by`] walks a path (the rule of [`super::field`]) through any
//! item that can step from a node to its entry, and [`Found`] is what the
//! path ends on. A `Value` is one such item; a push point read where it lies
//! in a write's body is another (see `feeds::push::PushItem`).

use serde_json::Value;

/// [`field`]'s rule over an item of any form: `get` steps from a node to its
/// entry named `key` (`None` when the node is no object or lacks it). The
/// push kinds read their points this way without building a `Value` (see
/// `feeds::push::PushItem`).
pub(crate) fn field_by<N: Copy>(
    root: N,
    path: &str,
    get: impl Fn(N, &str) -> Option<N>,
) -> Option<N> {
    if let Some(v) = get(root, path) {
        return Some(v);
    }
    if !path.contains('.') {
        return None;
    }
    path.split('.').try_fold(root, get)
}

/// What a template placeholder found at its path in an item, whatever the
/// item's form: a value that can make a segment, or something that cannot.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Found<'a> {
    /// A string.
    Str(&'a str),
    /// A number (written as serde_json writes it).
    Number(serde_json::Number),
    /// A boolean.
    Bool(bool),
    /// An object, an array or `null`.
    Other,
}

impl<'a> Found<'a> {
    /// What a placeholder finds in a `Value`.
    pub(crate) fn of(v: &'a Value) -> Found<'a> {
        match v {
            Value::String(s) => Found::Str(s),
            Value::Number(n) => Found::Number(n.clone()),
            Value::Bool(b) => Found::Bool(*b),
            _ => Found::Other,
        }
    }

    /// A float as a `Value` holds it: `NaN` and the infinities are `null`.
    pub(crate) fn float(f: f64) -> Found<'a> {
        serde_json::Number::from_f64(f).map_or(Found::Other, Found::Number)
    }
}
