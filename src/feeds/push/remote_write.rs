//! `remote_write`: takes Prometheus remote-write 1.0 on `POST /api/v1/write`
//! (a snappy-compressed protobuf `WriteRequest`; `server/push.rs` decompresses
//! it). Each sample becomes `{"name", "labels", "value", "time"}` (`labels`
//! without `__name__`; `time` in ms). A feed's `match` list (label matchers
//! such as `job="node"`, also `!=`, `=~`, `!~`, as in PromQL) picks the series
//! it takes; without one it takes every series.
//!
//! The protobuf messages are the few of `prometheus/prompb` that a 1.0 write
//! uses, declared with prost's derive (no protoc at build time); fields this
//! kind does not read (metadata, native histograms) are skipped.

use std::sync::Arc;

use prost::Message as _;
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use super::{Batch, Inlets, PushItem, Refused, Taker};
use crate::feeds::options::{Bad, KindOptions};
use crate::feeds::registry::{self, BuiltinKind};
use crate::feeds::{Feed, FeedContext};
use crate::topic::{field_by, Found};

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct WriteRequest {
    /// The series written.
    #[prost(message, repeated, tag = "1")]
    pub(crate) timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TimeSeries {
    /// Its labels, `__name__` among them.
    #[prost(message, repeated, tag = "1")]
    pub(crate) labels: Vec<Label>,
    /// Its samples.
    #[prost(message, repeated, tag = "2")]
    pub(crate) samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Label {
    /// The label's name.
    #[prost(string, tag = "1")]
    pub(crate) name: String,
    /// Its value.
    #[prost(string, tag = "2")]
    pub(crate) value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Sample {
    /// The value.
    #[prost(double, tag = "1")]
    pub(crate) value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub(crate) timestamp: i64,
}

/// Prometheus' staleness marker: a NaN with these bits, sent when a series
/// disappears. It is not a value, so it is not published.
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// `kind = "remote_write"`.
pub(crate) const KIND: BuiltinKind = BuiltinKind {
    name: "remote_write",
    check: registry::check::<RemoteWriteOptions>,
    build: |c| {
        let o: RemoteWriteOptions = registry::options(c)?;
        let matchers = o
            .matchers
            .iter()
            .map(|m| Matcher::parse(m))
            .collect::<Result<Vec<_>, _>>()
            .map_err(anyhow::Error::msg)?;
        Ok(Arc::new(RemoteWriteFeed(matchers.into())))
    },
};

/// `remote_write`: which series the feed takes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RemoteWriteOptions {
    /// Label matchers a series must all satisfy, e.g. `['job="node"']`.
    #[serde(default, rename = "match")]
    pub(crate) matchers: Vec<String>,
}

impl KindOptions for RemoteWriteOptions {
    fn check(&self, bad: Bad<'_>) {
        for m in &self.matchers {
            if let Err(e) = Matcher::parse(m) {
                bad("match", e);
            }
        }
    }
}

/// One label matcher: `label op "value"`.
#[derive(Debug, Clone)]
pub(crate) struct Matcher {
    label: String,
    op: Op,
}

#[derive(Debug, Clone)]
enum Op {
    Eq(String),
    Ne(String),
    Re(regex::Regex),
    NotRe(regex::Regex),
}

impl Matcher {
    /// Parses `label="value"` (`=`, `!=`, `=~`, `!~`; the value a
    /// double-quoted string, a regex matched whole as in PromQL).
    ///
    /// # Errors
    /// What is wrong, with an example of a good matcher.
    pub(crate) fn parse(text: &str) -> Result<Matcher, String> {
        let bad = |why: &str| {
            format!(
                "`match` entry `{text}`: {why}; a matcher is `label=\"value\"` (or `!=`, `=~`, \
                 `!~`), e.g. 'job=\"node\"'"
            )
        };
        let at = text.find(['=', '!']).ok_or_else(|| bad("no operator"))?;
        let label = text[..at].trim();
        if label.is_empty() || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad("the label name must be [A-Za-z0-9_]+"));
        }
        let rest = &text[at..];
        let (op, value) = ["=~", "!~", "!=", "="]
            .iter()
            .find_map(|op| rest.strip_prefix(op).map(|v| (*op, v.trim())))
            .ok_or_else(|| bad("unknown operator"))?;
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or_else(|| bad("the value must be in double quotes"))?
            .replace("\\\"", "\"");
        let regex = || {
            regex::Regex::new(&format!("^(?:{value})$"))
                .map_err(|e| bad(&format!("bad regex: {e}")))
        };
        let op = match op {
            "=" => Op::Eq(value),
            "!=" => Op::Ne(value),
            "=~" => Op::Re(regex()?),
            _ => Op::NotRe(regex()?),
        };
        Ok(Matcher {
            label: label.to_string(),
            op,
        })
    }

    /// Does a series with `labels` satisfy this matcher? A missing label is
    /// the empty string, as in PromQL.
    fn matches(&self, labels: &[Label]) -> bool {
        let value = labels
            .iter()
            .find(|l| l.name == self.label)
            .map_or("", |l| l.value.as_str());
        match &self.op {
            Op::Eq(v) => value == v,
            Op::Ne(v) => value != v,
            Op::Re(r) => r.is_match(value),
            Op::NotRe(r) => !r.is_match(value),
        }
    }
}

