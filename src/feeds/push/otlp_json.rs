//! The OTLP/JSON encoding of a metrics export, read into the same messages
//! as the protobuf one (`otlp_proto`), so both become items one way. Field
//! names are lowerCamelCase; 64-bit integers may be strings (the spec's
//! encoding) or numbers; unknown fields are ignored, as OTLP requires.

use serde_json::Value;

use super::otlp_proto::*;

/// Reads an `ExportMetricsServiceRequest` from its JSON.
///
/// # Errors
/// The body is not JSON, or a field has the wrong type (named by its path).
pub(crate) fn decode(body: &[u8]) -> Result<ExportMetricsServiceRequest, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    if !v.is_object() {
        return Err("an OTLP/JSON export is an object with `resourceMetrics`".into());
    }
    let resource_metrics = list(&v, "resourceMetrics")?
        .iter()
        .map(resource_metrics)
        .collect::<Result<_, _>>()?;
    Ok(ExportMetricsServiceRequest { resource_metrics })
}

fn list<'a>(v: &'a Value, key: &str) -> Result<&'a [Value], String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(format!("`{key}` must be an array")),
    }
}

fn resource_metrics(v: &Value) -> Result<ResourceMetrics, String> {
    let resource = match v.get("resource") {
        Some(r) => Some(Resource {
            attributes: attributes(r)?,
        }),
        None => None,
    };
    let scope_metrics = list(v, "scopeMetrics")?
        .iter()
        .map(|s| {
            let metrics = list(s, "metrics")?
                .iter()
                .map(metric)
                .collect::<Result<_, _>>()?;
            Ok(ScopeMetrics { metrics })
        })
        .collect::<Result<_, String>>()?;
    Ok(ResourceMetrics {
        resource,
        scope_metrics,
    })
}

fn metric(v: &Value) -> Result<Metric, String> {
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let numbers = |d: &Value| -> Result<Vec<NumberDataPoint>, String> {
        list(d, "dataPoints")?.iter().map(number_point).collect()
    };
    let data = if let Some(g) = v.get("gauge") {
        Some(Data::Gauge(Gauge {
            data_points: numbers(g)?,
        }))
    } else if let Some(s) = v.get("sum") {
        Some(Data::Sum(Sum {
            data_points: numbers(s)?,
        }))
    } else if let Some(h) = v.get("histogram") {
        let data_points = list(h, "dataPoints")?
            .iter()
            .map(histogram_point)
            .collect::<Result<_, _>>()?;
        Some(Data::Histogram(Histogram { data_points }))
    } else {
        None
    };
    Ok(Metric { name, data })
}

fn number_point(v: &Value) -> Result<NumberDataPoint, String> {
    let value = if let Some(d) = v.get("asDouble") {
        Some(NumberValue::AsDouble(float(d, "asDouble")?))
    } else if let Some(i) = v.get("asInt") {
        Some(NumberValue::AsInt(int(i, "asInt")?))
    } else {
        None
    };
    Ok(NumberDataPoint {
        attributes: attributes(v)?,
        time_unix_nano: uint(v.get("timeUnixNano"), "timeUnixNano")?,
        value,
    })
}

fn histogram_point(v: &Value) -> Result<HistogramDataPoint, String> {
    let opt = |key: &str| v.get(key).map(|x| float(x, key)).transpose();
    Ok(HistogramDataPoint {
        attributes: attributes(v)?,
        time_unix_nano: uint(v.get("timeUnixNano"), "timeUnixNano")?,
        count: uint(v.get("count"), "count")?,
        sum: opt("sum")?,
        bucket_counts: list(v, "bucketCounts")?
            .iter()
            .map(|c| uint(Some(c), "bucketCounts"))
            .collect::<Result<_, _>>()?,
        explicit_bounds: list(v, "explicitBounds")?
            .iter()
            .map(|b| float(b, "explicitBounds"))
            .collect::<Result<_, _>>()?,
        min: opt("min")?,
        max: opt("max")?,
    })
}

fn attributes(v: &Value) -> Result<Vec<KeyValue>, String> {
    list(v, "attributes")?.iter().map(key_value).collect()
}

fn key_value(v: &Value) -> Result<KeyValue, String> {
    let key = v
        .get("key")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let value = v.get("value").map(any_value).transpose()?;
    Ok(KeyValue { key, value })
}

fn any_value(v: &Value) -> Result<AnyValue, String> {
    let value = if let Some(s) = v.get("stringValue").and_then(Value::as_str) {
        Some(Any::String(s.to_string()))
    } else if let Some(b) = v.get("boolValue").and_then(Value::as_bool) {
        Some(Any::Bool(b))
    } else if let Some(i) = v.get("intValue") {
        Some(Any::Int(int(i, "intValue")?))
    } else if let Some(d) = v.get("doubleValue") {
        Some(Any::Double(float(d, "doubleValue")?))
    } else if let Some(a) = v.get("arrayValue") {
        let values = list(a, "values")?
            .iter()
            .map(any_value)
            .collect::<Result<_, _>>()?;
        Some(Any::Array(ArrayValue { values }))
    } else if let Some(l) = v.get("kvlistValue") {
        let values = list(l, "values")?
            .iter()
            .map(key_value)
            .collect::<Result<_, _>>()?;
        Some(Any::Kvlist(KeyValueList { values }))
    } else {
        None
    };
    Ok(AnyValue { value })
}

/// A 64-bit integer, as a JSON number or a decimal string.
fn int(v: &Value, key: &str) -> Result<i64, String> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("`{key}` must be an integer (a number or a decimal string)"))
}

/// An unsigned 64-bit integer (absent: 0), as a JSON number or a decimal string.
fn uint(v: Option<&Value>, key: &str) -> Result<u64, String> {
    match v {
        None | Some(Value::Null) => Some(0),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        Some(_) => None,
    }
    .ok_or_else(|| format!("`{key}` must be an unsigned integer (a number or a decimal string)"))
}

/// A float, as a JSON number or (for `NaN`, `Infinity`) a string.
fn float(v: &Value, key: &str) -> Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("`{key}` must be a number"))
}
