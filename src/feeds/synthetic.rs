//! `synthetic`: a random-walk market, for demos and offline use.

use std::time::Duration;

use rand::Rng;
use serde_json::json;

use super::options::{self, secs, Bad, KindOptions};
use super::registry::{self, BuiltinKind};
use super::{Feed, FeedContext};
use serde::Deserialize;
use std::sync::Arc;

/// Random-walk prices: each tick every symbol moves by a normal draw of
/// `volatility` (relative), and `{"symbol","price","change","change_pct"}` is
/// published per symbol; change is measured from the opening price `start`.
#[derive(Debug, Clone)]
pub(super) struct Synthetic {
    options: SyntheticOptions,
}

impl Synthetic {
    /// A market described by `options`.
    pub(super) fn new(options: SyntheticOptions) -> Self {
        Synthetic { options }
    }
}

/// One standard normal draw (Box-Muller).
fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl Feed for Synthetic {
    async fn run(&self, ctx: FeedContext) -> anyhow::Result<()> {
        let o = &self.options;
        let mut prices = vec![o.start; o.symbols.len()];
        let mut tick = tokio::time::interval(o.interval.max(Duration::from_millis(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = ctx.cancelled() => return Ok(()),
            }
            for (symbol, price) in o.symbols.iter().zip(prices.iter_mut()) {
                let step = normal(&mut rand::rng()) * o.volatility;
                *price = (*price * (1.0 + step)).max(0.01);
                let change = *price - o.start;
                let item = json!({
                    "symbol": symbol,
                    "price": round2(*price),
                    "change": round2(change),
                    "change_pct": round2(change / o.start * 100.0),
                });
                // A symbol that cannot fill the topic is that item's error; the
                // context has counted and reported it.
                let _ = ctx.publish(&item);
            }
        }
    }
}

/// `kind = "synthetic"`.
pub(crate) const KIND: BuiltinKind = BuiltinKind {
    name: "synthetic",
    check: registry::check::<SyntheticOptions>,
    build: |c| Ok(Arc::new(Synthetic::new(registry::options(c)?))),
};

/// `synthetic`: random-walk prices, one update per symbol each tick.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SyntheticOptions {
    /// Symbols to simulate, e.g. `["AAPL", "MSFT"]`.
    pub(crate) symbols: Vec<String>,
    /// Opening price of every symbol.
    #[serde(default = "default_start")]
    pub(crate) start: f64,
    /// Standard deviation of each tick's relative move.
    #[serde(default = "default_volatility")]
    pub(crate) volatility: f64,
    /// Time between ticks.
    #[serde(default = "secs::<1>", with = "humantime_serde")]
    pub(crate) interval: Duration,
}

impl KindOptions for SyntheticOptions {
    fn check(&self, bad: Bad<'_>) {
        options::interval(&self.interval, "interval", bad);
        if self.symbols.is_empty() {
            bad("symbols", "`symbols` must list at least one symbol".into());
        }
        if !(self.start.is_finite() && self.start > 0.0) {
            bad("start", "`start` must be a positive number".into());
        }
        if !(self.volatility.is_finite() && self.volatility >= 0.0) {
            bad("volatility", "`volatility` must be zero or more".into());
        }
    }
}

fn default_start() -> f64 {
    100.0
}

fn default_volatility() -> f64 {
    0.01
}
