//! `prometheus`: evaluates a PromQL instant query through the HTTP API
//! (`GET <url>/api/v1/query`) every `interval`, on the shared
//! [`poll`](super::poll) loop, and publishes one item per series.
//!
//! An item holds the series' labels as fields (and again, whole, under
//! `labels`), the sample as `value` (a number; `NaN` and infinities are
//! `null`) and its time as `timestamp` (ms since the epoch), so
//! `topic = "host.{instance}.cpu"` fans a query out over topics. A scalar or
//! string result is one item with `value` and `timestamp`.
//!
//! An error answer (`"status": "error"`, a bad query or a timeout on the
//! server), a non-2xx status or a body that is not the API's JSON is an error
//! of that poll: the run ends and the supervisor backs off, showing the
//! server's `errorType` and message on `$sys.feeds`. A password in `url` is
//! shown as `***` wherever the URL is.

use anyhow::Context as _;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::{Map, Number, Value};

use super::options::redact_url;
use super::{poll::poll_with, Feed, FeedContext};

use super::options::{self, secs, Bad, KindOptions};
use super::registry::{self, BuiltinKind};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Largest API answer read, in bytes: past it the poll fails rather than
/// buffer without end (each series is then checked against the item limit).
const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// A polled PromQL query.
#[derive(Debug, Clone)]
pub(super) struct PrometheusFeed {
    options: PrometheusOptions,
    /// `<url>/api/v1/query?query=..`, built once.
    endpoint: reqwest::Url,
    headers: HeaderMap,
    /// One client per feed: it keeps connections alive between polls.
    client: reqwest::Client,
}

impl PrometheusFeed {
    /// A query poller described by `options`.
    ///
    /// # Errors
    /// The URL or a header is invalid, or the HTTP client cannot be built.
    pub(super) fn new(options: PrometheusOptions) -> anyhow::Result<Self> {
        let mut base = reqwest::Url::parse(&options.url)
            .map_err(|e| anyhow::anyhow!("url {}: {e}", redact_url(&options.url)))?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let mut endpoint = base
            .join("api/v1/query")
            .context("building the query URL")?;
        endpoint
            .query_pairs_mut()
            .append_pair("query", &options.query);
        let headers = super::options::header_map(&options.headers)?;
        let client = super::options::http_client(None)?;
        Ok(PrometheusFeed {
            options,
            endpoint,
            headers,
            client,
        })
    }

    /// Runs the query once and returns the API's answer, read up to
    /// [`MAX_RESPONSE_BYTES`].
    async fn fetch(&self) -> anyhow::Result<(reqwest::StatusCode, Vec<u8>)> {
        let shown = redact_url(&self.options.url);
        // reqwest's errors name the URL, password included: show ours instead.
        // The error stays the source (not its text), so the status shows its
        // causes ("Connection refused"), not only "error sending request".
        let mut response = self
            .client
            .get(self.endpoint.clone())
            .headers(self.headers.clone())
            .send()
            .await
            .map_err(|e| anyhow::Error::new(e.without_url()))
            .with_context(|| format!("query to {shown} failed"))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| anyhow::Error::new(e.without_url()))
            .with_context(|| format!("reading the answer of {shown}"))?
        {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                anyhow::bail!("the answer of {shown} is larger than {MAX_RESPONSE_BYTES} bytes");
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }

    /// Publishes the series of one answer; a series too large is its own error.
    fn publish(
        &self,
        ctx: &FeedContext,
        answer: (reqwest::StatusCode, Vec<u8>),
    ) -> anyhow::Result<()> {
        let (status, body) = answer;
        let items = items_of(status.as_u16(), &body)
            .map_err(|e| anyhow::anyhow!("{} from {}", e, redact_url(&self.options.url)))?;
        if items.is_empty() {
            // A query that matches nothing is no error, but say why nothing
            // comes rather than stay `starting` with no word.
            ctx.waiting(format!(
                "no series for query {:?} (yet)",
                self.options.query
            ));
        }
        for item in items {
            let len = serde_json::to_string(&item).map_or(0, |s| s.len());
            if ctx.check_item_bytes(len).is_ok() {
                let _ = ctx.publish(&item);
            }
        }
        Ok(())
    }
}

