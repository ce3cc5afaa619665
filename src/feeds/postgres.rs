//! `postgres`: PostgreSQL through `tokio-postgres`, in one of two modes.
//!
//! - `listen = ["prices", ..]`: one connection per `run` that LISTENs on the
//!   channels; each notification's payload is one document for the shared
//!   [`Pipeline`] (a bad payload is that item's error). The connection ending
//!   (server restart, network) ends the run with `Err`, so the supervisor
//!   reconnects with its backoff and the new connection LISTENs again.
//!   Notifications sent while no connection listened are not delivered:
//!   PostgreSQL does not queue them for absent listeners.
//! - `query = "SELECT .."`: the statement is prepared once per connection
//!   (an unmappable column type is reported then, with the cast that fixes
//!   it) and run every `interval` on the shared [`poll`](super::poll) loop;
//!   each row is one item, columns as fields (see [`row_to_item`]). A query
//!   returning more than [`MAX_ROWS`] rows is an error of that poll.
//!
//! The password never sits in the config: `url` must not hold one, and
//! `password_env` names the environment variable read at each connect (so a
//! rotated password is picked up on reconnect). TLS is not built in: connect
//! over loopback, a Unix socket (`host=/run/postgresql`) or a trusted network.

use std::time::Duration;

use futures_util::StreamExt as _;
use std::str::FromStr as _;

use tokio_postgres::{AsyncMessage, Client, NoTls, Notification, Row};
use tokio_util::task::AbortOnDropHandle;

mod rows;

use rows::{check_columns, row_to_item};
use super::options::{self, secs, Bad, KindOptions};
use super::registry::{self, BuiltinKind};
use super::{poll::poll_with, Feed, FeedContext, Pipeline};
use serde::Deserialize;
use std::sync::Arc;

/// Notifications waiting between the connection task and the feed; past it
/// the connection task waits, so memory stays bounded.
const BACKLOG: usize = 1024;

/// A connection's I/O half: it must be polled for the client to make progress.
type Connection =
    tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>;

/// Most rows one query may return; a larger answer is an error of that poll
/// (the rest is not read), so one query cannot buffer without end.
const MAX_ROWS: usize = 10_000;

/// A PostgreSQL LISTEN or query feed.
#[derive(Debug, Clone)]
pub(super) struct PostgresFeed {
    options: PostgresOptions,
    pipeline: Pipeline,
    /// The parsed `url` (no password: `config::check_postgres` refuses one).
    config: tokio_postgres::Config,
}

