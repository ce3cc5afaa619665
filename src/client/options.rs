//! How a [`Client`](super::Client) connects ([`ClientOptions`]) and what one
//! subscription asks for ([`SubscribeOptions`]).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A fresh token, or why none could be had.
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// The token callback: called before each connection and, for a JWT, before
/// its `exp`, and when the server closes the connection because it expired.
pub type TokenSource = Arc<dyn Fn() -> TokenFuture + Send + Sync>;

/// Options of [`Client::connect`](super::Client::connect).
#[derive(Clone)]
pub struct ClientOptions {
    /// The read token (`[server] token`, an `[[access]]` token or a JWT),
    /// sent as `Authorization: Bearer`.
    pub token: Option<String>,
    /// Where fresh tokens come from (see [`ClientOptions::refresh`]).
    pub refresh: Option<TokenSource>,
    /// The first reconnect window; the delay is drawn uniformly below it.
    pub backoff_base: Duration,
    /// The largest reconnect window.
    pub backoff_cap: Duration,
    /// How long one connection attempt (TCP, upgrade, `hello`) may take.
    pub connect_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            token: None,
            refresh: None,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("refresh", &self.refresh.is_some())
            .field("backoff_base", &self.backoff_base)
            .field("backoff_cap", &self.backoff_cap)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl ClientOptions {
    /// The read token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// An async callback for fresh tokens (like `getToken` of tickerd.js): it
    /// is called before each connection, shortly before a JWT's `exp` (the new
    /// token is sent with the `refresh` op; the connection stays open), and
    /// when the server closes the connection because the token expired (4001).
    pub fn refresh<F, Fut, E>(mut self, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: fmt::Display,
    {
        self.refresh = Some(Arc::new(move || {
            let fut = f();
            Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
        }));
        self
    }
}

/// What one subscription asks for (the fields of a `subscribe`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscribeOptions {
    /// Start after this seq in every topic the patterns match now: the
    /// retained updates after it come first (no snapshot) where history still
    /// reaches back, else the snapshot.
    pub since: Option<u64>,
    /// At most this many updates per second per topic (the server merges
    /// the rest; the latest value always arrives).
    pub max_rate: Option<f64>,
    /// Ask for field-level deltas; they are merged back, so updates stay whole.
    pub delta: bool,
}
