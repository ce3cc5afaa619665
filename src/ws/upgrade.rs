//! `GET /ws`: checks the handshake, origin and limits (total and per IP; 503
//! before the upgrade), then upgrades (see `super::handshake`) and hands the
//! socket's read and write sides to a [`Session`]. A cluster node first waits (a bounded
//! time, else 503 with `Retry-After`) until it knows the cluster's epoch, so its
//! `hello` never carries the node's own.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::FutureExt;

use super::handshake::Handshake;
use super::session::Session;
use crate::auth::Grant;
use crate::closes::{self, DisplayPeer, Limit};
use crate::config::LimitsConfig;
use crate::connection::Connection;
use crate::state::{ApiError, AppState, Settings};

/// How long a cluster node's upgrade waits for the cluster epoch (at start,
/// or while NATS is unreachable at start) before answering 503.
pub(crate) const EPOCH_WAIT: Duration = Duration::from_secs(5);

/// `Retry-After` (seconds) of that 503.
pub(crate) const RETRY_AFTER_SECS: &str = "2";

/// Why a cluster node is not ready, on `/healthz` and on a refused upgrade.
pub(crate) const NOT_READY: &str = "waiting for the cluster epoch from NATS";

pub(crate) async fn upgrade(
    State(shared): State<Arc<AppState>>,
    Extension(grant): Extension<Grant>,
    req: Request,
) -> Response {
    let (mut parts, _body) = req.into_parts();
    let (headers, extensions) = (&parts.headers, &mut parts.extensions);
    let handshake = match Handshake::check(headers, extensions) {
        Ok(h) => h,
        Err(e) => return e.into_response(),
    };
    let settings = shared.settings();
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| *a);
    let guard = match admit(&shared, &settings, headers, peer).await {
        Ok(g) => g,
        Err(refused) => return refused,
    };
    let session = Session {
        conn: Connection::new(shared.hub.clone(), settings.clone(), grant, peer),
        pacer: Some(shared.pacer.shard()),
    };
    // Debug level: at info, a span per connection would cost ~0.8 KiB each.
    let span = tracing::debug_span!("conn", id = guard.id, peer = %DisplayPeer(peer));
    let response = handshake.accept();
    let tasks = shared.tasks.clone();
    let upgrade = async move {
        let Some(incoming) = handshake.socket().await else {
            tracing::debug!("Upgrade failed.");
            return;
        };
        tracing::debug!("Client connected.");
        // The session gets a task of its own, so that what this one held for
        // the handshake is freed: the session's task is what an idle
        // connection costs, and it holds only the session's future.
        let session = session.run(incoming).map(move |()| {
            tracing::debug!("Client disconnected.");
            drop(guard);
        });
        // Inside the connection's span only when it is enabled: a disabled
        // span still takes 40 bytes of every idle connection's task.
        let span = tracing::Span::current();
        match span.is_disabled() {
            true => drop(tokio::spawn(tasks.track_future(session))),
            false => {
                let session = tracing::Instrument::instrument(session, span);
                drop(tokio::spawn(tasks.track_future(session)));
            }
        }
    };
    tokio::spawn(
        shared
            .tasks
            .track_future(tracing::Instrument::instrument(upgrade, span)),
    );
    response
}

