//! The main file's sections checked beyond their types: what one key says
//! about another (`[history] path` with `[cluster]`, the server's and limits'
//! ranges, `[[access]]` entries), each error naming its key's line.

use std::path::Path;
use std::time::Duration;

use super::sections::{
    parse_cidr, AccessConfig, ClusterConfig, HistoryConfig, LimitsConfig, ServerConfig,
};
use super::Doc;

/// `[history]` checks beyond types: `path` and `[cluster]` exclude each other.
pub(super) fn check_history(
    history: &HistoryConfig,
    cluster: &Option<ClusterConfig>,
    doc: &mut Doc,
) {
    if history.path.is_some() && cluster.is_some() {
        doc.error(
            "history.path",
            "[history] path cannot be used with [cluster]: cluster mode keeps history in \
             JetStream; remove one of them"
                .into(),
        );
    }
    if history.path.as_deref() == Some(Path::new("")) {
        doc.error(
            "history.path",
            "[history] path must not be empty (e.g. path = \"data\")".into(),
        );
    }
    if history.sync_interval.is_zero() || history.sync_interval > Duration::from_secs(60) {
        doc.error(
            "history.sync_interval",
            "[history] sync_interval must be between 1ms and 60s (e.g. \"1s\")".into(),
        );
    }
}

/// Value checks of the sections beyond their types, each at its key's line.
pub(super) fn check_sections(
    server: &ServerConfig,
    limits: &LimitsConfig,
    cluster: &Option<ClusterConfig>,
    doc: &mut Doc<'_>,
) {
    if server.heartbeat.is_zero() {
        doc.error(
            "server.heartbeat",
            "[server] heartbeat must be greater than zero, e.g. \"20s\"".into(),
        );
    }
    if server.shutdown_timeout.is_zero() {
        doc.error(
            "server.shutdown_timeout",
            "[server] shutdown_timeout must be greater than zero, e.g. \"10s\"".into(),
        );
    }
    if server.flush_interval > Duration::from_secs(1) {
        doc.error(
            "server.flush_interval",
            "[server] flush_interval must be at most 1s, e.g. \"25ms\"".into(),
        );
    }
    for (name, v) in [
        ("max_connections", limits.max_connections),
        ("max_subscriptions", limits.max_subscriptions),
        ("max_frame_bytes", limits.max_frame_bytes),
        ("queue", limits.queue),
        ("max_connections_per_ip", limits.max_connections_per_ip),
        ("max_item_bytes", limits.max_item_bytes),
        ("max_push_bytes", limits.max_push_bytes),
        ("max_resume", limits.max_resume),
    ] {
        if v == 0 {
            doc.error(
                &format!("limits.{name}"),
                format!("[limits] {name} must be greater than zero"),
            );
        }
    }
    if limits.header_timeout.is_zero() {
        doc.error(
            "limits.header_timeout",
            "[limits] header_timeout must be greater than zero, e.g. \"10s\"".into(),
        );
    }
    if limits.body_timeout.is_zero() {
        doc.error(
            "limits.body_timeout",
            "[limits] body_timeout must be greater than zero, e.g. \"10s\"".into(),
        );
    }
    if limits.max_buffered_bytes < limits.max_frame_bytes {
        doc.error(
            "limits.max_buffered_bytes",
            format!(
                "[limits] max_buffered_bytes = {} must be at least max_frame_bytes = {}",
                limits.max_buffered_bytes, limits.max_frame_bytes
            ),
        );
    }
    if limits.max_header_bytes < 8192 {
        doc.error(
            "limits.max_header_bytes",
            "[limits] max_header_bytes must be at least 8192".into(),
        );
    }
    for cidr in &server.trusted_proxies {
        if let Err(e) = parse_cidr(cidr) {
            doc.error(
                "server.trusted_proxies",
                format!("[server] trusted_proxies: {e}"),
            );
        }
    }
    for (key, t) in [
        ("token", &server.token),
        ("publish_token", &server.publish_token),
    ] {
        if t.as_deref() == Some("") {
            doc.error(
                &format!("server.{key}"),
                format!(
                    "[server] {key} must not be an empty string (remove the line to disable it)"
                ),
            );
        }
    }
    if let Some(c) = cluster {
        if !super::is_name(&c.node) {
            doc.error(
                "cluster.node",
                format!("[cluster] node {:?} must match [a-z0-9_-]+", c.node),
            );
        }
        if c.urls().is_empty() {
            doc.error(
                "cluster.nats",
                "[cluster] nats needs at least one URL, e.g. \"nats://127.0.0.1:4222\"".into(),
            );
        }
        if c.lease < Duration::from_millis(300) {
            doc.error(
                "cluster.lease",
                "[cluster] lease must be at least 300ms".into(),
            );
        }
        if c.password.is_some() != c.user.is_some() {
            doc.error("cluster", "[cluster] user and password go together".into());
        }
    }
}

/// Each `[[access]]` token is non-empty, unique (also against `server.token`)
/// and has at least one valid pattern.
pub(super) fn check_access(server: &ServerConfig, access: &[AccessConfig], doc: &mut Doc<'_>) {
    let mut seen: Vec<&str> = server.token.iter().map(String::as_str).collect();
    for (i, a) in access.iter().enumerate() {
        let mut bad = |key: &str, msg: String| {
            doc.error(
                &format!("access{i}.{key}"),
                format!("[[access]] #{}: {msg}", i + 1),
            );
        };
        if a.token.is_empty() {
            bad("token", "token must not be empty".into());
        } else if seen.contains(&a.token.as_str()) {
            bad(
                "token",
                "token is used twice (each token has one grant)".into(),
            );
        }
        seen.push(&a.token);
        if a.patterns.is_empty() {
            bad(
                "patterns",
                "patterns is empty (it would allow nothing)".into(),
            );
        }
        for p in &a.patterns {
            if let Err(e) = crate::topic::Pattern::parse(p) {
                bad("patterns", format!("pattern {e}"));
            }
        }
        for p in &a.publish {
            match crate::topic::Pattern::parse(p) {
                Err(e) => bad("publish", format!("publish pattern {e}")),
                Ok(_) if crate::topic::is_system(p) => bad(
                    "publish",
                    format!(
                        "publish pattern `{p}`: topics starting with `$` are the server's own \
                         (publish patterns name your topics, e.g. \"orders.*\")"
                    ),
                ),
                Ok(_) => {}
            }
        }
    }
}
