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
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Batch, Inlets, Refused, Taker};
use crate::feeds::options::{Bad, KindOptions};
use crate::feeds::registry::{self, BuiltinKind};
use crate::feeds::{Feed, FeedContext};

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
    let request = WriteRequest::decode(body).map_err(|e| {
        Refused::Invalid(format!(
            "the body is not a Prometheus remote-write 1.0 WriteRequest (snappy-compressed \
             protobuf): {e}"
        ))
    })?;
    let mut batch = Batch::with_capacity(request.timeseries.len());
    for series in &request.timeseries {
        let takers: Vec<&FeedContext> = feeds
            .iter()
            .filter(|(m, _)| m.iter().all(|m| m.matches(&series.labels)))
            .map(|(_, ctx)| ctx)
            .collect();
        if takers.is_empty() {
            continue;
        }
        let mut name = String::new();
        let mut labels = Map::with_capacity(series.labels.len());
        for l in &series.labels {
            if l.name == "__name__" {
                name.clone_from(&l.value);
            } else {
                labels.insert(l.name.clone(), Value::String(l.value.clone()));
            }
        }
        let len = series.encoded_len() / series.samples.len().max(1);
        for s in &series.samples {
            if s.value.to_bits() == STALE_NAN {
                continue;
            }
            let mut item = Map::with_capacity(4);
            item.insert("name".into(), Value::String(name.clone()));
            item.insert("labels".into(), Value::Object(labels.clone()));
            item.insert("value".into(), Value::from(s.value));
            item.insert("time".into(), Value::from(s.timestamp));
            let item = Value::Object(item);
            for ctx in &takers {
                batch.plan(ctx, len, item.clone());
            }
        }
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
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
}
