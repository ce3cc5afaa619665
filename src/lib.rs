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
//! The standalone `tickerd` binary is a thin user of this library; your own
//! program can do everything it does. Build a [`Ticker`] from a config (a file
//! with [`TickerBuilder::config_path`], TOML text with
//! [`TickerBuilder::config_toml`], or a [`Config`] value), mount
//! [`Ticker::router`] in your axum app, publish from your own code with
//! [`Hub::publish`], read values back with [`Hub::latest`] /
//! [`Hub::latest_as`], and consume updates in-process with [`Hub::subscribe`]
//! (a [`Stream`](futures_util::Stream) of [`Update`]s).
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct Order {
//!     id: u32,
//!     total: f64,
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! let ticker = tickerd::Ticker::builder()
//!     .config_toml("[history]\nsize = 10\n")
//!     .start()
//!     .await?;
//! let hub = ticker.hub();
//!
//! // Server-side consumers subscribe by pattern, like WebSocket clients.
//! let mut orders = hub.subscribe(["orders.*"])?;
//! hub.publish("orders.new", &Order { id: 1, total: 9.5 })?;
//!
//! let update = orders.recv().await.expect("the ticker is running");
//! assert_eq!(update.topic(), "orders.new");
//! assert_eq!(update.seq(), 1);
//! assert_eq!(update.data_as::<Order>()?, Order { id: 1, total: 9.5 });
//!
//! // The latest value of any topic, typed.
//! let latest: Option<Order> = hub.latest_as("orders.new")?;
//! assert_eq!(latest.map(|o| o.id), Some(1));
//!
//! // Mount the ticker next to your own routes: `/live/ws`, `/live/api/topics`, ...
//! let app: axum::Router = axum::Router::new()
//!     .route("/", axum::routing::get(|| async { "my app" }))
//!     .nest("/live", ticker.router());
//! # drop(app);
//!
//! // Shut down: feeds stop, WebSocket clients get Close 1001, streams end.
//! ticker.shutdown();
//! ticker.stopped(std::time::Duration::from_secs(3)).await;
//! assert!(orders.recv().await.is_none());
//! # Ok(()) }
//! ```
//!
//! To serve it, pass the app to `axum::serve` with
//! `.with_graceful_shutdown(ticker.shutdown_token().cancelled_owned())`, or
//! give the builder your own token with [`TickerBuilder::cancellation`]:
//! cancelling it shuts the ticker down. A feed kind of your own implements
//! [`Feed`] and is registered with [`TickerBuilder::kind`]; its options come
//! from `[[feed]]` tables in the config, deserialized into your own type. See
//! `examples/` for complete programs (`embed_axum`, `custom_feed`,
//! `publish_from_app`).
//!
//! # Layout
//!
//! The flow of one update, one module per arrow:
//!
//! - [`config`]: the TOML config, loaded and validated whole, with its feed
//!   files and its dashboards ([`config::dashboard`], published on
//!   `$sys.dashboards` and rendered by `web/board.js`).
//! - [`feeds`]: feed kinds, the [`Feed`] trait, supervision and `$sys.feeds`.
//! - [`hub`]: topics, seq, snapshots, history, and fan-out to subscribers.
//! - `session`: one WebSocket connection (reader, batched writer, heartbeat).
//! - `server`: the axum router: `/ws`, `/sse`, `/api/*`, `/metrics`, web assets and
//!   pages (`/`, `/auto`, `/d/{name}`); the
//!   hardened HTTP/1.1 accept loop behind [`Ticker::serve`].
//! - `auth`: tokens and per-topic read grants (see `SECURITY.md`), and
//!   `auth::jwt` for `[auth.jwt]` tokens.
//! - `rate` and `delta`: per-subscription `max_rate` and field-level deltas,
//!   applied by each connection's writer; `publish`: bulk publishing (HTTP
//!   and the WebSocket `publish` op).
//! - [`reload`]: watches the config and applies changes.
//! - `cluster`: `[cluster]` mode: updates relayed through a NATS JetStream
//!   stream, feed ownership by KV leases, `$sys.cluster`.
//! - [`topic`]: topic names, patterns and templates.
//! - [`protocol`]: the wire format.
//! - [`Ticker`]: ties them together; the binary is a thin user of it.

#![deny(missing_docs)]

pub mod config;
pub mod feeds;
pub mod hub;
pub mod metrics;
pub mod protocol;
pub mod reload;
pub mod topic;

mod auth;
mod cluster;
mod delta;
mod publish;
mod rate;
mod server;
mod session;
mod ticker;

pub use cluster::CLUSTER_TOPIC;
pub use config::Config;
pub use feeds::{Feed, FeedContext};
pub use hub::{Hub, Published, Subscription, Update};
pub use ticker::{StartError, Ticker, TickerBuilder, CONFIG_TOPIC, DASHBOARDS_TOPIC};
