//! The binary's log: where it goes, in which format, and the rule that it
//! never holds anything up.
//!
//! Lines go to stderr through a queue and a thread of their own
//! (`tracing_appender::non_blocking`, lossy): a stderr whose reader stopped
//! reading (a log shipper that died with the pipe still open, a full pipe)
//! blocks only that thread. Past the queue's [`QUEUED_LINES`] new lines are
//! dropped rather than waited for, so serving and shutdown go on. A closed
//! pipe (`EPIPE`) loses the lines the same way.
//!
//! Two formats (`--log-format`): `text` for terminals (coloured only on a
//! terminal), and `json`, one object per line for aggregators:
//! `{"time","level","target","message","fields"}`, where `fields` holds the
//! event's own fields and those of the spans it happened in (e.g. `feed` and
//! `kind` of the feed it concerns), and `spans` names those spans.

use std::io::IsTerminal;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// Lines waiting for the writer thread before new ones are dropped.
const QUEUED_LINES: usize = 16_384;

/// `--log-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line: time, level, target, message, fields.
    Json,
}

/// Installs the global logger; keep the guard until exit (dropping it writes
/// what is queued, waiting at most about a second for a stuck stderr).
pub(crate) fn init(format: LogFormat) -> WorkerGuard {
    // async_nats reports each failed connection attempt at INFO without the
    // URL; the cluster logs those itself (with the URL, rate-limited).
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,async_nats=warn"));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("tickerd-log")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .init(),
    }
    guard
}

/// The `json` format: one object per event, on one line.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut fields = Map::new();
        let mut spans = Vec::new();
        // Outermost span first, so an inner span's field of the same name wins.
        for span in ctx.event_scope().into_iter().flat_map(|s| s.from_root()) {
            spans.push(Value::from(span.name()));
            let ext = span.extensions();
            // Span fields as `JsonFields` recorded them: a JSON object.
            let recorded = ext
                .get::<FormattedFields<N>>()
                .and_then(|f| serde_json::from_str::<Map<String, Value>>(f).ok());
            fields.extend(recorded.unwrap_or_default());
        }
        let mut visitor = Fields {
            message: None,
            fields,
        };
        event.record(&mut visitor);
        let mut line = Map::new();
        line.insert("time".into(), Value::from(now_rfc3339()));
        line.insert("level".into(), Value::from(meta.level().as_str()));
        line.insert("target".into(), Value::from(meta.target()));
        line.insert(
            "message".into(),
            Value::from(visitor.message.unwrap_or_default()),
        );
        line.insert("fields".into(), Value::Object(visitor.fields));
        if !spans.is_empty() {
            line.insert("spans".into(), Value::Array(spans));
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// The current time, UTC, as RFC 3339.
fn now_rfc3339() -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Collects an event's fields as JSON values; `message` apart.
struct Fields {
    message: Option<String>,
    fields: Map<String, Value>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.fields.insert(field.name().to_string(), value);
        }
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}
