//! `GET /ws`: checks the handshake, origin and limits (total and per IP; 503
//! before the upgrade), then upgrades (see [`super::upgrade`]) and hands the
//! socket's halves to a [`Session`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::{FutureExt, StreamExt};

use super::upgrade::Handshake;
use super::ApiError;
use crate::auth::Grant;
use crate::config::LimitsConfig;
use crate::session::Session;
use crate::ticker::Shared;

pub(super) async fn upgrade(
    State(shared): State<Arc<Shared>>,
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
                return refuse(ApiError::Forbidden("origin not allowed"));
            }
        }
    }
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| *a);
    let guard = match ConnectionGuard::acquire(&shared, peer, &settings.limits) {
        Ok(g) => g,
        Err(e) => return refuse(e),
    };
    let session = Session {
        hub: shared.hub.clone(),
        settings: settings.clone(),
        grant,
        shutdown: shared.cancel.clone(),
    };
    // Debug level: at info, a span per connection would cost ~0.8 KiB each.
    let span = tracing::debug_span!("conn", id = guard.id, peer = %DisplayPeer(peer));
    let max_frame_bytes = settings.limits.max_frame_bytes;
    let response = handshake.accept();
    let tasks = shared.tasks.clone();
    let upgrade = async move {
        let Some((socket, outgoing)) = handshake.socket(max_frame_bytes).await else {
            tracing::debug!("Upgrade failed.");
            return;
        };
        tracing::debug!("Client connected.");
        // The session gets a task of its own, so that what this one held for
        // the handshake is freed: the session's task is what an idle
        // connection costs, and it holds only the session's future.
        let (sink, stream) = socket.split();
        let session = session.run(sink, stream, outgoing).map(move |()| {
            tracing::debug!("Client disconnected.");
            drop(guard);
        });
        let span = tracing::Span::current();
        tokio::spawn(tasks.track_future(tracing::Instrument::instrument(session, span)));
    };
    tokio::spawn(
        shared
            .tasks
            .track_future(tracing::Instrument::instrument(upgrade, span)),
    );
    response
}

/// Is `origin` in the allow-list? Origins compare ASCII-case-insensitively
/// (scheme and host are case-insensitive); `"*"` allows any.
pub(super) fn origin_allowed(allowed: &[String], origin: &[u8]) -> bool {
    allowed.iter().any(|a| {
        a == "*"
            || a.trim_end_matches('/')
                .as_bytes()
                .eq_ignore_ascii_case(origin)
    })
}

/// A peer address for logs, `-` when the host did not provide one.
struct DisplayPeer(Option<SocketAddr>);

impl std::fmt::Display for DisplayPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{a}"),
            None => f.write_str("-"),
        }
    }
}

/// Open WebSocket connections per peer IP, for `limits.max_connections_per_ip`.
/// A std `Mutex`: held for one map operation, never across `.await`, and only
/// at connect and disconnect.
#[derive(Debug, Default)]
pub(crate) struct PeerCounts(Mutex<HashMap<IpAddr, usize>>);

impl PeerCounts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Counts one open connection (in total and for its IP) while it lives.
struct ConnectionGuard {
    shared: Arc<Shared>,
    ip: Option<IpAddr>,
    /// This connection's number since start, for logs.
    id: u64,
}

impl ConnectionGuard {
    /// Takes a slot, or says why none is left (503 either way).
    fn acquire(
        shared: &Arc<Shared>,
        peer: Option<SocketAddr>,
        limits: &LimitsConfig,
    ) -> Result<Self, ApiError> {
        let m = &shared.metrics;
        let prev = m.connections.fetch_add(1, Ordering::AcqRel);
        if prev as usize >= limits.max_connections {
            m.connections.fetch_sub(1, Ordering::AcqRel);
            return Err(ApiError::Unavailable("too many connections"));
        }
        let ip = peer.map(|p| p.ip());
        if let Some(ip) = ip {
            let mut peers = shared.peers.lock();
            let n = peers.entry(ip).or_insert(0);
            if *n >= limits.max_connections_per_ip {
                drop(peers);
                m.connections.fetch_sub(1, Ordering::AcqRel);
                return Err(ApiError::Unavailable(
                    "too many connections from this address",
                ));
            }
            *n += 1;
        }
        let id = m.connections_total.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(ConnectionGuard {
            shared: shared.clone(),
            ip,
            id,
        })
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            let mut peers = self.shared.peers.lock();
            if let Some(n) = peers.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    peers.remove(&ip);
                }
            }
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
}
