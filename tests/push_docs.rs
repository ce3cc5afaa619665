//! README "Push from a monitoring pipeline": its snippets are checked against
//! a real server, not only parsed. The tickerd config runs; the Telegraf
//! `outputs.influxdb_v2` table's keys (urls, token, organization, bucket,
//! content_encoding) make a write that server takes; the Prometheus
//! `remote_write` snippet passes `promtool check config` and its URL and
//! credentials make a write it takes; the OpenTelemetry Collector's
//! `otlphttp` exporter's `endpoint` plus `/v1/metrics` and its headers make an
//! export it takes.
//!
//! Needs `promtool` (Debian's `prometheus` package).

mod support;

use std::collections::BTreeMap;
use std::io::Write as _;

use support::markdown::root;
use support::{within, Server};

/// The README's section on pushing.
fn section() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("## Push from a monitoring pipeline")
        .expect("the README has the section");
    let rest = &readme[start + 3..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    rest[..end].to_string()
}

/// The section's fenced blocks of `lang`, in order.
fn blocks(text: &str, lang: &str) -> Vec<String> {
    let fence = format!("```{lang}\n");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(&fence) {
        let body = &rest[at + fence.len()..];
        let end = body.find("```").expect("a closed block");
        out.push(body[..end].to_string());
        rest = &body[end..];
    }
    out
}

/// A YAML block's scalar values by dotted key path (`a.b.c`), from its
/// indentation: enough to read the keys of these snippets (list items `- `
/// open a level).
fn yaml_keys(yaml: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut path: Vec<(usize, String)> = Vec::new();
    for line in yaml.lines().filter(|l| !l.trim().is_empty()) {
        let mut indent = line.len() - line.trim_start().len();
        let mut text = line.trim_start();
        if let Some(item) = text.strip_prefix("- ") {
            indent += 2;
            text = item;
        }
        let (key, value) = text.split_once(':').expect("a `key: value` line");
        path.retain(|(i, _)| *i < indent);
        path.push((indent, key.trim().to_string()));
        let full: Vec<&str> = path.iter().map(|(_, k)| k.as_str()).collect();
        if !value.trim().is_empty() {
            out.insert(full.join("."), value.trim().to_string());
        }
    }
    out
}

/// The server the README's tickerd snippet configures, and the snippet's
/// base URL (`http://127.0.0.1:8080`) replaced by its own.
async fn readme_server() -> (Server, impl Fn(&str) -> String) {
    let text = section();
    let config = blocks(&text, "toml")
        .into_iter()
        .find(|b| b.contains("[[feed]]"))
        .expect("a tickerd config in the section");
    let server = Server::start(&config).await;
    let base = server.http("");
    (server, move |s: &str| {
        s.replace("http://127.0.0.1:8080", &base)
    })
}

/// POSTs `body` with `headers`; the status.
async fn post(url: &str, headers: &[(&str, String)], body: Vec<u8>) -> u16 {
    within(async {
        let mut req = reqwest::Client::new().post(url).body(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        req.send().await.unwrap().status().as_u16()
    })
    .await
}

/// Telegraf's `outputs.influxdb_v2` snippet: the keys Telegraf reads, and a
/// gzip write made from them (Telegraf's request: `/api/v2/write` with
/// `bucket` and `org`, `Authorization: Token`) is taken.
#[tokio::test]
async fn telegraf_snippet_writes_to_the_readme_config() {
    let (server, local) = readme_server().await;
    let telegraf = blocks(&section(), "toml")
        .into_iter()
        .find(|b| b.contains("outputs.influxdb_v2"))
        .expect("a Telegraf snippet");
    let table: toml::Table = toml::from_str(&local(&telegraf)).unwrap();
    let out = &table["outputs"]["influxdb_v2"][0];
    let s = |k: &str| {
        out[k]
            .as_str()
            .unwrap_or_else(|| panic!("no `{k}`"))
            .to_string()
    };
    assert_eq!(s("content_encoding"), "gzip");
    let url = format!(
        "{}/api/v2/write?bucket={}&org={}",
        out["urls"][0].as_str().unwrap(),
        s("bucket"),
        s("organization")
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"cpu,host=web1 usage_user=12.5").unwrap();
    let headers = [
        ("authorization", format!("Token {}", s("token"))),
        ("content-encoding", "gzip".to_string()),
    ];
    assert_eq!(post(&url, &headers, gz.finish().unwrap()).await, 204);
    let (status, row) = support::get_json(&server.http("/api/topics/metrics.cpu.web1")).await;
    assert_eq!(status, 200, "{row}");
}

/// Prometheus' `remote_write` snippet is a config `promtool` accepts, and a
/// (here empty) WriteRequest sent to its URL with its credentials as a
/// bearer token is taken.
#[tokio::test]
async fn prometheus_snippet_is_valid_and_its_url_takes_writes() {
    let (_server, local) = readme_server().await;
    let yaml = blocks(&section(), "yaml")
        .into_iter()
        .find(|b| b.contains("remote_write:"))
        .expect("a Prometheus snippet");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prometheus.yml");
    std::fs::write(&file, &yaml).unwrap();
    let check = tokio::process::Command::new("promtool")
        .args(["check", "config"])
        .arg(&file)
        .output();
    let check = within(check).await.unwrap();
    assert!(
        check.status.success(),
        "promtool refuses the README snippet: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let keys = yaml_keys(&local(&yaml));
    let url = &keys["remote_write.url"];
    assert!(url.ends_with("/api/v1/write"), "{url}");
    let token = &keys["remote_write.authorization.credentials"];
    let body = snap::raw::Encoder::new().compress_vec(b"").unwrap();
    let headers = [
        ("authorization", format!("Bearer {token}")),
        ("content-encoding", "snappy".to_string()),
    ];
    assert_eq!(post(url, &headers, body).await, 204);
}

/// The Collector's `otlphttp` exporter snippet: its `endpoint` plus
/// `/v1/metrics` (what the exporter appends) with its headers takes an
/// export, and the pipeline names the exporter.
#[tokio::test]
async fn collector_snippet_exports_to_the_readme_config() {
    let (_server, local) = readme_server().await;
    let yaml = blocks(&section(), "yaml")
        .into_iter()
        .find(|b| b.contains("otlphttp"))
        .expect("a Collector snippet");
    let keys = yaml_keys(&local(&yaml));
    assert!(keys["service.pipelines.metrics.exporters"].contains("otlphttp"));
    let url = format!("{}/v1/metrics", keys["exporters.otlphttp.endpoint"]);
    let headers = [
        (
            "authorization",
            keys["exporters.otlphttp.headers.Authorization"].clone(),
        ),
        ("content-type", "application/json".to_string()),
    ];
    let body = br#"{"resourceMetrics":[]}"#.to_vec();
    assert_eq!(post(&url, &headers, body).await, 200);
}
