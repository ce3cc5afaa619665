//! A host axum application that serves its own routes and mounts the ticker
//! under `/live`, all on one port, and shuts both down under its own
//! cancellation token.
//!
//! ```sh
//! cargo run --example embed_axum
//! curl http://127.0.0.1:3000/                  # the host's route
//! curl http://127.0.0.1:3000/live/api/topics   # the ticker's API
//! # WebSocket: ws://127.0.0.1:3000/live/ws, dashboard: http://127.0.0.1:3000/live/
//! ```
//!
//! `TICKERD_EXAMPLE_ADDR` sets the listen address (`127.0.0.1:0` picks a free
//! port); the bound address is printed on stdout. Ctrl-C or SIGTERM cancels the
//! host's token: the server stops accepting, WebSocket clients get Close 1001,
//! feeds stop, and the process exits 0.

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tickerd::Ticker;
use tokio_util::sync::CancellationToken;

const CONFIG: &str = r#"
[[feed]]
name = "stocks"
kind = "synthetic"
topic = "stocks.{symbol}"
symbols = ["AAPL", "MSFT"]
interval = "200ms"
"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();

    // The host's own shutdown token; the ticker stops when it is cancelled.
    let shutdown = CancellationToken::new();
    let ticker = Ticker::builder()
        .config_toml(CONFIG)
        .cancellation(shutdown.clone())
        .start()
        .await?;

    let app = Router::new()
        .route("/", get(|| async { "hello from the host app" }))
        .route("/health", get(|| async { "host ok" }))
        .nest("/live", ticker.router());

    let addr = std::env::var("TICKERD_EXAMPLE_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);

    tokio::spawn(cancel_on_signal(shutdown.clone()));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    // Sessions got Close 1001; wait for them and the feeds to end.
    ticker.stopped(Duration::from_secs(3)).await;
    println!("stopped");
    Ok(())
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
