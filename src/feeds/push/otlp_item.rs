//! An OTLP data point as its item, `{"attributes", "name", "resource",
//! "time", "value"}`, written straight from the decoded export (protobuf and
//! JSON alike): [`DataPoint`]'s `Serialize` is the one function that makes
//! the item's shape (see `push::PushItem`). `value` is the point's number
//! (`null` when it has none), or a histogram's `{"buckets": [{"count",
//! "le"}...], "count", "max", "min", "sum"}` (per-bucket counts, the last
//! bucket's `le` the string `"+Inf"`); attributes are objects (a `kvlist`
//! too, an `array` a list); a float that is no JSON number (`NaN`, `inf`) is
//! `null`.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use prost::Message as _;

use super::otlp_proto::{
    Any, AnyValue, Data, ExportMetricsServiceRequest, Gauge, HistogramDataPoint, KeyValue,
    NumberValue, ResourceMetrics, Sum,
};
use super::PushItem;
use crate::topic::{field_by, Found};

/// One data point of a metric, with what its item shows of its metric and
/// resource. Its attribute lists must have been kept by [`keep_as_maps`].
pub(crate) struct DataPoint<'p> {
    /// The metric's name.
    pub(crate) name: &'p str,
    /// The point's attributes.
    pub(crate) attributes: &'p [KeyValue],
    /// Its resource's attributes.
    pub(crate) resource: &'p [KeyValue],
    /// Its value.
    pub(crate) value: PointValue<'p>,
    /// When it was measured, ns since the epoch (the item has ms).
    pub(crate) time_unix_nano: u64,
}

/// A data point's value.
#[derive(Clone, Copy)]
pub(crate) enum PointValue<'p> {
    /// A gauge's or a sum's number, if it has one.
    Number(Option<&'p NumberValue>),
    /// An explicit-bucket histogram's counts.
    Histogram(&'p HistogramDataPoint),
}

/// Hands each data point of `request` to `each`, with its encoded size (its
/// share of the write, for `max_item_bytes`). Each attribute list is first
/// kept as an object's entries ([`keep_as_maps`]).
pub(crate) fn each_point(
    request: &mut ExportMetricsServiceRequest,
    mut each: impl FnMut(&DataPoint<'_>, usize),
) {
    for rm in &mut request.resource_metrics {
        let ResourceMetrics {
            resource,
            scope_metrics,
        } = rm;
        let resource = match resource {
            Some(r) => {
                keep_as_maps(&mut r.attributes);
                &r.attributes[..]
            }
            None => &[],
        };
        for metric in scope_metrics.iter_mut().flat_map(|s| &mut s.metrics) {
            let name = &metric.name;
            let mut point = |attributes: &[KeyValue], value, time_unix_nano, len| {
                let point = DataPoint {
                    name,
                    attributes,
                    resource,
                    value,
                    time_unix_nano,
                };
                each(&point, len);
            };
            match &mut metric.data {
                Some(Data::Gauge(Gauge { data_points }) | Data::Sum(Sum { data_points })) => {
                    for p in data_points {
                        let len = p.encoded_len();
                        keep_as_maps(&mut p.attributes);
                        let value = PointValue::Number(p.value.as_ref());
                        point(&p.attributes, value, p.time_unix_nano, len);
                    }
                }
                Some(Data::Histogram(h)) => {
                    for p in &mut h.data_points {
                        let len = p.encoded_len();
                        keep_as_maps(&mut p.attributes);
                        let p = &*p;
                        point(
                            &p.attributes,
                            PointValue::Histogram(p),
                            p.time_unix_nano,
                            len,
                        );
                    }
                }
                None => {}
            }
        }
    }
}

/// Keeps `attributes`, and every `kvlist` within them, as an object's
/// entries (`push::as_map`), so that each writes as the object it is.
pub(crate) fn keep_as_maps(attributes: &mut Vec<KeyValue>) {
    super::as_map(attributes, |kv| &kv.key);
    for kv in attributes {
        if let Some(v) = &mut kv.value {
            keep_any(v);
        }
    }
}

fn keep_any(v: &mut AnyValue) {
    match &mut v.value {
        Some(Any::Kvlist(l)) => keep_as_maps(&mut l.values),
        Some(Any::Array(a)) => a.values.iter_mut().for_each(keep_any),
        _ => {}
    }
}

/// Attributes as an object.
struct Attributes<'p>(&'p [KeyValue]);

impl Serialize for Attributes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(
            self.0
                .iter()
                .map(|kv| (&kv.key, Attribute(kv.value.as_ref()))),
        )
    }
}

/// An attribute's value (absent: `null`).
struct Attribute<'p>(Option<&'p AnyValue>);

impl Serialize for Attribute<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.and_then(|v| v.value.as_ref()) {
            None => s.serialize_unit(),
            Some(Any::String(t)) => s.serialize_str(t),
            Some(Any::Bool(b)) => s.serialize_bool(*b),
            Some(Any::Int(i)) => s.serialize_i64(*i),
            Some(Any::Double(d)) => s.serialize_f64(*d),
            Some(Any::Array(a)) => s.collect_seq(a.values.iter().map(|v| Attribute(Some(v)))),
            Some(Any::Kvlist(l)) => Attributes(&l.values).serialize(s),
        }
    }
}

