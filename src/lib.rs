//! tickerd turns any data source into a live, pushed, browser-ready ticker.
//!
//! Feeds (HTTP polls, upstream WebSockets, SSE, commands, files, host metrics, a
//! synthetic market, or your own Rust code) publish into topics; WebSocket
//! clients subscribe to topics by pattern and get a snapshot, then every change,
//! with sequence numbers, resume after reconnect, and conflation when they read
//! slowly.
//!
//! # Embedding
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use serde_json::json;
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let ticker = tickerd::Ticker::builder().start().await?;
//! ticker.hub().publish("orders.new", &json!({"id": 1, "total": 9.5}))?;
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "my app" }))
//!     .nest("/live", ticker.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! The flow of one update, one module per arrow:
//!
//! - [`config`]: the TOML config, loaded and validated whole.
//! - [`feeds`]: feed kinds, the [`Feed`] trait, supervision and `$sys.feeds`.
//! - [`hub`]: topics, seq, snapshots, history, and fan-out to subscribers.
//! - `session`: one WebSocket connection (reader, batched writer, heartbeat).
//! - `server`: the axum router: `/ws`, `/api/*`, `/metrics`, web assets; the
//!   hardened HTTP/1.1 accept loop behind [`Ticker::serve`].
//! - `auth`: tokens and per-topic read grants (see `SECURITY.md`).
//! - [`reload`]: watches the config and applies changes.
//! - [`topic`]: topic names, patterns and templates.
//! - [`protocol`]: the wire format.
//! - [`Ticker`]: ties them together; the binary is a thin user of it.

pub mod config;
pub mod feeds;
pub mod hub;
pub mod metrics;
pub mod protocol;
pub mod reload;
pub mod topic;

mod auth;
mod server;
mod session;
mod ticker;

pub use config::Config;
pub use feeds::{Feed, FeedContext};
pub use hub::{Hub, Published};
pub use ticker::{StartError, Ticker, TickerBuilder, CONFIG_TOPIC};