impl PostgresFeed {
    /// A feed described by `options`.
    ///
    /// # Errors
    /// `url` is not a PostgreSQL connection string.
    pub(super) fn new(options: PostgresOptions) -> anyhow::Result<Self> {
        let mut config = tokio_postgres::Config::from_str(&options.url)
            .map_err(|e| anyhow::anyhow!("url is not a PostgreSQL connection string: {e}"))?;
        config
            .application_name("tickerd")
            .connect_timeout(options.timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        Ok(PostgresFeed {
            pipeline: Pipeline::new(options.extract.as_deref(), options.format),
            options,
            config,
        })
    }

    /// Connects, with the password read from `password_env` now.
    async fn connect(&self) -> anyhow::Result<(Client, Connection)> {
        let mut config = self.config.clone();
        if let Some(var) = &self.options.password_env {
            let password = std::env::var(var).map_err(|_| {
                anyhow::anyhow!("environment variable {var} (password_env) is not set")
            })?;
            config.password(password);
        }
        // The URL holds no password, so it is safe to show.
        config.connect(NoTls).await.map_err(|e| {
            anyhow::anyhow!("cannot connect to {}: {}", self.options.url, describe(&e))
        })
    }

    /// LISTEN mode: one connection, until it ends or the feed is cancelled.
    async fn listen(&self, ctx: &FeedContext) -> anyhow::Result<()> {
        let connect = self.connect();
        let (client, mut connection) = tokio::select! {
            r = connect => r?,
            _ = ctx.cancelled() => return Ok(()),
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel(BACKLOG);
        // The connection must be polled for queries to make progress and to
        // receive notifications; its task ends with the connection.
        let _driver = AbortOnDropHandle::new(tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                let forward = match message {
                    Ok(AsyncMessage::Notification(n)) => Ok(n),
                    Ok(_) => continue,
                    Err(e) => Err(e),
                };
                let end = forward.is_err();
                if tx.send(forward).await.is_err() || end {
                    return;
                }
            }
        }));
        let sql: String = self
            .options
            .listen
            .iter()
            .map(|c| format!("LISTEN \"{}\";", c.replace('"', "\"\"")))
            .collect();
        tokio::select! {
            r = tokio::time::timeout(self.options.timeout, client.batch_execute(&sql)) => r
                .map_err(|_| anyhow::anyhow!("LISTEN timed out"))?
                .map_err(|e| anyhow::anyhow!("LISTEN failed: {}", describe(&e)))?,
            _ = ctx.cancelled() => return Ok(()),
        }
        ctx.mark_running();
        tracing::info!(feed = %ctx.name(), channels = ?self.options.listen, "PostgreSQL LISTEN connected.");
        loop {
            tokio::select! {
                message = rx.recv() => match message {
                    Some(Ok(n)) => self.notification(ctx, &n),
                    Some(Err(e)) => anyhow::bail!("connection to {} failed: {}", self.options.url, describe(&e)),
                    None => anyhow::bail!("connection to {} closed", self.options.url),
                },
                _ = ctx.cancelled() => return Ok(()),
            }
        }
    }

    /// Publishes one notification's payload; a bad one is that item's error.
    fn notification(&self, ctx: &FeedContext, n: &Notification) {
        if ctx.check_item_bytes(n.payload().len()).is_err() {
            return;
        }
        if let Err(e) = ctx.publish_document(&self.pipeline, n.payload()) {
            ctx.item_error(format!("channel {}: {e:#}", n.channel()));
        }
    }

    /// Query mode: prepare once, then run every `interval`.
    async fn query(&self, ctx: &FeedContext, query: &str) -> anyhow::Result<()> {
        let connect = self.connect();
        let (client, connection) = tokio::select! {
            r = connect => r?,
            _ = ctx.cancelled() => return Ok(()),
        };
        let _driver = AbortOnDropHandle::new(tokio::spawn(connection));
        let statement = tokio::time::timeout(self.options.timeout, client.prepare(query))
            .await
            .map_err(|_| anyhow::anyhow!("preparing the query timed out"))?
            .map_err(|e| anyhow::anyhow!("query: {}", describe(&e)))?;
        check_columns(&statement).map_err(anyhow::Error::msg)?;
        ctx.mark_running();
        let run = || async {
            let params = std::iter::empty::<&(dyn tokio_postgres::types::ToSql + Sync)>();
            let rows = client
                .query_raw(&statement, params)
                .await
                .map_err(|e| anyhow::anyhow!("query: {}", describe(&e)))?;
            // Read at most MAX_ROWS + 1 rows: one more than the limit tells
            // us the answer is too large without buffering the rest of it.
            let rows: Vec<Row> = rows
                .take(MAX_ROWS + 1)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("query: {}", describe(&e)))?;
            if rows.len() > MAX_ROWS {
                anyhow::bail!("query returned more than {MAX_ROWS} rows; add a LIMIT or aggregate");
            }
            Ok(rows)
        };
        let publish = |rows: Vec<Row>| {
            for row in &rows {
                self.row(ctx, row);
            }
            Ok(())
        };
        poll_with(
            ctx,
            self.options.interval,
            self.options.timeout,
            run,
            publish,
        )
        .await
    }

    /// Publishes one row; a row that cannot be read or is too large is that
    /// item's error.
    fn row(&self, ctx: &FeedContext, row: &Row) {
        let o = &self.options;
        match row_to_item(row, o.numeric, o.timestamps) {
            Ok(item) => {
                let len = serde_json::to_string(&item).map_or(0, |s| s.len());
                if ctx.check_item_bytes(len).is_ok() {
                    let _ = ctx.publish(&item);
                }
            }
            Err(e) => {
                ctx.item_error(e);
            }
        }
    }
}

impl Feed for PostgresFeed {
    async fn run(&self, ctx: FeedContext) -> anyhow::Result<()> {
        match &self.options.query {
            Some(q) => self.query(&ctx, q).await,
            None => self.listen(&ctx).await,
        }
    }
}

/// A tokio-postgres error with the server's message when there is one
/// (`password authentication failed for user "x"`), else the client's.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => super::status::error_chain(e),
    }
}

/// `kind = "postgres"`.
pub(crate) const KIND: BuiltinKind = BuiltinKind {
    name: "postgres",
    check: registry::check::<PostgresOptions>,
    build: |c| Ok(Arc::new(PostgresFeed::new(registry::options(c)?)?)),
};

