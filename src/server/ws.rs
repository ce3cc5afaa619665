//! `GET /ws`: checks limits and origin, then upgrades and hands the socket to a
//! [`Session`].

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::auth::Grant;
use crate::session::Session;
use crate::ticker::Shared;

/// Tungstenite's buffers are sized for one connection among many: the defaults
/// (128 KiB read buffer) would cost ~136 KiB per idle connection.
const READ_BUFFER: usize = 1024;
const WRITE_BUFFER: usize = 4 * 1024;

pub(super) async fn upgrade(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    ws: WebSocketUpgrade,
) -> Response {
    let settings = shared.settings();
    if let (Some(allowed), Some(origin)) = (
        &settings.allowed_origins,
        headers.get(axum::http::header::ORIGIN),
    ) {
        let origin = origin.to_str().unwrap_or_default();
        if !allowed.iter().any(|a| a == origin || a == "*") {
            shared
                .metrics
                .connections_rejected
                .fetch_add(1, Ordering::Relaxed);
            return ApiError::Forbidden("origin not allowed").into_response();
        }
    }
    let Some(guard) = ConnectionGuard::acquire(&shared, settings.limits.max_connections) else {
        shared
            .metrics
            .connections_rejected
            .fetch_add(1, Ordering::Relaxed);
        return ApiError::Unavailable("too many connections").into_response();
    };
    let session = Session {
        hub: shared.hub.clone(),
        settings: settings.clone(),
        grant: Grant::default(),
        shutdown: shared.cancel.clone(),
    };
    let tasks = shared.tasks.clone();
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| *a);
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(WRITE_BUFFER * 64 + settings.limits.max_frame_bytes)
        .max_message_size(settings.limits.max_frame_bytes)
        .max_frame_size(settings.limits.max_frame_bytes)
        .on_upgrade(move |socket| {
            let span = tracing::debug_span!("session", peer = ?peer);
            tasks.track_future(tracing::Instrument::instrument(
                async move {
                    let _guard = guard;
                    session.run(socket).await;
                },
                span,
            ))
        })
}

/// Counts one open connection while it lives.
struct ConnectionGuard {
    shared: Arc<Shared>,
}

impl ConnectionGuard {
    fn acquire(shared: &Arc<Shared>, max: usize) -> Option<Self> {
        let m = &shared.metrics;
        let prev = m.connections.fetch_add(1, Ordering::AcqRel);
        if prev as usize >= max {
            m.connections.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        m.connections_total.fetch_add(1, Ordering::Relaxed);
        Some(ConnectionGuard {
            shared: shared.clone(),
        })
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.shared
            .metrics
            .connections
            .fetch_sub(1, Ordering::AcqRel);
    }
}
