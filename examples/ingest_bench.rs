//! Push ingest benchmark: how many points a second tickerd takes in over each
//! push protocol, parsed and published into topics, and the CPU each point
//! costs. Run it in release, on one core (the server and this client share a
//! single-threaded runtime):
//!
//! ```text
//! cargo run --release --example ingest_bench [-- WRITES]
//! ```
//!
//! Each protocol gets `WRITES` (default 100) requests of 5,000 points each
//! over real HTTP on 127.0.0.1: InfluxDB line protocol (`influx`), Prometheus
//! remote-write 1.0 (`remote_write`, snappy protobuf) and OTLP/HTTP protobuf
//! (`otlp`, gauges). The 5,000 points are 5,000 series (topics), updated by
//! every write. It prints one table row per protocol: points/s (wall clock)
//! and µs of process CPU (user + system) per point. docs/ingest.md has a run.

use std::time::{Duration, Instant};

use prost::Message as _;

#[path = "../tests/support/remote_write.rs"]
mod remote_write;
use remote_write::{Label, Sample, TimeSeries, WriteRequest};

/// Points in one write.
const POINTS: usize = 5_000;

const CONFIG: &str = r#"
[server]
publish_token = "bench"

[limits]
max_push_bytes = 67108864

[[feed]]
name = "lp"
kind = "influx"
bucket = "bench"
topic = "lp.{measurement}.{tags.host}"

[[feed]]
name = "rw"
kind = "remote_write"
topic = "rw.{name}.{labels.host}"

[[feed]]
name = "ot"
kind = "otlp"
topic = "ot.{name}.{attributes.host}"
"#;

/// The OTLP messages of a gauge export (`ExportMetricsServiceRequest`, ...).
#[derive(Clone, PartialEq, prost::Message)]
struct Export {
    #[prost(message, repeated, tag = "1")]
    resource_metrics: Vec<ResourceMetrics>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ResourceMetrics {
    #[prost(message, repeated, tag = "2")]
    scope_metrics: Vec<ScopeMetrics>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ScopeMetrics {
    #[prost(message, repeated, tag = "2")]
    metrics: Vec<Metric>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Metric {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "5")]
    gauge: Option<Gauge>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Gauge {
    #[prost(message, repeated, tag = "1")]
    data_points: Vec<NumberDataPoint>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct NumberDataPoint {
    #[prost(message, repeated, tag = "7")]
    attributes: Vec<KeyValue>,
    #[prost(fixed64, tag = "3")]
    time_unix_nano: u64,
    #[prost(double, tag = "4")]
    as_double: f64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct KeyValue {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(message, optional, tag = "2")]
    value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AnyValue {
    #[prost(string, tag = "1")]
    string_value: String,
}

/// Series `i`'s measurement (100 of them) and host (50).
fn series(i: usize) -> (String, String) {
    (format!("m{}", i % 100), format!("h{}", i / 100))
}

/// One line protocol write of [`POINTS`] points.
fn line_protocol() -> Vec<u8> {
    let mut body = String::with_capacity(POINTS * 80);
    for i in 0..POINTS {
        let (m, h) = series(i);
        body.push_str(&format!(
            "{m},host={h},region=eu-west usage={}.5,count={i}i,ok=true 1700000000000000000\n",
            i % 97
        ));
    }
    body.into_bytes()
}

/// One remote-write request of [`POINTS`] samples, snappy-compressed.
fn remote_write() -> Vec<u8> {
    let timeseries = (0..POINTS)
        .map(|i| {
            let (m, h) = series(i);
            let label = |name: &str, value: String| Label {
                name: name.into(),
                value,
            };
            TimeSeries {
                labels: vec![
                    label("__name__", m),
                    label("host", h),
                    label("job", "node".into()),
                ],
                samples: vec![Sample {
                    value: i as f64,
                    timestamp: 1_700_000_000_000,
                }],
            }
        })
        .collect();
    let raw = WriteRequest { timeseries }.encode_to_vec();
    snap::raw::Encoder::new().compress_vec(&raw).unwrap()
}

/// One OTLP export of [`POINTS`] gauge points.
fn otlp() -> Vec<u8> {
    let metrics = (0..POINTS)
        .map(|i| {
            let (m, h) = series(i);
            Metric {
                name: m,
                gauge: Some(Gauge {
                    data_points: vec![NumberDataPoint {
                        attributes: vec![KeyValue {
                            key: "host".into(),
                            value: Some(AnyValue { string_value: h }),
                        }],
                        time_unix_nano: 1_700_000_000_000_000_000,
                        as_double: i as f64,
                    }],
                }),
            }
        })
        .collect();
    Export {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics { metrics }],
        }],
    }
    .encode_to_vec()
}

/// This process's CPU time so far (user + system).
fn cpu() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    let usage = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    tv(usage.user_time()) + tv(usage.system_time())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let writes: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(100);
    let ticker = tickerd::Ticker::builder()
        .config_toml(CONFIG)
        .start()
        .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = ticker.clone();
    tokio::spawn(async move { server.serve(listener).await });
    let client = reqwest::Client::new();
    println!("| protocol | points/write | writes | points/s | CPU µs/point |");
    println!("|---|---|---|---|---|");
    let cases = [
        (
            "influx (line protocol)",
            "/api/v2/write?bucket=bench",
            line_protocol(),
            "",
        ),
        (
            "remote_write (snappy protobuf)",
            "/api/v1/write",
            remote_write(),
            "snappy",
        ),
        ("otlp (protobuf)", "/v1/metrics", otlp(), ""),
    ];
    for (name, path, body, encoding) in cases {
        let url = format!("{base}{path}");
        let send = || {
            let mut req = client
                .post(&url)
                .header("authorization", "Token bench")
                .header("content-type", "application/x-protobuf")
                .body(body.clone());
            if !encoding.is_empty() {
                req = req.header("content-encoding", encoding);
            }
            req.send()
        };
        // One write first: it creates the topics, which later writes update.
        let status = send().await?.status();
        anyhow::ensure!(status.is_success(), "{name}: the first write got {status}");
        let (wall, cpu0) = (Instant::now(), cpu());
        for _ in 0..writes {
            let status = send().await?.status();
            anyhow::ensure!(status.is_success(), "{name}: a write got {status}");
        }
        let (wall, used) = (wall.elapsed(), cpu() - cpu0);
        let points = (writes * POINTS) as f64;
        println!(
            "| {name} | {POINTS} | {writes} | {:.0} | {:.2} |",
            points / wall.as_secs_f64(),
            used.as_secs_f64() * 1e6 / points
        );
    }
    ticker.shutdown();
    ticker.stopped(Duration::from_secs(3)).await;
    Ok(())
}