impl Serialize for DataPoint<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("attributes", &Attributes(self.attributes))?;
        m.serialize_entry("name", self.name)?;
        m.serialize_entry("resource", &Attributes(self.resource))?;
        m.serialize_entry("time", &(self.time_unix_nano / 1_000_000))?;
        m.serialize_entry("value", &self.value)?;
        m.end()
    }
}

impl Serialize for PointValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PointValue::Number(None) => s.serialize_unit(),
            PointValue::Number(Some(NumberValue::AsDouble(d))) => s.serialize_f64(*d),
            PointValue::Number(Some(NumberValue::AsInt(i))) => s.serialize_i64(*i),
            PointValue::Histogram(h) => {
                let mut m = s.serialize_map(Some(5))?;
                m.serialize_entry("buckets", &Buckets(h))?;
                m.serialize_entry("count", &h.count)?;
                m.serialize_entry("max", &h.max)?;
                m.serialize_entry("min", &h.min)?;
                m.serialize_entry("sum", &h.sum)?;
                m.end()
            }
        }
    }
}

/// A histogram's buckets: `[{"count","le"}...]`.
struct Buckets<'p>(&'p HistogramDataPoint);

impl Serialize for Buckets<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let h = self.0;
        s.collect_seq(h.bucket_counts.iter().enumerate().map(|(i, count)| Bucket {
            count: *count,
            le: h.explicit_bounds.get(i).copied(),
        }))
    }
}

/// One bucket: its count and upper bound (`None`: the last, `"+Inf"`).
struct Bucket {
    count: u64,
    le: Option<f64>,
}

impl Serialize for Bucket {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("count", &self.count)?;
        match self.le {
            Some(le) => m.serialize_entry("le", &le)?,
            None => m.serialize_entry("le", "+Inf")?,
        }
        m.end()
    }
}

