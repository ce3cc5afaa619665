//! `otlp`: takes OpenTelemetry metrics over OTLP/HTTP, `POST /v1/metrics`,
//! protobuf (`otlp_proto`) or JSON (`otlp_json`). Each data point of a gauge,
//! a sum or a histogram becomes `{"name", "attributes", "resource", "value",
//! "time"}`: `value` a number, or for a histogram `{"count", "sum", "min",
//! "max", "buckets": [{"le", "count"}...]}` (per-bucket counts, the last
//! bucket's `le` the string `"+Inf"`); `time` in ms. Every running `otlp`
//! feed takes every export.

use std::sync::Arc;

use prost::Message as _;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::otlp_proto::*;
use super::{Batch, Inlets, Refused, Taker};
use crate::feeds::options::{Bad, KindOptions};
use crate::feeds::registry::{self, BuiltinKind};
use crate::feeds::{Feed, FeedContext};

/// `kind = "otlp"`.
pub(crate) const KIND: BuiltinKind = BuiltinKind {
    name: "otlp",
    check: registry::check::<OtlpOptions>,
    build: |c| {
        let _: OtlpOptions = registry::options(c)?;
        Ok(Arc::new(OtlpFeed))
    },
};

/// `otlp` takes no options of its own.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OtlpOptions {}

impl KindOptions for OtlpOptions {
    fn check(&self, _bad: Bad<'_>) {}
}

/// A running `otlp` feed: registered until cancelled.
#[derive(Debug)]
pub(crate) struct OtlpFeed;

impl Feed for OtlpFeed {
    async fn run(&self, ctx: FeedContext) -> anyhow::Result<()> {
        super::serve(ctx, Taker::Otlp).await
    }
}

/// Decodes one (decompressed) export, protobuf or `json`, and plans each data
/// point for every `otlp` feed.
///
/// # Errors
/// No `otlp` feed runs (404), or the body does not decode (400): nothing is
/// planned.
pub(crate) fn ingest(inlets: &Inlets, body: &[u8], json: bool) -> Result<Batch, Refused> {
    let feeds = inlets.takers(|t| matches!(t, Taker::Otlp).then_some(()));
    if feeds.is_empty() {
        return Err(Refused::NoTaker(
            "no otlp feed: add a [[feed]] with kind = \"otlp\" to take OTLP metrics".into(),
        ));
    }
    let request = if json {
        super::otlp_json::decode(body)
    } else {
        ExportMetricsServiceRequest::decode(body).map_err(|e| e.to_string())
    }
    .map_err(|e| Refused::Invalid(format!("the body is not an OTLP metrics export: {e}")))?;
    let mut batch = Batch::default();
    for rm in &request.resource_metrics {
        let resource = Value::Object(attribute_map(
            rm.resource.as_ref().map_or(&[][..], |r| &r.attributes),
        ));
        for metric in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
            for (attributes, value, time_ns, len) in points(metric) {
                let mut item = Map::with_capacity(5);
                item.insert("name".into(), Value::String(metric.name.clone()));
                item.insert(
                    "attributes".into(),
                    Value::Object(attribute_map(attributes)),
                );
                item.insert("resource".into(), resource.clone());
                item.insert("value".into(), value);
                item.insert("time".into(), Value::from(time_ns / 1_000_000));
                let item = Value::Object(item);
                for (_, ctx) in &feeds {
                    batch.plan(ctx, len, item.clone());
                }
            }
        }
    }
    Ok(batch)
}

/// Each data point of `metric`: its attributes, value, time (ns) and encoded
/// size.
fn points(metric: &Metric) -> Vec<(&[KeyValue], Value, u64, usize)> {
    fn number(p: &NumberDataPoint) -> (&[KeyValue], Value, u64, usize) {
        let value = match p.value {
            Some(NumberValue::AsDouble(d)) => Value::from(d),
            Some(NumberValue::AsInt(i)) => Value::from(i),
            None => Value::Null,
        };
        (&p.attributes[..], value, p.time_unix_nano, p.encoded_len())
    }
    match &metric.data {
        Some(Data::Gauge(g)) => g.data_points.iter().map(number).collect(),
        Some(Data::Sum(s)) => s.data_points.iter().map(number).collect(),
        Some(Data::Histogram(h)) => h
            .data_points
            .iter()
            .map(|p| {
                (
                    &p.attributes[..],
                    histogram(p),
                    p.time_unix_nano,
                    p.encoded_len(),
                )
            })
            .collect(),
        None => Vec::new(),
    }
}

/// A histogram point's value: count, sum, min, max and per-bucket counts.
fn histogram(p: &HistogramDataPoint) -> Value {
    let buckets: Vec<Value> = p
        .bucket_counts
        .iter()
        .enumerate()
        .map(|(i, count)| {
            let le = p
                .explicit_bounds
                .get(i)
                .map_or(Value::from("+Inf"), |b| Value::from(*b));
            serde_json::json!({"le": le, "count": count})
        })
        .collect();
    serde_json::json!({
        "count": p.count,
        "sum": p.sum,
        "min": p.min,
        "max": p.max,
        "buckets": buckets,
    })
}

/// Attributes as a JSON object.
fn attribute_map(attributes: &[KeyValue]) -> Map<String, Value> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), any(kv.value.as_ref())))
        .collect()
}

/// An attribute's value as JSON.
fn any(v: Option<&AnyValue>) -> Value {
    match v.and_then(|v| v.value.as_ref()) {
        None => Value::Null,
        Some(Any::String(s)) => Value::String(s.clone()),
        Some(Any::Bool(b)) => Value::Bool(*b),
        Some(Any::Int(i)) => Value::from(*i),
        Some(Any::Double(d)) => Value::from(*d),
        Some(Any::Array(a)) => Value::Array(a.values.iter().map(|v| any(Some(v))).collect()),
        Some(Any::Kvlist(l)) => Value::Object(attribute_map(&l.values)),
    }
}
