//! `GET /ws`: checks origin and limits (total and per IP; 503 before the
//! upgrade), then upgrades and hands the socket to a
//! [`Session`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Extension;

use super::ApiError;
use crate::auth::Grant;
use crate::config::LimitsConfig;
use crate::session::Session;
use crate::ticker::Shared;

/// Tungstenite's buffers are sized for one connection among many: the defaults
/// (128 KiB read buffer) would cost ~136 KiB per idle connection.
const READ_BUFFER: usize = 1024;
const WRITE_BUFFER: usize = 4 * 1024;

pub(super) async fn upgrade(
    State(shared): State<Arc<Shared>>,
    Extension(grant): Extension<Grant>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    ws: WebSocketUpgrade,
) -> Response {
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
    let tasks = shared.tasks.clone();
    let span = tracing::info_span!("conn", id = guard.id, peer = %DisplayPeer(peer));
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(WRITE_BUFFER * 64 + settings.limits.max_frame_bytes)
        .max_message_size(settings.limits.max_frame_bytes)
        .max_frame_size(settings.limits.max_frame_bytes)
        .on_upgrade(move |socket| {
            tasks.track_future(tracing::Instrument::instrument(
                async move {
                    tracing::debug!("Client connected.");
                    session.run(socket).await;
                    tracing::debug!("Client disconnected.");
                    drop(guard);
                },
                span,
            ))
        })
}

/// Is `origin` in the allow-list? Origins compare ASCII-case-insensitively
/// (scheme and host are case-insensitive); `"*"` allows any.
fn origin_allowed(allowed: &[String], origin: &[u8]) -> bool {
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