/// A place in a data point's item, for [`field_by`].
#[derive(Clone, Copy)]
enum Node<'p> {
    Point(&'p DataPoint<'p>),
    Attributes(&'p [KeyValue]),
    Attribute(Option<&'p AnyValue>),
    Text(&'p str),
    Value(PointValue<'p>),
    /// A histogram's `sum`, `min` or `max`.
    Float(Option<f64>),
    UInt(u64),
    /// A histogram's bucket list.
    List,
}

impl<'p> Node<'p> {
    /// The entry `key` of this node, if it is an object that has one.
    fn get(self, key: &str) -> Option<Self> {
        let attribute = |list: &'p [KeyValue]| {
            super::entry(list, key, |kv| &kv.key).map(|kv| Node::Attribute(kv.value.as_ref()))
        };
        match self {
            Node::Point(p) => match key {
                "name" => Some(Node::Text(p.name)),
                "attributes" => Some(Node::Attributes(p.attributes)),
                "resource" => Some(Node::Attributes(p.resource)),
                "time" => Some(Node::UInt(p.time_unix_nano / 1_000_000)),
                "value" => Some(Node::Value(p.value)),
                _ => None,
            },
            Node::Attributes(list) => attribute(list),
            Node::Attribute(Some(AnyValue {
                value: Some(Any::Kvlist(l)),
            })) => attribute(&l.values),
            Node::Value(PointValue::Histogram(h)) => match key {
                "count" => Some(Node::UInt(h.count)),
                "sum" => Some(Node::Float(h.sum)),
                "min" => Some(Node::Float(h.min)),
                "max" => Some(Node::Float(h.max)),
                "buckets" => Some(Node::List),
                _ => None,
            },
            _ => None,
        }
    }

    fn found(self) -> Found<'p> {
        match self {
            Node::Text(t) => Found::Str(t),
            Node::UInt(u) => Found::Number(u.into()),
            Node::Float(Some(f)) => Found::float(f),
            Node::Value(PointValue::Number(Some(NumberValue::AsDouble(d)))) => Found::float(*d),
            Node::Value(PointValue::Number(Some(NumberValue::AsInt(i)))) => {
                Found::Number((*i).into())
            }
            Node::Attribute(v) => match v.and_then(|v| v.value.as_ref()) {
                Some(Any::String(t)) => Found::Str(t),
                Some(Any::Bool(b)) => Found::Bool(*b),
                Some(Any::Int(i)) => Found::Number((*i).into()),
                Some(Any::Double(d)) => Found::float(*d),
                _ => Found::Other,
            },
            _ => Found::Other,
        }
    }
}

impl PushItem for DataPoint<'_> {
    fn found(&self, path: &str) -> Option<Found<'_>> {
        field_by(Node::Point(self), path, Node::get).map(Node::found)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::topic::field;

    /// An OTLP/JSON export of a gauge (an int, a double, one without a
    /// value), a sum and a histogram, with tricky attributes: unsorted and
    /// repeated keys, nested `kvlist`s, arrays, escapes and unicode, 64-bit
    /// limits, `NaN` and infinities.
    const EXPORT: &str = r#"{"resourceMetrics": [{
      "resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "shop \"eu\" \\ 1"}},
        {"key": "a", "value": {"intValue": "-9223372036854775808"}}]},
      "scopeMetrics": [{"metrics": [
        {"name": "g", "gauge": {"dataPoints": [
          {"asInt": "9223372036854775807", "timeUnixNano": "1700000000123456789",
           "attributes": [
             {"key": "z", "value": {"boolValue": true}},
             {"key": "host", "value": {"stringValue": "h1"}},
             {"key": "host", "value": {"stringValue": "h2"}},
             {"key": "uni", "value": {"stringValue": "Zürich 🚀 \u0001 \u2028"}},
             {"key": "nan", "value": {"doubleValue": "NaN"}},
             {"key": "inf", "value": {"doubleValue": "-Infinity"}},
             {"key": "none"},
             {"key": "arr", "value": {"arrayValue": {"values": [
               {"intValue": 1}, {"stringValue": "x"},
               {"kvlistValue": {"values": [{"key": "b", "value": {"intValue": 2}},
                                           {"key": "a", "value": {"intValue": 1}}]}}]}}},
             {"key": "nested", "value": {"kvlistValue": {"values": [
               {"key": "k", "value": {"stringValue": "first"}},
               {"key": "j", "value": {"doubleValue": 0.1}},
               {"key": "k", "value": {"stringValue": "last"}}]}}}]},
          {"asDouble": 1e308, "timeUnixNano": 1},
          {"asDouble": "NaN", "timeUnixNano": 2},
          {"timeUnixNano": 3}]}},
        {"name": "s", "sum": {"dataPoints": [{"asDouble": -0.0}]}},
        {"name": "h", "histogram": {"dataPoints": [
          {"count": "18446744073709551615", "sum": 12.5, "min": "-Infinity",
           "bucketCounts": [1, "2", 3], "explicitBounds": [0.5, 1e-7],
           "attributes": [{"key": "host", "value": {"stringValue": "h9"}}]},
          {"count": 0, "bucketCounts": [0]}]}}]}]}]}"#;

    /// Every data point of [`EXPORT`]: its text and its `Value`, and what
    /// placeholders find in it against what they find in the `Value`.
    fn points(paths: &[&str]) -> Vec<(String, Value)> {
        let mut request = super::super::otlp_json::decode(EXPORT.as_bytes()).unwrap();
        let mut got = Vec::new();
        each_point(&mut request, |point, _| {
            let value = serde_json::to_value(point).unwrap();
            for path in paths {
                let want = field(&value, path).map(Found::of);
                assert_eq!(point.found(path), want, "{path} in {value}");
            }
            got.push((serde_json::to_string(point).unwrap(), value));
        });
        got
    }

    /// The text published for a data point is, byte for byte, the JSON of
    /// the `Value` a `transform` feed gets (keys sorted, a repeated key's
    /// last value, at every depth), and reads back as that value.
    #[test]
    fn the_text_is_the_json_of_its_value() {
        let got = points(&[]);
        assert_eq!(got.len(), 7);
        for (text, value) in &got {
            assert_eq!(text, &serde_json::to_string(value).unwrap());
            assert_eq!(&serde_json::from_str::<Value>(text).unwrap(), value);
        }
        let (_, first) = &got[0];
        assert_eq!(
            first,
            &json!({
                "name": "g", "time": 1_700_000_000_123u64, "value": i64::MAX,
                "resource": {"service.name": "shop \"eu\" \\ 1", "a": i64::MIN},
                "attributes": {
                    "z": true, "host": "h2", "uni": "Zürich 🚀 \u{1} \u{2028}",
                    "nan": null, "inf": null, "none": null,
                    "arr": [1, "x", {"a": 1, "b": 2}],
                    "nested": {"j": 0.1, "k": "last"}}})
        );
        let values: Vec<&Value> = got.iter().map(|(_, v)| &v["value"]).collect();
        assert_eq!(values[1], &json!(1e308));
        assert_eq!((values[2], values[3]), (&Value::Null, &Value::Null));
        assert_eq!(
            values[5],
            &json!({"count": u64::MAX, "sum": 12.5, "min": null, "max": null,
                    "buckets": [{"le": 0.5, "count": 1}, {"le": 1e-7, "count": 2},
                                {"le": "+Inf", "count": 3}]})
        );
    }

    /// A topic placeholder finds in a data point what it finds in its
    /// `Value` (`topic::field`), nested attributes and histogram fields
    /// included.
    #[test]
    fn placeholders_find_what_the_value_has() {
        points(&[
            "name",
            "time",
            "value",
            "attributes",
            "attributes.host",
            "attributes.z",
            "attributes.nan",
            "attributes.inf",
            "attributes.none",
            "attributes.arr",
            "attributes.arr.0",
            "attributes.nested",
            "attributes.nested.k",
            "attributes.nested.j",
            "attributes.nested.k.x",
            "resource",
            "resource.a",
            "resource.service.name",
            "value.count",
            "value.sum",
            "value.min",
            "value.buckets",
            "value.nope",
            "nope",
        ]);
    }
}
