//! A feed kind of your own: implement [`tickerd::Feed`], register it with
//! `.kind("counter", ...)`, and declare feeds of that kind in TOML like any
//! built-in kind. Its options deserialize into your own struct; the ticker
//! supervises it (an `Err` is retried with backoff, shown on `$sys.feeds`) and
//! hot reload restarts it when its options change.
//!
//! ```sh
//! cargo run --example custom_feed                            # built-in config below
//! TICKERD_EXAMPLE_CONFIG=my.toml cargo run --example custom_feed  # a file, watched
//! ```
//!
//! `TICKERD_EXAMPLE_ADDR` sets the listen address; the bound address is printed
//! on stdout.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tickerd::{Feed, FeedContext, Ticker};
use tokio_util::sync::CancellationToken;

const CONFIG: &str = r#"
[[feed]]
name = "slow"
kind = "counter"
topic = "counter.slow"
interval = "1s"
step = 1
"#;

/// The options of a `kind = "counter"` feed: every key of its `[[feed]]` table
/// but `name`, `kind`, `topic`, `enabled` and `stale_after`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CounterOptions {
    /// How often to count.
    #[serde(with = "humantime_serde")]
    interval: Duration,
    /// How much to add each time.
    #[serde(default = "one")]
    step: i64,
    /// Fail (return `Err`) after this many updates, to show supervision.
    fail_after: Option<u64>,
}

fn one() -> i64 {
    1
}

/// What a counter publishes.
#[derive(Debug, Serialize)]
struct Count {
    value: i64,
    step: i64,
}

/// A feed that counts up.
struct Counter(CounterOptions);

impl Feed for Counter {
    async fn run(&self, ctx: FeedContext) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(self.0.interval);
        let (mut value, mut sent) = (0, 0);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = ctx.cancelled() => return Ok(()),
            }
            if self.0.fail_after.is_some_and(|n| sent >= n) {
                anyhow::bail!("counter {} gave up after {sent} updates", ctx.name());
            }
            value += self.0.step;
            sent += 1;
            ctx.publish(&Count {
                value,
                step: self.0.step,
            })?;
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let shutdown = CancellationToken::new();
    let builder = Ticker::builder()
        .kind("counter", |options: CounterOptions| Ok(Counter(options)))
        .cancellation(shutdown.clone());
    let from_file = std::env::var_os("TICKERD_EXAMPLE_CONFIG");
    let builder = match &from_file {
        Some(path) => builder.config_path(path),
        None => builder.config_toml(CONFIG),
    };
    let ticker = builder.start().await?;
    if from_file.is_some() {
        // Follow edits of the file and its feeds directory.
        let t = ticker.clone();
        tokio::spawn(async move { t.watch().await });
    }

    let addr = std::env::var("TICKERD_EXAMPLE_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    tokio::spawn(cancel_on_signal(shutdown));
    // Serves until the token is cancelled, then waits for sessions and feeds.
    ticker.serve(listener).await?;
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
