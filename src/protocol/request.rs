//! Parsing a client's request: its `id`, its op and the op's fields, each
//! refusal with the text it is answered with.

use std::collections::HashMap;

use serde_json::Value;

use super::{max_rate, unknown_name, ErrorCode, Request, RequestError, DELTA, OPS};

fn bad(message: impl Into<String>) -> RequestError {
    RequestError {
        code: ErrorCode::BadRequest,
        message: message.into(),
    }
}

/// Parses one text frame into its `id` (echoed in the reply) and request.
pub fn parse_request(text: &str) -> (Option<Value>, Result<Request, RequestError>) {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return (None, Err(bad(format!("not JSON: {e}")))),
    };
    let Value::Object(mut obj) = value else {
        return (None, Err(bad("a request is a JSON object")));
    };
    let id = obj.remove("id");
    let op = match obj.remove("op") {
        Some(Value::String(op)) => op,
        Some(_) => return (id, Err(bad("`op` must be a string"))),
        None => return (id, Err(bad("missing `op`"))),
    };
    let Some((op, fields)) = OPS.iter().find(|(name, _)| *name == op) else {
        let ops: Vec<&str> = OPS.iter().map(|(name, _)| *name).collect();
        let message = unknown_name("op", &op, "", &ops);
        let code = ErrorCode::UnknownOp;
        return (id, Err(RequestError { code, message }));
    };
    if let Some(field) = obj.keys().find(|k| !fields.contains(&k.as_str())) {
        // `op` and `id` are fields too: `ide` is a typo of `id`.
        let known: Vec<&str> = ["op", "id"].iter().chain(fields.iter()).copied().collect();
        let message = unknown_name("field", field, &format!(" in {op}"), &known);
        return (id, Err(bad(message)));
    }
    let req = match *op {
        "subscribe" => topics_field(&obj).and_then(|topics| {
            let since = match obj.get("since") {
                None | Some(Value::Null) => HashMap::new(),
                Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
                    bad("`since` must be an object of topic -> seq (non-negative integer)")
                })?,
            };
            let epoch = match obj.get("epoch") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => return Err(bad("`epoch` must be a string")),
            };
            let max_rate = match obj.get("max_rate") {
                None | Some(Value::Null) => None,
                Some(v) => Some(max_rate(v.as_f64()).map_err(bad)?),
            };
            let delta = match obj.get("delta") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(bad(DELTA)),
            };
            Ok(Request::Subscribe {
                topics,
                since,
                epoch,
                max_rate,
                delta,
            })
        }),
        "unsubscribe" => topics_field(&obj).map(|topics| Request::Unsubscribe { topics }),
        "topics" => Ok(Request::Topics),
        "ping" => Ok(Request::Ping),
        "publish" => publish_request(obj),
        "refresh" => refresh_request(obj),
        other => unreachable!("`{other}` is in OPS without a parser"),
    };
    (id, req)
}

/// The fields of `publish` (only `topic`, `data` and `items`, checked with
/// every op's): `topic` and `data`, or `items`.
fn publish_request(mut obj: serde_json::Map<String, Value>) -> Result<Request, RequestError> {
    match obj.remove("items") {
        Some(_) if !obj.is_empty() => Err(bad(
            "publish takes `topic` and `data`, or `items`, not both",
        )),
        Some(Value::Array(items)) if !items.is_empty() => Ok(Request::Publish { items }),
        Some(_) => Err(bad(
            "`items` must be a non-empty array of {\"topic\",\"data\"} objects",
        )),
        None => {
            if !matches!(obj.get("topic"), Some(Value::String(_))) {
                return Err(bad("`topic` must be a string"));
            }
            if !obj.contains_key("data") {
                return Err(bad("missing `data`"));
            }
            Ok(Request::Publish {
                items: vec![Value::Object(obj)],
            })
        }
    }
}

/// The field of `refresh` (only `token`, checked with every op's).
fn refresh_request(mut obj: serde_json::Map<String, Value>) -> Result<Request, RequestError> {
    match obj.remove("token") {
        Some(Value::String(token)) => Ok(Request::Refresh { token }),
        _ => Err(bad("`token` must be a string (the new token)")),
    }
}

fn topics_field(obj: &serde_json::Map<String, Value>) -> Result<Vec<String>, RequestError> {
    let Some(Value::Array(items)) = obj.get("topics") else {
        return Err(bad("`topics` must be an array of strings"));
    };
    if items.is_empty() {
        return Err(bad("`topics` is empty"));
    }
    items
        .iter()
        .map(|t| match t {
            Value::String(s) => Ok(s.clone()),
            _ => Err(bad("`topics` must be an array of strings")),
        })
        .collect()
}