/// A running `remote_write` feed: registered with its matchers until cancelled.
#[derive(Debug)]
pub(crate) struct RemoteWriteFeed(Arc<[Matcher]>);

impl Feed for RemoteWriteFeed {
    async fn run(&self, ctx: FeedContext) -> anyhow::Result<()> {
        let matchers = self.0.clone();
        super::serve(ctx, Taker::RemoteWrite { matchers }).await
    }
}

/// Decodes one (decompressed) `WriteRequest` and plans each sample for every
/// feed whose matchers its series satisfies.
///
/// # Errors
/// No `remote_write` feed runs (404), or the body is not a `WriteRequest`
/// (400): nothing is planned.
pub(crate) fn ingest(inlets: &Inlets, body: &[u8]) -> Result<Batch, Refused> {
    let feeds = inlets.takers(|t| match t {
        Taker::RemoteWrite { matchers } => Some(matchers.clone()),
        _ => None,
    });
    if feeds.is_empty() {
        return Err(Refused::NoTaker(
            "no remote_write feed: add a [[feed]] with kind = \"remote_write\" to take \
             Prometheus remote-write"
                .into(),
        ));
    }
    let mut request = WriteRequest::decode(body).map_err(|e| {
        Refused::Invalid(format!(
            "the body is not a Prometheus remote-write 1.0 WriteRequest (snappy-compressed \
             protobuf): {e}"
        ))
    })?;
    let samples: usize = request.timeseries.iter().map(|s| s.samples.len()).sum();
    // About 100 bytes of text a sample: the buffers grow rarely.
    let mut batch = Batch::with_capacity(samples, samples * 100);
    let mut takers: Vec<&FeedContext> = Vec::with_capacity(feeds.len());
    for series in &mut request.timeseries {
        // Matched as sent (a repeated label: its first value, as before).
        takers.clear();
        takers.extend(
            feeds
                .iter()
                .filter(|(m, _)| m.iter().all(|m| m.matches(&series.labels)))
                .map(|(_, ctx)| ctx),
        );
        if takers.is_empty() {
            continue;
        }
        each_sample(series, |sample, len| {
            batch.plan(takers.iter().copied(), len, sample)
        });
    }
    Ok(batch)
}

/// Hands each sample of `series` (Prometheus' staleness markers aside) to
/// `each` as its item, with its share of the series' encoded size (for
/// `max_item_bytes`). The labels are first kept as the item's map
/// (`push::as_map`).
fn each_sample(series: &mut TimeSeries, mut each: impl FnMut(&SampleItem<'_>, usize)) {
    let len = series.encoded_len() / series.samples.len().max(1);
    super::as_map(&mut series.labels, |l| &l.name);
    let name = super::entry(&series.labels, NAME, |l| &l.name).map_or("", |l| &l.value);
    for s in &series.samples {
        if s.value.to_bits() == STALE_NAN {
            continue;
        }
        let sample = SampleItem {
            name,
            labels: &series.labels,
            value: s.value,
            time: s.timestamp,
        };
        each(&sample, len);
    }
}

/// The label that holds a series' name.
const NAME: &str = "__name__";

/// A sample as its item, `{"labels", "name", "time", "value"}` (`labels`
/// without `__name__`, `time` in ms, a `value` that is no JSON number
/// `null`): its `Serialize` is the one function that makes the item's shape
/// (see `push::PushItem`).
struct SampleItem<'p> {
    name: &'p str,
    /// The series' labels, kept by `push::as_map`, `__name__` among them.
    labels: &'p [Label],
    value: f64,
    time: i64,
}

impl Serialize for SampleItem<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Labels<'p>(&'p [Label]);
        impl Serialize for Labels<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let labels = self.0.iter().filter(|l| l.name != NAME);
                s.collect_map(labels.map(|l| (&l.name, &l.value)))
            }
        }
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("labels", &Labels(self.labels))?;
        m.serialize_entry("name", self.name)?;
        m.serialize_entry("time", &self.time)?;
        m.serialize_entry("value", &self.value)?;
        m.end()
    }
}

