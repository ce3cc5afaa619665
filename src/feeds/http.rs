//! `http`: polls a URL with reqwest through the shared [`poll`](super::poll)
//! loop. A non-2xx status, a timeout, a connection error or a body that is not a
//! document is an error of that poll: the run ends and the supervisor backs off.
//! So is a body past the feed's `max_item_bytes`.

use anyhow::Context as _;
use http::{HeaderMap, Method};

use super::limit::collect_capped;
use super::options::{self, secs, Bad, KindOptions};
use super::registry::{self, BuiltinKind};
use super::{poll::poll, Feed, FeedContext, ItemTooLarge, Pipeline};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// A polled HTTP endpoint.
#[derive(Debug, Clone)]
pub(super) struct HttpFeed {
    options: HttpOptions,
    pipeline: Pipeline,
    method: Method,
    headers: HeaderMap,
    /// One client per feed: it keeps connections alive between polls.
    client: reqwest::Client,
}

impl HttpFeed {
    /// A poller described by `options`.
    ///
    /// # Errors
    /// The method or a header is invalid, or the HTTP client cannot be built.
    pub(super) fn new(options: HttpOptions) -> anyhow::Result<Self> {
        let method = Method::from_bytes(options.method.as_bytes())
            .with_context(|| format!("method {:?}", options.method))?;
        let headers = super::options::header_map(&options.headers)?;
        let client = super::options::http_client(None)?;
        Ok(HttpFeed {
            pipeline: Pipeline::new(options.extract.as_deref(), options.format),
            options,
            method,
            headers,
            client,
        })
    }

    /// One request; its body is refused past `max` bytes, by its declared
    /// length before any of it is read, else once that much has arrived.
    async fn fetch(&self, max: usize) -> anyhow::Result<String> {
        let o = &self.options;
        let mut request = self
            .client
            .request(self.method.clone(), &o.url)
            .headers(self.headers.clone());
        if let Some(body) = &o.body {
            request = request.body(body.clone());
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{} {}", self.method, o.url))?;
        let status = response.status();
        if !status.is_success() {
            anyhow::bail!("{} {} answered {status}", self.method, o.url);
        }
        if let Some(len) = response.content_length().filter(|n| *n > max as u64) {
            return Err(ItemTooLarge {
                len: Some(len),
                max,
            })
            .with_context(|| format!("the body of {}", o.url));
        }
        let body = collect_capped(response.bytes_stream(), max)
            .await
            .with_context(|| format!("reading the body of {}", o.url))?
            .with_context(|| format!("the body of {}", o.url))?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

impl Feed for HttpFeed {
    async fn run(&self, ctx: FeedContext) -> anyhow::Result<()> {
        let o = &self.options;
        let max = ctx.max_item_bytes();
        poll(&ctx, &self.pipeline, o.interval, o.timeout, || {
            self.fetch(max)
        })
        .await
    }
}

/// `kind = "http"`.
pub(crate) const KIND: BuiltinKind = BuiltinKind {
    name: "http",
    check: registry::check::<HttpOptions>,
    build: |c| Ok(Arc::new(HttpFeed::new(registry::options(c)?)?)),
};

/// `http`: polls a URL.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpOptions {
    /// The URL to request (`http` or `https`).
    pub(crate) url: String,
    /// The request method.
    #[serde(default = "default_method")]
    pub(crate) method: String,
    /// Extra request headers.
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
    /// The request body, if any.
    pub(crate) body: Option<String>,
    /// Longest a request may take.
    #[serde(default = "secs::<10>", with = "humantime_serde")]
    pub(crate) timeout: Duration,
    /// Time between polls.
    #[serde(default = "secs::<5>", with = "humantime_serde")]
    pub(crate) interval: Duration,
    /// JSON Pointer (RFC 6901) into the document.
    pub(crate) extract: Option<String>,
    /// How the body is read.
    #[serde(default)]
    pub(crate) format: options::Format,
}

impl KindOptions for HttpOptions {
    fn check(&self, bad: Bad<'_>) {
        options::url(&self.url, &["http", "https"], bad);
        options::interval(&self.interval, "interval", bad);
        options::interval(&self.timeout, "timeout", bad);
        options::extract(&self.extract, bad);
        options::headers(&self.headers, bad);
        if http::Method::from_bytes(self.method.as_bytes()).is_err() {
            bad(
                "method",
                format!("method {:?} is not an HTTP method", self.method),
            );
        }
    }
}

fn default_method() -> String {
    "GET".to_string()
}
