//! `influx`: takes InfluxDB line protocol writes, `POST /api/v2/write?bucket=B`
//! (v2) and `POST /write?db=B` (v1), for the feed whose `bucket` is `B`. The
//! parsing is `line_protocol`; the routes are `server/push.rs`.

use std::sync::Arc;

use serde::Deserialize;

use super::line_protocol::{parse_body, Precision};
use super::{Batch, Inlets, Refused, Taker};
use crate::feeds::options::{Bad, KindOptions};
use crate::feeds::registry::{self, BuiltinKind};
use crate::feeds::{Feed, FeedContext};

/// `kind = "influx"`.
pub(crate) const KIND: BuiltinKind = BuiltinKind {
    name: "influx",
    check: registry::check::<InfluxOptions>,
    build: |c| Ok(Arc::new(InfluxFeed(registry::options(c)?))),
};

/// `influx`: the bucket whose writes the feed takes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InfluxOptions {
    /// Matches a v2 write's `bucket` or a v1 write's `db`.
    pub(crate) bucket: String,
}

impl KindOptions for InfluxOptions {
    fn check(&self, bad: Bad<'_>) {
        if self.bucket.is_empty() {
            bad(
                "bucket",
                "`bucket` must name the bucket (v2 `bucket=`, v1 `db=`) whose writes this feed \
                 takes, e.g. bucket = \"telegraf\""
                    .into(),
            );
        }
    }
}

/// A running `influx` feed: registered for its bucket until cancelled.
#[derive(Debug)]
pub(crate) struct InfluxFeed(InfluxOptions);

impl Feed for InfluxFeed {
    async fn run(&self, ctx: FeedContext) -> anyhow::Result<()> {
        let bucket = self.0.bucket.clone();
        super::serve(ctx, Taker::Influx { bucket }).await
    }
}

/// Parses one write to `bucket` and plans its points for every feed that
/// takes the bucket.
///
/// # Errors
/// No feed takes `bucket` (404), the precision is unknown or a line is bad
/// (400, naming the line): nothing is planned.
pub(crate) fn ingest(
    inlets: &Inlets,
    bucket: &str,
    precision: Option<&str>,
    body: &[u8],
) -> Result<Batch, Refused> {
    let feeds = inlets.takers(|t| match t {
        Taker::Influx { bucket: b } if b == bucket => Some(()),
        _ => None,
    });
    if feeds.is_empty() {
        return Err(Refused::NoTaker(format!(
            "bucket \"{bucket}\" not found: no running `influx` feed has bucket = \"{bucket}\""
        )));
    }
    let precision = precision
        .map(Precision::parse)
        .transpose()
        .map_err(Refused::Invalid)?
        .unwrap_or(Precision::Ns);
    // About one point per 60 bytes, whose item's text is about twice as
    // long: the batch grows rarely.
    let mut batch = Batch::with_capacity(body.len() / 60 * feeds.len() + 1, body.len() * 2);
    let now = super::now_ms();
    parse_body(body, precision, now, |point, len| {
        batch.plan(feeds.iter().map(|(_, ctx)| ctx), len, point);
    })
    .map_err(Refused::Invalid)?;
    Ok(batch)
}
