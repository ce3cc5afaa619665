//! Process-wide counters, rendered as Prometheus text at `/metrics`.
//!
//! Counters are plain atomics bumped with `Relaxed` ordering: they are read only
//! for reporting, never to synchronise anything. Per-feed figures live in the
//! feed's status (see `feeds`), which the renderer asks for.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// One counter or gauge: anyone may read it, only tickerd changes it.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// The current value (`Relaxed` is enough: counters order nothing).
    pub fn load(&self, order: Ordering) -> u64 {
        self.0.load(order)
    }

    pub(crate) fn fetch_add(&self, n: u64, order: Ordering) -> u64 {
        self.0.fetch_add(n, order)
    }

    pub(crate) fn fetch_sub(&self, n: u64, order: Ordering) -> u64 {
        self.0.fetch_sub(n, order)
    }

    pub(crate) fn store(&self, n: u64, order: Ordering) {
        self.0.store(n, order)
    }
}

/// Counters and gauges shared by the hub, sessions and server: read-only
/// outside tickerd.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Open WebSocket connections (gauge).
    pub connections: Counter,
    /// Connections accepted since start.
    pub connections_total: Counter,
    /// WebSocket connections refused (limits, origin) since start.
    pub connections_rejected: Counter,
    /// Requests to `/ws` or `/api` refused for a missing or unknown token.
    pub auth_failures: Counter,
    /// Subscription patterns held by all connections (gauge).
    pub subscriptions: Counter,
    /// Updates published into topics.
    pub updates_published: Counter,
    /// Frames written to clients (updates and replies).
    pub frames_sent: Counter,
    /// Frames replaced by a newer one of the same topic for a slow client.
    pub frames_conflated: Counter,
    /// Bytes of frame payload written to clients.
    pub bytes_out: Counter,
    /// Config reloads applied.
    pub reloads: Counter,
    /// Config reloads refused because the new config was invalid.
    pub reload_failures: Counter,
    /// Connections closed (1008) for holding more than `max_buffered_bytes` of
    /// unwritten replies.
    pub closed_over_budget: Counter,
    /// Connections dropped because a write did not complete within two
    /// heartbeats (a peer that does not read).
    pub closed_write_timeout: Counter,
    /// HTTP connections refused at accept: their address already held
    /// `max_connections_per_ip` of them.
    pub http_connections_refused: Counter,
    /// Requests answered `rate_limited` (expensive ops sent too often).
    pub rate_limited: Counter,
}

impl Metrics {
    /// Appends this struct's figures in Prometheus text format.
    pub(crate) fn render(&self, out: &mut String) {
        let rows: [(&str, &str, &str, &Counter); 11] = [
            (
                "tickerd_connections",
                "gauge",
                "Open WebSocket connections.",
                &self.connections,
            ),
            (
                "tickerd_connections_total",
                "counter",
                "WebSocket connections accepted.",
                &self.connections_total,
            ),
            (
                "tickerd_connections_rejected_total",
                "counter",
                "WebSocket connections refused (limits, origin).",
                &self.connections_rejected,
            ),
            (
                "tickerd_auth_failures_total",
                "counter",
                "Requests refused for a missing or unknown token.",
                &self.auth_failures,
            ),
            (
                "tickerd_subscriptions",
                "gauge",
                "Subscription patterns held by connections.",
                &self.subscriptions,
            ),
            (
                "tickerd_updates_published_total",
                "counter",
                "Updates published into topics.",
                &self.updates_published,
            ),
            (
                "tickerd_frames_sent_total",
                "counter",
                "Frames written to clients.",
                &self.frames_sent,
            ),
            (
                "tickerd_frames_conflated_total",
                "counter",
                "Frames replaced by a newer one for a slow client.",
                &self.frames_conflated,
            ),
            (
                "tickerd_bytes_out_total",
                "counter",
                "Frame payload bytes written to clients.",
                &self.bytes_out,
            ),
            (
                "tickerd_reloads_total",
                "counter",
                "Config reloads applied.",
                &self.reloads,
            ),
            (
                "tickerd_reload_failures_total",
                "counter",
                "Config reloads refused as invalid.",
                &self.reload_failures,
            ),
        ];
        render_rows(out, &rows);
        let name = "tickerd_connections_closed_total";
        family(
            out,
            name,
            "counter",
            "WebSocket connections closed by the server for taking more than their share.",
        );
        for (reason, value) in [
            ("budget", &self.closed_over_budget),
            ("write_timeout", &self.closed_write_timeout),
        ] {
            let v = value.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {v}");
        }
        render_rows(
            out,
            &[
                (
                    "tickerd_http_connections_refused_total",
                    "counter",
                    "HTTP connections refused at accept (per-address cap).",
                    &self.http_connections_refused,
                ),
                (
                    "tickerd_rate_limited_total",
                    "counter",
                    "WebSocket requests answered rate_limited.",
                    &self.rate_limited,
                ),
            ],
        );
    }
}

/// Appends one unlabelled sample per `(name, kind, help, value)`, each with its
/// HELP and TYPE lines.
pub(crate) fn render_rows(out: &mut String, rows: &[(&str, &str, &str, &Counter)]) {
    for (name, kind, help, value) in rows {
        family(out, name, kind, help);
        let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
    }
}

/// Writes the `# HELP` and `# TYPE` lines that open a metric family.
pub(crate) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A Prometheus label value, escaped (`\\`, `"`, newline).
pub(crate) fn label(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return value.into();
    }
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .into()
}

#[cfg(test)]
mod tests {
    /// Label values that would break the text format are escaped.
    #[test]
    fn labels_are_escaped() {
        assert_eq!(super::label("plain-kind"), "plain-kind");
        assert_eq!(super::label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
