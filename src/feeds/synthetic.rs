//! `synthetic`: a random-walk market, for demos and offline use.

use std::time::Duration;

use rand::Rng;
use serde_json::json;

use super::{Feed, FeedContext};
use crate::config::SyntheticOptions;

/// Random-walk prices: each tick every symbol moves by a normal draw of
/// `volatility` (relative), and `{"symbol","price","change","change_pct"}` is
/// published per symbol; change is measured from the opening price `start`.
#[derive(Debug, Clone)]
pub struct Synthetic {
    options: SyntheticOptions,
}

impl Synthetic {
    /// A market described by `options`.
    pub fn new(options: SyntheticOptions) -> Self {
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
