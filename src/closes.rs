//! The log line of a client stopped by a limit: one `info` line naming the
//! peer and the limit, for every connection closed or refused by one (reply
//! budget, write timeout, silent peer, frame too large, per-address and total
//! connection caps, an `/sse` stream's write deadline) and every request answered
//! `rate_limited`.
//!
//! `/metrics` counts these; the line says who and why, so that an operator
//! can tell an attack from a slow network. A flood of closes must not become
//! a flood of log lines (the log would be the next thing to fill up), so
//! at most [`LINES_PER_SECOND`] lines are written per second, process-wide;
//! the rest of that second is summed up in one line when it ends
//! ("K more connections closed by limits in the last second").

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sync::MutexExt;

/// Lines written per second before the rest of that second is only counted.
pub(crate) const LINES_PER_SECOND: u32 = 20;

/// How long one window of [`LINES_PER_SECOND`] lasts.
const WINDOW: Duration = Duration::from_secs(1);

/// The limits a client is stopped by, as the log line names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// Replies past `[limits] max_buffered_bytes`: Close 1008.
    Budget,
    /// A write (frames, a heartbeat) not taken within two heartbeats, on a
    /// WebSocket or an `/sse` stream: dropped without a Close.
    WriteTimeout,
    /// Nothing read from the peer for two heartbeats.
    Silent,
    /// A frame past `[limits] max_frame_bytes`: Close 1009.
    FrameTooLarge,
    /// An expensive request past the per-connection rate: `rate_limited`.
    RateLimited,
    /// A connection refused for its address's `max_connections_per_ip`, or
    /// for `max_connections`, with the refusal's own words.
    Refused(&'static str),
}

impl Limit {
    /// The reason, as logged.
    fn reason(self) -> &'static str {
        match self {
            Limit::Budget => "reply buffer over max_buffered_bytes (closed 1008)",
            Limit::WriteTimeout => "connection took no write for two heartbeats (dropped)",
            Limit::Silent => "peer silent for two heartbeats (dropped)",
            Limit::FrameTooLarge => "frame over max_frame_bytes (closed 1009)",
            Limit::RateLimited => "expensive requests past the rate limit (answered rate_limited)",
            Limit::Refused(why) => why,
        }
    }
}

/// A peer address for logs, `-` when the host did not provide one (a Unix
/// socket, a host that does not insert `ConnectInfo`). A client address a
/// trusted proxy forwarded without a port (port 0) is shown as the IP alone.
pub(crate) struct DisplayPeer(pub(crate) Option<SocketAddr>);

impl std::fmt::Display for DisplayPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(a) if a.port() == 0 => write!(f, "{}", a.ip()),
            Some(a) => write!(f, "{a}"),
            None => f.write_str("-"),
        }
    }
}

/// This second's lines: when it started, how many were written, how many
/// were only counted.
struct Window {
    start: Instant,
    written: u32,
    unwritten: u64,
}

static WINDOW_NOW: Mutex<Option<Window>> = Mutex::new(None);

/// Logs that `peer` was stopped by `limit`, unless this second's lines are
/// used up (then it is counted, and summed up when the second ends).
pub(crate) fn log(peer: Option<SocketAddr>, limit: Limit) {
    let now = Instant::now();
    let mut window = WINDOW_NOW.lock_or_recover();
    let w = window.get_or_insert(Window {
        start: now,
        written: 0,
        unwritten: 0,
    });
    if now.duration_since(w.start) >= WINDOW {
        summarize(w);
        *w = Window {
            start: now,
            written: 0,
            unwritten: 0,
        };
    }
    if w.written < LINES_PER_SECOND {
        w.written += 1;
        drop(window);
        tracing::info!(
            peer = %DisplayPeer(peer),
            reason = limit.reason(),
            "Connection closed by a limit."
        );
        return;
    }
    w.unwritten += 1;
    if w.unwritten == 1 {
        // The first one over: the summary is due when the second ends, even
        // if nothing else closes by then.
        let start = w.start;
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                tokio::time::sleep(WINDOW.saturating_sub(start.elapsed())).await;
                if let Some(w) = WINDOW_NOW.lock_or_recover().as_mut() {
                    if w.start == start {
                        summarize(w);
                    }
                }
            });
        }
    }
}

/// Writes the summary line of a window's unwritten closes, once.
fn summarize(w: &mut Window) {
    if w.unwritten > 0 {
        tracing::info!(
            "{} more connections closed by limits in the last second",
            w.unwritten
        );
        w.unwritten = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every limit names itself in words, and a peer without an address is
    /// shown as `-`.
    #[test]
    fn reasons_and_peers_read_as_words() {
        assert!(Limit::Budget.reason().contains("max_buffered_bytes"));
        assert_eq!(Limit::Refused("too many").reason(), "too many");
        assert_eq!(DisplayPeer(None).to_string(), "-");
        let a: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(DisplayPeer(Some(a)).to_string(), "127.0.0.1:9");
    }
}