impl Feed for PrometheusFeed {
    async fn run(&self, ctx: FeedContext) -> anyhow::Result<()> {
        let o = &self.options;
        poll_with(
            &ctx,
            o.interval,
            o.timeout,
            || self.fetch(),
            |answer| self.publish(&ctx, answer),
        )
        .await
    }
}

/// The API's answer: `{"status": "success", "data": {..}}` or
/// `{"status": "error", "errorType": "bad_data", "error": ".."}`.
#[derive(Deserialize)]
struct Answer {
    status: String,
    data: Option<Data>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum Data {
    Vector(Vec<Series>),
    Scalar(Sample),
    String(Sample),
    Matrix(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct Series {
    metric: Map<String, Value>,
    value: Sample,
}

/// `[unix seconds (float), "value as a string"]`.
#[derive(Deserialize)]
struct Sample(f64, String);

impl Sample {
    fn timestamp_ms(&self) -> Value {
        Value::from((self.0 * 1000.0).round() as i64)
    }

    /// The value as a JSON number; `NaN` and infinities are `null`.
    fn number(&self) -> Value {
        self.1
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map_or(Value::Null, Value::Number)
    }
}

/// The items of one answer with HTTP status `status`.
///
/// # Errors
/// An error answer (with its `errorType` and message), a range-vector result,
/// or a body that is not the API's JSON.
fn items_of(status: u16, body: &[u8]) -> Result<Vec<Value>, String> {
    let answer: Answer = match serde_json::from_slice(body) {
        Ok(a) => a,
        Err(_) if !(200..300).contains(&status) => {
            return Err(format!("query answered HTTP {status}"))
        }
        Err(e) => return Err(format!("answer is not the Prometheus API's JSON ({e})")),
    };
    if answer.status != "success" {
        return Err(format!(
            "query failed: {}: {}",
            answer.error_type.as_deref().unwrap_or("error"),
            answer.error.as_deref().unwrap_or("(no message)")
        ));
    }
    Ok(match answer.data {
        Some(Data::Vector(series)) => series
            .into_iter()
            .map(|s| {
                let mut item = s.metric.clone();
                item.insert("labels".into(), Value::Object(s.metric));
                item.insert("value".into(), s.value.number());
                item.insert("timestamp".into(), s.value.timestamp_ms());
                Value::Object(item)
            })
            .collect(),
        Some(Data::Scalar(s)) => vec![serde_json::json!({
            "value": s.number(),
            "timestamp": s.timestamp_ms(),
        })],
        Some(Data::String(s)) => vec![serde_json::json!({
            "value": s.1,
            "timestamp": s.timestamp_ms(),
        })],
        Some(Data::Matrix(_)) => {
            return Err("query returns a range vector; ask for an instant vector \
                        (e.g. rate(x[5m]) rather than x[5m])"
                .into())
        }
        None => return Err("answer has no data".into()),
    })
}

/// `kind = "prometheus"`.
pub(crate) const KIND: BuiltinKind = BuiltinKind {
    name: "prometheus",
    check: registry::check::<PrometheusOptions>,
    build: |c| Ok(Arc::new(PrometheusFeed::new(registry::options(c)?)?)),
};

/// `prometheus`: evaluates a PromQL query through the HTTP API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PrometheusOptions {
    /// The Prometheus server's base URL, e.g. `http://127.0.0.1:9090` (basic
    /// auth in the URL is sent, and shown as `***` in logs and errors).
    pub(crate) url: String,
    /// The PromQL instant query, e.g. `rate(node_cpu_seconds_total[1m])`.
    pub(crate) query: String,
    /// Extra request headers (e.g. `Authorization`).
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
    /// Longest one query may take.
    #[serde(default = "secs::<10>", with = "humantime_serde")]
    pub(crate) timeout: Duration,
    /// Time between queries.
    #[serde(default = "secs::<5>", with = "humantime_serde")]
    pub(crate) interval: Duration,
}

impl KindOptions for PrometheusOptions {
    fn check(&self, bad: Bad<'_>) {
        options::url(&self.url, &["http", "https"], bad);
        options::interval(&self.interval, "interval", bad);
        options::interval(&self.timeout, "timeout", bad);
        options::headers(&self.headers, bad);
        if self.query.trim().is_empty() {
            bad(
                "query",
                "`query` must be a PromQL expression, e.g. \"up\"".into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A vector answer becomes one item per series: labels as fields and under
    /// `labels`, the value as a number, NaN as null.
    #[test]
    fn vector_series_become_items() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"up","instance":"web-1","job":"node"},"value":[1700000000.5,"1"]},
            {"metric":{"instance":"web-2"},"value":[1700000000.5,"NaN"]}]}}"#;
        let items = items_of(200, body).unwrap();
        assert_eq!(
            items[0],
            json!({"__name__":"up","instance":"web-1","job":"node",
                   "labels":{"__name__":"up","instance":"web-1","job":"node"},
                   "value":1.0,"timestamp":1700000000500_i64})
        );
        assert_eq!(items[1]["value"], Value::Null);
        assert_eq!(items[1]["labels"]["instance"], "web-2");
    }

    /// Scalars are one item; error answers and range vectors are poll errors
    /// that carry the server's reason.
    #[test]
    fn scalars_errors_and_matrices() {
        let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[1.0,"2.5"]}}"#;
        assert_eq!(
            items_of(200, scalar).unwrap(),
            vec![json!({"value":2.5,"timestamp":1000})]
        );
        let bad =
            br#"{"status":"error","errorType":"bad_data","error":"1:4: parse error: unexpected"}"#;
        assert_eq!(
            items_of(400, bad).unwrap_err(),
            "query failed: bad_data: 1:4: parse error: unexpected"
        );
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(items_of(200, matrix).unwrap_err().contains("range vector"));
        assert_eq!(
            items_of(502, b"<html>").unwrap_err(),
            "query answered HTTP 502"
        );
        assert!(items_of(200, b"nope")
            .unwrap_err()
            .contains("not the Prometheus API"));
    }

    /// The query URL keeps a base path and escapes the query; a password in
    /// the URL never shows in what we print.
    #[test]
    fn endpoint_and_redaction() {
        let feed = PrometheusFeed::new(PrometheusOptions {
            url: "http://u:secret@127.0.0.1:9090/prom".into(),
            query: "rate(x[1m]) > 0".into(),
            headers: Default::default(),
            timeout: std::time::Duration::from_secs(1),
            interval: std::time::Duration::from_secs(1),
        })
        .unwrap();
        assert_eq!(
            feed.endpoint.as_str(),
            "http://u:secret@127.0.0.1:9090/prom/api/v1/query?query=rate%28x%5B1m%5D%29+%3E+0"
        );
        assert_eq!(
            redact_url(&feed.options.url),
            "http://u:***@127.0.0.1:9090/prom"
        );
    }

    /// A failed request's error names the server with the password hidden
    /// (reqwest's own message would carry the URL as written).
    #[tokio::test]
    async fn errors_hide_the_password() {
        let refused = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = refused.local_addr().unwrap();
        drop(refused);
        let feed = PrometheusFeed::new(PrometheusOptions {
            url: format!("http://u:secret@{addr}"),
            query: "up".into(),
            headers: Default::default(),
            timeout: std::time::Duration::from_secs(5),
            interval: std::time::Duration::from_secs(1),
        })
        .unwrap();
        let error = crate::feeds::status::error_chain(&*feed.fetch().await.unwrap_err());
        assert!(error.contains(&format!("http://u:***@{addr}")), "{error}");
        assert!(error.to_lowercase().contains("refused"), "{error}");
        assert!(!error.contains("secret"), "{error}");
    }
}
