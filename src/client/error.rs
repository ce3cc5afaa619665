//! What can go wrong for a client, in words that say what and where.

use crate::topic::TopicError;

/// A client's error.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server URL cannot be used.
    #[error("invalid server URL `{url}`: {reason} (expected e.g. http://127.0.0.1:8080, 127.0.0.1:8080 or ws://127.0.0.1:8080/ws)")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A pattern breaks the topic grammar (checked before it is sent).
    #[error("invalid pattern: {0}")]
    InvalidPattern(#[from] TopicError),
    /// The server could not be reached, or the connection failed.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The URL tried.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// The server answered with an HTTP error (a refused token, publish or
    /// upgrade): its status and its reason (the `error` of its JSON body).
    #[error("{url}: refused ({status}): {reason}")]
    Refused {
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's reason.
        reason: String,
    },
    /// The server answered a request with an `error` frame.
    #[error("the server refused it ({code}): {message}")]
    Server {
        /// The error code (`forbidden`, `invalid_topic`, ...; docs/protocol.md).
        code: String,
        /// The server's message.
        message: String,
    },
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
}

/// The reason in an HTTP error body: the `error` of `{"error":"..."}`, else the
/// body itself.
pub(super) fn reason_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| body.trim().to_string())
}
