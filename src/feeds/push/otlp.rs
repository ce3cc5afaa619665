//! `otlp`: takes OpenTelemetry metrics over OTLP/HTTP, `POST /v1/metrics`,
//! protobuf (`otlp_proto`) or JSON (`otlp_json`). Each data point of a gauge,
//! a sum or a histogram becomes `{"name", "attributes", "resource", "value",
//! "time"}`: `value` a number, or for a histogram `{"count", "sum", "min",
//! "max", "buckets": [{"le", "count"}...]}` (per-bucket counts, the last
//! bucket's `le` the string `"+Inf"`); `time` in ms. The item is written
//! straight from the decoded export by `otlp_item`. Every running `otlp`
//! feed takes every export.

use std::sync::Arc;

use prost::Message as _;
use serde::Deserialize;

use super::otlp_item::each_point;
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
/// point for every `otlp` feed (its item: `otlp_item`).
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
    let mut request = if json {
        super::otlp_json::decode(body)
    } else {
        ExportMetricsServiceRequest::decode(body).map_err(|e| e.to_string())
    }
    .map_err(|e| Refused::Invalid(format!("the body is not an OTLP metrics export: {e}")))?;
    // About 100 bytes of text a point: the buffers grow rarely.
    let points = body.len() / 60 + 1;
    let mut batch = Batch::with_capacity(points * feeds.len(), points * 100);
    each_point(&mut request, |point, len| {
        batch.plan(feeds.iter().map(|(_, ctx)| ctx), len, point);
    });
    Ok(batch)
}
