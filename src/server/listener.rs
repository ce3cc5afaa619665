//! The accept loop behind [`crate::Ticker::serve`]: HTTP/1.1 with hyper
//! directly, because `axum::serve` exposes neither a header-read timeout nor a
//! header size limit.
//!
//! Each accepted socket gets `TCP_NODELAY` (tickers want latency, and the
//! session already batches its writes), the peer address as axum's
//! [`ConnectInfo`] (for the per-IP cap), a deadline of `limits.header_timeout`
//! to send its request headers (a slowloris is dropped), and a request head
//! capped at `limits.max_header_bytes` (answered 431). With `[server.tls]`
//! the TLS handshake comes first, within the same `header_timeout`
//! (`super::tls`). HTTP/2 is not offered, with or without TLS: a WebSocket
//! upgrade is HTTP/1.1.
//!
//! One address may hold at most `limits.max_connections_per_ip` HTTP
//! connections at once (besides its WebSockets: an upgraded connection leaves
//! this count for the WebSocket one). Past it a connection is answered a fixed
//! 503 and closed at accept, before anything of it is read. A trusted proxy's
//! connections (`server.trusted_proxies`) are not counted here: each of their
//! requests counts against the client it forwards (`super::forwarded`).
//!
//! A handler may drop its connection outright through the request's
//! [`Abort`] (an `/sse` stream's writer does, for a client that takes nothing):
//! the socket closes and whatever hyper queued for it is freed at once.
//!
//! A connection's errors are logged here at debug level and never reach the
//! loop; accept errors (e.g. out of file descriptors) pause the loop briefly
//! instead of spinning.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;
use tracing::{debug, warn};

use crate::state::AppState;

/// Pause after an accept error that is not about one connection.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A request extension that drops the HTTP connection it came on: its socket
/// and everything hyper holds for it (a response body's queued chunks),
/// without the end of the response. Present on connections of this accept
/// loop; a host serving the router itself has none.
#[derive(Clone, Debug)]
pub(crate) struct Abort(CancellationToken);

impl Abort {
    /// Drops the connection now.
    pub(crate) fn abort(&self) {
        self.0.cancel();
    }
}

/// Serves `app` on `listener` until the ticker's cancellation token fires,
/// then waits for open HTTP connections to finish; `Ticker::serve` bounds
/// that wait by `[server] shutdown_timeout`.
///
/// # Errors
/// Never at present: accept errors are logged and retried. The `Result` keeps
/// room for failures that must end serving.
pub(crate) async fn serve(
    shared: Arc<AppState>,
    app: Router,
    listener: TcpListener,
) -> std::io::Result<()> {
    let cancel = shared.cancel.clone();
    let conns = TaskTracker::new();
    let tls = shared.tls.clone().map(super::tls::acceptor);
    loop {
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    warn!(error = %e, "Accept failed; pausing briefly.");
                    tokio::select! {
                        _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                        _ = cancel.cancelled() => break,
                    }
                }
            },
        };
        let settings = shared.settings();
        let limits = settings.limits.clone();
        // A trusted proxy's connections carry many clients: each request is
        // counted against its forwarded client instead (`forwarded::client`).
        let slot = if super::forwarded::is_trusted(peer.ip(), &settings.trusted_proxies) {
            None
        } else {
            match HttpSlot::acquire(&shared, peer, limits.max_connections_per_ip) {
                Some(slot) => Some(slot),
                None => {
                    refuse(stream, peer);
                    continue;
                }
            }
        };
        drop(settings);
        let _ = stream.set_nodelay(true);
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_header_size(limits.max_header_bytes)
            .max_buf_size(limits.max_header_bytes.max(8192) * 2);
        let abort = CancellationToken::new();
        let ext = Abort(abort.clone());
        let service = app
            .clone()
            .map_request(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.extensions_mut().insert(ext.clone());
                req
            });
        let cancel = cancel.clone();
        let tls = tls.clone();
        conns.spawn(async move {
            // Held until the connection ends or is upgraded.
            let _slot = slot;
            let Some(tls) = tls else {
                return serve_connection(
                    TokioIo::new(stream),
                    builder,
                    service,
                    cancel,
                    abort,
                    peer,
                )
                .await;
            };
            // The handshake is part of what a client must send in time.
            match tokio::time::timeout(limits.header_timeout, tls.accept(stream)).await {
                Ok(Ok(stream)) => {
                    serve_connection(TokioIo::new(stream), builder, service, cancel, abort, peer)
                        .await
                }
                Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed."),
                Err(_) => debug!(%peer, "TLS handshake not done within header_timeout."),
            }
        });
    }
    drop(listener);
    conns.close();
    conns.wait().await;
    Ok(())
}

/// Serves one accepted connection (plain or TLS) until it ends, is upgraded,
/// or shutdown lets it finish what it is answering.
async fn serve_connection<I, S>(
    io: TokioIo<I>,
    builder: http1::Builder,
    service: S,
    cancel: tokio_util::sync::CancellationToken,
    abort: CancellationToken,
    peer: SocketAddr,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<hyper::Request<Incoming>, Response = axum::response::Response>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: std::error::Error + Send + Sync + 'static,
{
    let conn = builder
        .serve_connection(io, TowerToHyperService::new(service))
        .with_upgrades();
    let mut conn = pin!(conn);
    tokio::select! {
        r = conn.as_mut() => return log_end(peer, r),
        // Dropping the connection closes the socket ([`Abort`]).
        _ = abort.cancelled() => return,
        _ = cancel.cancelled() => conn.as_mut().graceful_shutdown(),
    }
    tokio::select! {
        r = conn.as_mut() => log_end(peer, r),
        _ = abort.cancelled() => {}
    }
}

/// Why an address past `max_connections_per_ip` for HTTP is refused (logs
/// and the 503 of a forwarded client).
pub(super) const HTTP_CAP: &str =
    "too many HTTP connections from this address (max_connections_per_ip)";

/// What a connection past the per-address cap is sent before it is closed.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
content-length: 40\r\nconnection: close\r\n\r\ntoo many connections from this address\r\n";

/// Answers a connection past the per-address cap without reading it: one
/// non-blocking write of [`REFUSED`] (a full socket buffer just loses it),
/// then close.
fn refuse(stream: tokio::net::TcpStream, peer: SocketAddr) {
    crate::closes::log(Some(peer), crate::closes::Limit::Refused(HTTP_CAP));
    let _ = stream.try_write(REFUSED);
}

/// One HTTP connection (or one request a trusted proxy forwarded) counted
/// against its address's cap while it lives.
pub(super) struct HttpSlot {
    shared: Arc<AppState>,
    ip: std::net::IpAddr,
}

impl HttpSlot {
    /// Counts one more for `peer`'s address, unless it has `max` already
    /// (counted in `tickerd_http_connections_refused_total`).
    pub(super) fn acquire(shared: &Arc<AppState>, peer: SocketAddr, max: usize) -> Option<Self> {
        if !shared.http_peers.try_add(peer.ip(), max) {
            shared
                .metrics
                .http_connections_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return None;
        }
        Some(HttpSlot {
            shared: shared.clone(),
            ip: peer.ip(),
        })
    }
}

impl Drop for HttpSlot {
    fn drop(&mut self) {
        self.shared.http_peers.remove(self.ip);
    }
}

fn log_end(peer: SocketAddr, r: Result<(), hyper::Error>) {
    if let Err(e) = r {
        debug!(%peer, error = %e, "HTTP connection ended with an error.");
    }
}

/// Errors of one connection (the peer gave up before we accepted it).
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}
