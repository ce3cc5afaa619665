//! An application that publishes its own values into topics and consumes them
//! in-process.
//!
//! `POST /orders` (a host route) takes an order as JSON and publishes it to
//! `orders.new`; browsers see it live on `/live/ws`. A server-side consumer
//! subscribes to `orders.*` with [`tickerd::Hub::subscribe`] (a `Stream` of
//! updates), keeps a running total and publishes it to `stats.orders`.
//!
//! ```sh
//! cargo run --example publish_from_app
//! curl -d '{"id":1,"total":9.5}' -H 'content-type: application/json' http://127.0.0.1:3000/orders
//! curl http://127.0.0.1:3000/live/api/topics/stats.orders
//! ```
//!
//! `TICKERD_EXAMPLE_ADDR` sets the listen address; the bound address is printed
//! on stdout, and so is each update the in-process consumer sees.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tickerd::{Hub, Ticker};
use tokio_util::sync::CancellationToken;

/// An order as the host app knows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    id: u64,
    total: f64,
}

/// What the consumer publishes after each order.
#[derive(Debug, Serialize)]
struct Stats {
    orders: u64,
    revenue: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let shutdown = CancellationToken::new();
    // No feeds at all: every value comes from this program.
    let ticker = Ticker::builder()
        .config_toml("[history]\nsize = 50\n")
        .cancellation(shutdown.clone())
        .start()
        .await?;

    // Subscribe before serving, so no order is missed.
    let orders = ticker.hub().subscribe(["orders.*"])?;
    tokio::spawn(keep_stats(ticker.hub().clone(), orders));

    let app = Router::new()
        .route("/", get(|| async { "orders app" }))
        .route("/orders", post(new_order))
        .with_state(ticker.hub().clone())
        .nest("/live", ticker.router());

    let addr = std::env::var("TICKERD_EXAMPLE_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);

    tokio::spawn(cancel_on_signal(shutdown.clone()));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    ticker.stopped(Duration::from_secs(3)).await;
    Ok(())
}

/// `POST /orders`: publishes the order to `orders.new`.
async fn new_order(State(hub): State<Hub>, Json(order): Json<Order>) -> StatusCode {
    match hub.publish("orders.new", &order) {
        Ok(_) => StatusCode::ACCEPTED,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Consumes `orders.*` in-process and publishes a running total. Ends when the
/// ticker shuts down (the stream ends).
async fn keep_stats(hub: Hub, mut orders: tickerd::Subscription) {
    let mut stats = Stats {
        orders: 0,
        revenue: 0.0,
    };
    while let Some(update) = orders.next().await {
        println!("seen {} seq={}", update.topic(), update.seq());
        let Ok(order) = update.data_as::<Order>() else {
            continue;
        };
        stats.orders += 1;
        stats.revenue += order.total;
        let _ = hub.publish("stats.orders", &stats);
    }
}

/// Cancels `token` on Ctrl-C or SIGTERM.
async fn cancel_on_signal(token: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    token.cancel();
}