/// Admits a streaming client (`/ws`, `/sse`): its `Origin` is allowed, a
/// connection slot is free (in total and for its address), and a cluster node
/// knows the cluster's epoch (waiting up to [`EPOCH_WAIT`], holding the slot
/// so that the waits are bounded in number too). A refusal is counted in
/// `tickerd_connections_rejected_total` and is the answer to send.
pub(crate) async fn admit(
    shared: &Arc<AppState>,
    settings: &Settings,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Result<ConnectionGuard, Response> {
    let refuse = |e: ApiError| {
        shared
            .metrics
            .connections_rejected
            .fetch_add(1, Ordering::Relaxed);
        e.into_response()
    };
    if let Some(allowed) = &settings.allowed_origins {
        // A request without Origin is not from a browser page: allowed.
        if let Some(origin) = headers.get(axum::http::header::ORIGIN) {
            if !origin_allowed(allowed, origin.as_bytes()) {
                return Err(refuse(ApiError::Forbidden("origin not allowed")));
            }
        }
    }
    let guard = ConnectionGuard::acquire(shared, peer, &settings.limits).map_err(refuse)?;
    if let Some(cluster) = &shared.cluster {
        if !cluster.wait_for_epoch(EPOCH_WAIT).await {
            let mut r = refuse(ApiError::Unavailable(NOT_READY));
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
            return Err(r);
        }
    }
    Ok(guard)
}

/// Is `origin` in the allow-list? Both sides are compared as
/// [`normalize_origin`] leaves them; `"*"` allows any.
pub(crate) fn origin_allowed(allowed: &[String], origin: &[u8]) -> bool {
    let Ok(origin) = std::str::from_utf8(origin) else {
        return false;
    };
    let origin = normalize_origin(origin);
    allowed
        .iter()
        .any(|a| a == "*" || normalize_origin(a) == origin)
}

/// An origin in the form two equal origins share: ASCII lowercase (scheme
/// and host are case-insensitive), without trailing `/`s, and without the
/// scheme's default port (`:80` for http, `:443` for https).
fn normalize_origin(origin: &str) -> String {
    let mut o = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    for (scheme, port) in [("http://", ":80"), ("https://", ":443")] {
        if o.starts_with(scheme) && o.ends_with(port) {
            o.truncate(o.len() - port.len());
        }
    }
    o
}

/// Counts one open connection (in total and for its IP) while it lives.
///
/// Held for the connection's whole life (in its task): its IP is not kept
/// beside `peer`, which holds it.
pub(crate) struct ConnectionGuard {
    shared: Arc<AppState>,
    /// This connection's number since start, for logs.
    pub(crate) id: u64,
    /// The peer's address, for logs (`None` where the host gave none).
    pub(crate) peer: Option<SocketAddr>,
}

impl ConnectionGuard {
    /// Takes a slot, or says why none is left (503 either way).
    pub(crate) fn acquire(
        shared: &Arc<AppState>,
        peer: Option<SocketAddr>,
        limits: &LimitsConfig,
    ) -> Result<Self, ApiError> {
        let m = &shared.metrics;
        let prev = m.connections.fetch_add(1, Ordering::AcqRel);
        if prev as usize >= limits.max_connections {
            m.connections.fetch_sub(1, Ordering::AcqRel);
            let why = "too many connections (max_connections)";
            closes::log(peer, Limit::Refused(why));
            return Err(ApiError::Unavailable(why));
        }
        if let Some(ip) = peer.map(|p| p.ip()) {
            if !shared.peers.try_add(ip, limits.max_connections_per_ip) {
                m.connections.fetch_sub(1, Ordering::AcqRel);
                let why = "too many connections from this address (max_connections_per_ip)";
                closes::log(peer, Limit::Refused(why));
                return Err(ApiError::Unavailable(why));
            }
        }
        let id = m.connections_total.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(ConnectionGuard {
            shared: shared.clone(),
            id,
            peer,
        })
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if let Some(peer) = self.peer {
            self.shared.peers.remove(peer.ip());
        }
        self.shared
            .metrics
            .connections
            .fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_case_insensitively_and_star_allows_all() {
        let list = vec!["https://Example.com/".to_string()];
        assert!(origin_allowed(&list, b"https://example.com"));
        assert!(!origin_allowed(&list, b"https://evil.com"));
        assert!(!origin_allowed(&list, b"null"));
        assert!(origin_allowed(&["*".to_string()], b"https://any"));
    }

    /// Trailing `/`, default ports and case are ignored on both sides; other
    /// ports and schemes still differ.
    #[test]
    fn origins_are_normalised_on_both_sides() {
        let list = vec![
            "https://good.com".to_string(),
            "HTTP://Plain.org:80/".to_string(),
        ];
        assert!(origin_allowed(&list, b"https://good.com/"));
        assert!(origin_allowed(&list, b"https://GOOD.com:443"));
        assert!(origin_allowed(&list, b"http://plain.org"));
        assert!(!origin_allowed(&list, b"https://good.com:8443"));
        assert!(!origin_allowed(&list, b"http://good.com"));
        assert!(!origin_allowed(&list, b"https://plain.org"));
        assert!(!origin_allowed(&list, b"https://good.com.evil.net"));
    }
}
