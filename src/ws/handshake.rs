//! The WebSocket handshake of `GET /ws` (RFC 6455 §4.2.1), done here rather
//! than by axum's `WebSocketUpgrade`, so that the upgraded socket is read
//! and written by `super::read` and `super::transport`.
//!
//! Only HTTP/1.1 upgrades are accepted (the listener speaks only HTTP/1.1).

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::read::Incoming;
use super::transport;

/// Why a request to `/ws` is not a WebSocket handshake (axum's statuses).
#[derive(Debug)]
pub(crate) enum NotUpgrade {
    /// A header of the handshake is missing or wrong (400).
    Header(&'static str),
    /// The connection cannot be upgraded, e.g. HTTP/2 (426).
    NotUpgradable,
}

impl IntoResponse for NotUpgrade {
    fn into_response(self) -> Response {
        match self {
            NotUpgrade::Header(m) => (StatusCode::BAD_REQUEST, m).into_response(),
            NotUpgrade::NotUpgradable => (
                StatusCode::UPGRADE_REQUIRED,
                "WebSocket request couldn't be upgraded since no upgrade state was present",
            )
                .into_response(),
        }
    }
}

/// A checked handshake: answer it with [`Handshake::accept`], then await the
/// socket with [`Handshake::socket`].
pub(crate) struct Handshake {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
}

impl Handshake {
    /// Checks the request's handshake headers (RFC 6455 §4.2.1) and takes the
    /// connection's upgrade handle.
    ///
    /// # Errors
    /// The request is not a WebSocket handshake that can be upgraded.
    pub(crate) fn check(
        headers: &HeaderMap,
        extensions: &mut axum::http::Extensions,
    ) -> Result<Self, NotUpgrade> {
        let has = |name, value: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(value)))
        };
        if !has(header::CONNECTION, "upgrade") {
            return Err(NotUpgrade::Header(
                "Connection header did not include 'upgrade'",
            ));
        }
        if !has(header::UPGRADE, "websocket") {
            return Err(NotUpgrade::Header(
                "`Upgrade` header did not include 'websocket'",
            ));
        }
        if !has(header::SEC_WEBSOCKET_VERSION, "13") {
            return Err(NotUpgrade::Header(
                "`Sec-WebSocket-Version` header did not include '13'",
            ));
        }
        let key = headers
            .get(header::SEC_WEBSOCKET_KEY)
            .ok_or(NotUpgrade::Header("`Sec-WebSocket-Key` header missing"))?
            .clone();
        let on_upgrade = extensions
            .remove::<OnUpgrade>()
            .ok_or(NotUpgrade::NotUpgradable)?;
        Ok(Handshake { key, on_upgrade })
    }

    /// The `101 Switching Protocols` answer.
    pub(crate) fn accept(&self) -> Response {
        let accept = derive_accept_key(self.key.as_bytes());
        (
            StatusCode::SWITCHING_PROTOCOLS,
            [
                (header::CONNECTION, HeaderValue::from_static("upgrade")),
                (header::UPGRADE, HeaderValue::from_static("websocket")),
                (
                    header::SEC_WEBSOCKET_ACCEPT,
                    HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
                ),
            ],
        )
            .into_response()
    }

    /// Waits for the upgrade (after the 101 went out): the socket's read
    /// side, which holds its write side; `None` when the client went away
    /// first.
    pub(crate) async fn socket(self) -> Option<Incoming> {
        let upgraded = self.on_upgrade.await.ok()?;
        Some(transport::wrap(upgraded))
    }
}
