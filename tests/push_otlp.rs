//! `otlp` push feeds with the real OpenTelemetry Python SDK and its OTLP/HTTP
//! protobuf exporter: a gauge, a counter and a histogram arrive as
//! `{"name","attributes","resource","value","time"}` topics a WebSocket
//! subscriber sees. A JSON export (curl) is taken too; bad input gets OTLP's
//! `Status` shape.
//!
//! Needs the virtualenv of `scripts/pyenv.sh` (`opentelemetry-sdk`,
//! `opentelemetry-exporter-otlp-proto-http`) and curl.

mod support;

use serde_json::Value;
use support::{python, within, Server};

const CONFIG: &str = "[server]\nlisten = \"127.0.0.1:0\"\npublish_token = \"pt\"\n\n\
    [[feed]]\nname = \"otel\"\nkind = \"otlp\"\ntopic = \"otel.{name}\"\n";

/// The SDK exports a gauge, a counter and a histogram (with attributes and a
/// `service.name` resource) over OTLP/HTTP protobuf, with the token as
/// `Authorization: Bearer`; each becomes a topic with its value, and the
/// histogram its count, sum and per-bucket counts.
#[tokio::test]
async fn sdk_exports_gauge_counter_and_histogram() {
    let server = Server::start(CONFIG).await;
    let mut c = server.client().await;
    c.subscribe(&["otel.*"]).await;
    let script = r#"
import sys
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
exporter = OTLPMetricExporter(endpoint=sys.argv[1], headers={"Authorization": "Bearer pt"})
reader = PeriodicExportingMetricReader(exporter, export_interval_millis=60000)
provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "pytest"}))
meter = provider.get_meter("t")
meter.create_gauge("temp").set(21.5, {"room": "lab"})
meter.create_counter("requests").add(3, {"route": "/a"})
h = meter.create_histogram("latency")
h.record(5, {"route": "/a"})
h.record(50, {"route": "/a"})
ok = reader.force_flush(timeout_millis=20000)
provider.shutdown()
print("exported" if ok else "failed")
sys.exit(0 if ok else 1)
"#;
    let url = server.http("/v1/metrics");
    python::run(script, vec![url], "the OTLP export").await;
    let gauge = c.update_of("otel.temp").await["data"].clone();
    assert_eq!(gauge["value"], 21.5);
    assert_eq!(gauge["attributes"]["room"], "lab");
    assert_eq!(gauge["resource"]["service.name"], "pytest");
    assert!(
        gauge["time"].as_u64().unwrap() > 1_600_000_000_000,
        "{gauge}"
    );
    let counter = c.update_of("otel.requests").await["data"].clone();
    assert_eq!(counter["value"], 3);
    assert_eq!(counter["attributes"]["route"], "/a");
    let hist = c.update_of("otel.latency").await["data"].clone();
    let v = &hist["value"];
    assert_eq!(
        (v["count"].as_u64(), v["sum"].as_f64()),
        (Some(2), Some(55.0)),
        "{hist}"
    );
    let buckets = v["buckets"].as_array().unwrap();
    let total: u64 = buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(total, 2, "{hist}");
    assert_eq!(buckets.last().unwrap()["le"], "+Inf");
}

/// An OTLP/JSON export sent with curl is taken (200 `{}`); a body that is not
/// an export is 400 with `{"code":3,"message"}` in JSON, and a protobuf
/// `Status` for a protobuf request.
#[tokio::test]
async fn json_exports_and_status_errors() {
    let server = Server::start(CONFIG).await;
    let mut c = server.client().await;
    c.subscribe(&["otel.*"]).await;
    let body = r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"host","value":{"stringValue":"h1"}}]},
      "scopeMetrics":[{"metrics":[{"name":"queue","sum":{"dataPoints":[
        {"asInt":"12","timeUnixNano":"1700000000000000000","attributes":[{"key":"q","value":{"intValue":"2"}}]}]}}]}]}]}"#;
    let curl = |ct: &str, body: &str| {
        tokio::process::Command::new("curl")
            .args([
                "-s",
                "-w",
                "\n%{http_code}",
                "-H",
                "Authorization: Bearer pt",
            ])
            .args(["-H", &format!("Content-Type: {ct}"), "--data-binary", body])
            .arg(server.http("/v1/metrics"))
            .output()
    };
    let out = within(curl("application/json", body)).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.ends_with("\n200"), "{text}");
    let queue = c.update_of("otel.queue").await["data"].clone();
    assert_eq!(queue["value"], 12);
    assert_eq!(queue["time"], 1_700_000_000_000i64);
    assert_eq!(queue["attributes"]["q"], 2);
    assert_eq!(queue["resource"]["host"], "h1");
    let out = within(curl("application/json", "[1,2]")).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    assert_eq!(code, "400", "{text}");
    let status: Value = serde_json::from_str(body).unwrap();
    assert_eq!(status["code"], 3);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("resourceMetrics"),
        "{status}"
    );
    let out = within(curl("application/x-protobuf", "\u{7}garbage"))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.ends_with("\n400"), "{text}");
}