/// A place in a sample's item, for [`field_by`].
#[derive(Clone, Copy)]
enum Node<'p> {
    Sample(&'p SampleItem<'p>),
    Labels(&'p [Label]),
    Text(&'p str),
    Float(f64),
    Int(i64),
}

impl<'p> Node<'p> {
    /// The entry `key` of this node, if it is an object that has one.
    fn get(self, key: &str) -> Option<Self> {
        match self {
            Node::Sample(s) => match key {
                "name" => Some(Node::Text(s.name)),
                "labels" => Some(Node::Labels(s.labels)),
                "value" => Some(Node::Float(s.value)),
                "time" => Some(Node::Int(s.time)),
                _ => None,
            },
            Node::Labels(labels) if key != NAME => {
                super::entry(labels, key, |l| &l.name).map(|l| Node::Text(&l.value))
            }
            _ => None,
        }
    }

    fn found(self) -> Found<'p> {
        match self {
            Node::Sample(_) | Node::Labels(_) => Found::Other,
            Node::Text(t) => Found::Str(t),
            Node::Float(f) => Found::float(f),
            Node::Int(i) => Found::Number(i.into()),
        }
    }
}

impl PushItem for SampleItem<'_> {
    fn found(&self, path: &str) -> Option<Found<'_>> {
        field_by(Node::Sample(self), path, Node::get).map(Node::found)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
        pairs
            .iter()
            .map(|(n, v)| Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect()
    }

    /// Each operator matches as in PromQL (regexes whole, a missing label
    /// empty); a bad matcher names itself and shows a good one.
    #[test]
    fn matchers_select_series() {
        let l = labels(&[("job", "node"), ("instance", "a:9100")]);
        let m = |t: &str| Matcher::parse(t).unwrap().matches(&l);
        assert!(m(r#"job="node""#));
        assert!(!m(r#"job!="node""#));
        assert!(m(r#"instance=~"a:.*""#));
        assert!(!m(r#"instance=~"a""#));
        assert!(m(r#"job!~"prom.*""#));
        assert!(m(r#"missing="""#));
        let err = Matcher::parse("job=node").unwrap_err();
        assert!(
            err.contains("double quotes") && err.contains("e.g."),
            "{err}"
        );
        assert!(Matcher::parse(r#"job=~"(""#).is_err());
    }

    /// A sample's published text is, byte for byte, the JSON of the `Value`
    /// a `transform` feed gets, and reads back as it: labels sorted, a
    /// repeated label's last value (`__name__` too, left out of `labels`),
    /// escapes and unicode, a value that is no JSON number `null`, the
    /// staleness marker skipped; placeholders find what the `Value` has.
    #[test]
    fn the_text_is_the_json_of_its_value() {
        let mut series = TimeSeries {
            labels: labels(&[
                ("job", "a \"q\" \\ b"),
                ("__name__", "first"),
                ("zone", "Zürich 🚀 \u{1}"),
                ("Host", "h1"),
                ("__name__", "up"),
                ("job", "node"),
            ]),
            samples: [
                1.5,
                f64::NAN,
                f64::from_bits(STALE_NAN),
                f64::INFINITY,
                1e308,
            ]
            .iter()
            .map(|v| Sample {
                value: *v,
                timestamp: i64::MIN,
            })
            .collect(),
        };
        let mut got = Vec::new();
        each_sample(&mut series, |sample, _| {
            let value = serde_json::to_value(sample).unwrap();
            let text = serde_json::to_string(sample).unwrap();
            assert_eq!(text, serde_json::to_string(&value).unwrap());
            assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), value);
            for path in [
                "name",
                "value",
                "time",
                "labels",
                "labels.job",
                "labels.Host",
                "labels.__name__",
                "labels.job.x",
                "nope",
            ] {
                let want = crate::topic::field(&value, path).map(Found::of);
                assert_eq!(sample.found(path), want, "{path}");
            }
            got.push(value);
        });
        assert_eq!(got.len(), 4, "the staleness marker is no sample");
        assert_eq!(
            got[0],
            serde_json::json!({"name": "up", "value": 1.5, "time": i64::MIN,
                "labels": {"Host": "h1", "job": "node", "zone": "Zürich 🚀 \u{1}"}})
        );
        assert_eq!(
            (&got[1]["value"], &got[2]["value"]),
            (&Value::Null, &Value::Null)
        );
        assert_eq!(got[3]["value"], 1e308);
    }
}