/// How a `postgres` feed publishes a `numeric` column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum NumericAs {
    /// As a JSON number (may lose digits past f64's precision; the default).
    #[default]
    Float,
    /// As the exact decimal string.
    String,
}

/// How a `postgres` feed publishes `timestamp` / `timestamptz` columns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TimestampAs {
    /// Milliseconds since the Unix epoch (the default).
    #[default]
    Ms,
    /// An RFC 3339 string in UTC, e.g. `2024-05-01T12:00:00.000Z`.
    Rfc3339,
}

/// `postgres`: LISTEN/NOTIFY channels, or a SELECT run every `interval`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PostgresOptions {
    /// Connection string without a password: a URL such as
    /// `postgres://tickerd@127.0.0.1:5432/market`, or `key=value` pairs such
    /// as `host=/run/postgresql user=tickerd dbname=market`.
    pub(crate) url: String,
    /// Environment variable holding the password (e.g. `"PGPASSWORD"`).
    pub(crate) password_env: Option<String>,
    /// Channels to LISTEN on; each notification's payload is one document.
    #[serde(default)]
    pub(crate) listen: Vec<String>,
    /// A query run every `interval`; each row is one item, columns as fields.
    pub(crate) query: Option<String>,
    /// Time between queries (`query` mode).
    #[serde(default = "secs::<5>", with = "humantime_serde")]
    pub(crate) interval: Duration,
    /// Longest a connect or one query may take.
    #[serde(default = "secs::<10>", with = "humantime_serde")]
    pub(crate) timeout: Duration,
    /// `numeric` columns as `"float"` (default) or `"string"`.
    #[serde(default)]
    pub(crate) numeric: NumericAs,
    /// Timestamp columns as `"ms"` (default) or `"rfc3339"`.
    #[serde(default)]
    pub(crate) timestamps: TimestampAs,
    /// JSON Pointer (RFC 6901) into each notification's payload.
    pub(crate) extract: Option<String>,
    /// How each notification's payload is read.
    #[serde(default)]
    pub(crate) format: options::Format,
}

impl KindOptions for PostgresOptions {
    fn check(&self, bad: Bad<'_>) {
        options::interval(&self.interval, "interval", bad);
        options::interval(&self.timeout, "timeout", bad);
        options::extract(&self.extract, bad);
        for (key, msg) in check_postgres(self) {
            bad(key, msg);
        }
    }
}

/// Checks what the config types cannot: the URL parses and holds no
/// password, exactly one mode is chosen, channel names are identifiers.
/// Returns `(key, message)` pairs.
fn check_postgres(o: &PostgresOptions) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    match <tokio_postgres::Config as std::str::FromStr>::from_str(&o.url) {
        Err(e) => out.push((
            "url",
            format!(
                "url is not a PostgreSQL connection string ({e}); \
                 write e.g. \"postgres://tickerd@127.0.0.1:5432/market\""
            ),
        )),
        Ok(c) if c.get_password().is_some() => out.push((
            "url",
            "url must not hold a password: put it in an environment variable \
             and name that with `password_env = \"PGPASSWORD\"`"
                .into(),
        )),
        Ok(_) => {}
    }
    if o.password_env.as_deref() == Some("") {
        out.push((
            "password_env",
            "`password_env` must name an environment variable".into(),
        ));
    }
    match (o.listen.is_empty(), &o.query) {
        (true, None) => out.push((
            "listen",
            "set `listen = [\"channel\"]` (LISTEN/NOTIFY) or `query = \"SELECT ..\"` (polling)"
                .into(),
        )),
        (false, Some(_)) => out.push((
            "query",
            "`listen` and `query` are two modes: use one feed for each".into(),
        )),
        (_, Some(q)) if q.trim().is_empty() => {
            out.push(("query", "`query` must be a SELECT statement".into()))
        }
        _ => {}
    }
    for channel in &o.listen {
        if channel.is_empty() || channel.len() > 63 || channel.contains('\0') {
            out.push((
                "listen",
                format!("channel {channel:?} must be 1 to 63 bytes (a PostgreSQL identifier)"),
            ));
        }
    }
    if o.query.is_some() && (o.extract.is_some() || o.format != Default::default()) {
        out.push((
            "extract",
            "`extract` and `format` read notification payloads; in `query` mode each row is \
             already an item"
                .into(),
        ));
    }
    out
}

#[cfg(test)]
mod tests;
