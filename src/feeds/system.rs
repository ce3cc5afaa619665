//! `system`: this host's CPU, memory, load and uptime, read through `sysinfo`.

use serde_json::json;
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

use super::options::{self, secs, Bad, KindOptions};
use super::registry::{self, BuiltinKind};
use super::{Feed, FeedContext};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// Publishes `{"cpu_pct","mem_used_bytes","mem_total_bytes","load1","load5",
/// "load15","uptime_s"}` every `interval`.
#[derive(Debug, Clone)]
pub(super) struct SystemFeed {
    options: SystemOptions,
}

impl SystemFeed {
    /// A sampler described by `options`.
    pub(super) fn new(options: SystemOptions) -> Self {
        SystemFeed { options }
    }
}

impl Feed for SystemFeed {
    async fn run(&self, ctx: FeedContext) -> anyhow::Result<()> {
        let what = RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing().with_cpu_usage())
            .with_memory(MemoryRefreshKind::nothing().with_ram());
        let mut sys = System::new_with_specifics(what);
        // CPU usage is a difference between two samples: take the first now.
        sys.refresh_specifics(what);
        tokio::select! {
            _ = tokio::time::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL) => {}
            _ = ctx.cancelled() => return Ok(()),
        }
        // The first tick is one interval away: `interval`'s own first tick
        // completes at once, which published the first sample twice.
        let period = self.options.interval;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            sys.refresh_specifics(what);
            let load = System::load_average();
            let cpu = (f64::from(sys.global_cpu_usage()) * 10.0).round() / 10.0;
            let item = json!({
                "cpu_pct": cpu,
                "mem_used_bytes": sys.used_memory(),
                "mem_total_bytes": sys.total_memory(),
                "load1": load.one,
                "load5": load.five,
                "load15": load.fifteen,
                "uptime_s": System::uptime(),
            });
            ctx.publish(&item)?;
            tokio::select! {
                _ = tick.tick() => {}
                _ = ctx.cancelled() => return Ok(()),
            }
        }
    }
}

/// `kind = "system"`.
pub(crate) const KIND: BuiltinKind = BuiltinKind {
    name: "system",
    check: registry::check::<SystemOptions>,
    build: |c| Ok(Arc::new(SystemFeed::new(registry::options(c)?))),
};

/// `system`: this host's CPU, memory, load and uptime.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SystemOptions {
    /// Time between samples.
    #[serde(default = "secs::<2>", with = "humantime_serde")]
    pub(crate) interval: Duration,
}

impl KindOptions for SystemOptions {
    fn check(&self, bad: Bad<'_>) {
        options::interval(&self.interval, "interval", bad);
    }
}
