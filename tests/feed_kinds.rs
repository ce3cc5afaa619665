//! Every built-in feed kind keeps the same publishing rules, checked over a
//! table with one row per kind (two for kinds with two modes), each fed by a
//! real source: local HTTP, WebSocket and SSE upstreams, a command, files, and
//! the real mosquitto, redis-server, nats-server, PostgreSQL and Prometheus
//! the other feed tests start; the push kinds (`influx`, `remote_write`,
//! `otlp`) by a source writing its protocol to the server once it runs. A built-in kind without a row fails the table.
//!
//! - `transform` steps shape the published value of every kind (the broker
//!   kinds once skipped them).
//! - `format = "text"` publishes `{"value": "<text>"}` with its line ending
//!   trimmed, for every kind that takes `format`.
//!
//! Needs the servers `scripts/test.sh` installs.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Once};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::response::IntoResponse;
use axum::routing::get;
use futures_util::stream;
use serde_json::{json, Value};
use support::brokers::{Broker, MqttPublisher};
use support::databases::{Postgres, Prometheus};
use support::feeds::{refused_addr, serve};
use support::remote_write::{Label, Sample, TimeSeries, WriteRequest};
use support::{Client, Server};

/// How often a source that streams sends its payload again: a row's source
/// keeps sending until the test ends, so a feed that connects late still
/// gets it.
const EVERY: Duration = Duration::from_millis(200);

/// How long the whole table may take to show every row, on a loaded machine.
const TABLE_DEADLINE: Duration = Duration::from_secs(90);

const PW_ENV: &str = "TICKERD_TEST_KINDS_PG_PASSWORD";

/// The real servers behind the broker and database rows.
struct Sources {
    mqtt: Broker,
    redis: Broker,
    nats: Broker,
    pg: Postgres,
    /// Only the `transform` table has a `prometheus` row (it takes no `format`).
    prom: Option<Prometheus>,
    dir: tempfile::TempDir,
    /// The server's address once it runs: the push rows' sources write to it.
    push_to: Arc<tokio::sync::OnceCell<String>>,
}

impl Sources {
    /// Starts every server at once; Prometheus too when `prometheus`.
    async fn start(prometheus: bool) -> Sources {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| std::env::set_var(PW_ENV, Postgres::PASSWORD));
        // Prometheus scrapes nothing: the rows query constants.
        let nothing = refused_addr();
        let prom = async {
            if prometheus {
                Some(Prometheus::start(nothing.addr).await)
            } else {
                None
            }
        };
        let (mqtt, redis, nats, pg, prom) = tokio::join!(
            Broker::mosquitto(""),
            Broker::redis(&[]),
            Broker::nats(&[]),
            Postgres::start(),
            prom
        );
        Sources {
            mqtt,
            redis,
            nats,
            pg,
            prom,
            dir: tempfile::tempdir().unwrap(),
            push_to: Arc::default(),
        }
    }
}

/// `s` as a TOML string (quoted and escaped).
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Runs `send` every [`EVERY`] until the test's runtime ends.
fn repeat<F, Fut>(mut send: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        loop {
            send().await;
            tokio::time::sleep(EVERY).await;
        }
    });
}

/// The kind of row `row` (`command-stream` is a `command`).
fn kind_of(row: &str) -> &str {
    row.split('-').next().unwrap()
}

/// The keys of the feed of `row` (its kind's own, no `name`/`topic`) whose
/// source sends `payload`, after starting what drives that source. Rows of
/// kinds that read no payload (`synthetic`, `system`, `prometheus`,
/// `postgres` queries) ignore it.
async fn source(row: &str, payload: &str, s: &Sources) -> String {
    let p = payload.to_string();
    match row {
        "synthetic" => "symbols = [\"A\"]\ninterval = \"100ms\"".into(),
        "system" => "interval = \"200ms\"".into(),
        "prometheus" => format!(
            "url = \"{}\"\nquery = \"vector(1.25)\"\ninterval = \"200ms\"",
            s.prom.as_ref().expect("Prometheus started").url()
        ),
        "postgres" => format!(
            "url = \"{}\"\npassword_env = \"{PW_ENV}\"\nquery = \"SELECT 1.25::float8 AS v\"\ninterval = \"200ms\"",
            s.pg.url()
        ),
        "postgres-listen" => {
            let client = Arc::new(s.pg.client().await);
            repeat(move || {
                let (client, p) = (client.clone(), p.clone());
                async move {
                    let _ = client
                        .execute("SELECT pg_notify('kinds', $1)", &[&p])
                        .await;
                }
            });
            format!(
                "url = \"{}\"\npassword_env = \"{PW_ENV}\"\nlisten = [\"kinds\"]",
                s.pg.url()
            )
        }
        "http" => {
            let app = axum::Router::new().route("/", get(move || std::future::ready(p.clone())));
            format!(
                "url = \"http://{}/\"\ninterval = \"200ms\"",
                serve(app).await
            )
        }
        "websocket" => {
            let app = axum::Router::new().route(
                "/",
                get(move |ws: WebSocketUpgrade| {
                    let p = p.clone();
                    std::future::ready(ws.on_upgrade(move |mut socket| async move {
                        while socket.send(Message::Text(p.clone().into())).await.is_ok() {
                            tokio::time::sleep(EVERY).await;
                        }
                    }))
                }),
            );
            format!("url = \"ws://{}/\"", serve(app).await)
        }
        "sse" => {
            // An event's data is one line: the stream's own line ending ends it.
            let data = p.trim_end_matches(['\r', '\n']).to_string();
            let app = axum::Router::new().route(
                "/",
                get(move || {
                    let data = data.clone();
                    let events = stream::unfold(false, move |wait| {
                        let chunk = format!("data: {data}\n\n");
                        async move {
                            if wait {
                                tokio::time::sleep(EVERY).await;
                            }
                            Some((Ok::<_, std::io::Error>(chunk), true))
                        }
                    });
                    std::future::ready(
                        (
                            [("content-type", "text/event-stream")],
                            Body::from_stream(events),
                        )
                            .into_response(),
                    )
                }),
            );
            format!("url = \"http://{}/\"", serve(app).await)
        }
        "command" => format!(
            "command = [\"printf\", \"%s\", {}]\ninterval = \"200ms\"",
            toml_str(&p)
        ),
        "command-stream" => format!(
            "mode = \"stream\"\ncommand = [\"sh\", \"-c\", \"while :; do printf '%s\\\\n' \\\"$P\\\"; sleep 0.2; done\"]\nenv = {{ P = {} }}",
            toml_str(&p)
        ),
        "file" => {
            let path = s.dir.path().join("tail.txt");
            std::fs::write(&path, "").unwrap();
            let line = format!("{}\n", p.trim_end_matches(['\r', '\n']));
            let at = path.clone();
            repeat(move || {
                use std::io::Write as _;
                let mut f = std::fs::OpenOptions::new().append(true).open(&at).unwrap();
                f.write_all(line.as_bytes()).unwrap();
                std::future::ready(())
            });
            format!("path = {}", toml_str(&path.to_string_lossy()))
        }
        "file-whole" => {
            let path = s.dir.path().join("whole.txt");
            std::fs::write(&path, &p).unwrap();
            format!(
                "mode = \"whole\"\npath = {}",
                toml_str(&path.to_string_lossy())
            )
        }
        "mqtt" => {
            let publisher = MqttPublisher::connect(s.mqtt.port, "kinds-test").await;
            let publisher = Arc::new(tokio::sync::Mutex::new(publisher));
            repeat(move || {
                let (publisher, p) = (publisher.clone(), p.clone());
                async move { publisher.lock().await.publish("kinds/row", p).await }
            });
            format!("url = \"{}\"\nsubscribe = [\"kinds/row\"]", s.mqtt.url())
        }
        "redis" => {
            let client = redis::Client::open(s.redis.url()).unwrap();
            let con = client.get_multiplexed_async_connection().await.unwrap();
            repeat(move || {
                let (mut con, p) = (con.clone(), p.clone());
                async move {
                    let _: Result<i64, _> =
                        redis::AsyncCommands::publish(&mut con, "kinds:row", p).await;
                }
            });
            format!("url = \"{}\"\nchannels = [\"kinds:row\"]", s.redis.url())
        }
        "nats" => {
            let client = async_nats::connect(s.nats.url()).await.unwrap();
            repeat(move || {
                let (client, p) = (client.clone(), p.clone());
                async move {
                    let _ = client.publish("kinds.row", p.into()).await;
                    let _ = client.flush().await;
                }
            });
            format!("url = \"{}\"\nsubject = \"kinds.row\"", s.nats.url())
        }
        "influx" | "remote_write" | "otlp" => {
            let (to, name) = (s.push_to.clone(), row.to_string());
            repeat(move || {
                let (to, row) = (to.clone(), name.clone());
                async move {
                    // Nothing to write to until the server runs.
                    let Some(addr) = to.get() else { return };
                    let (path, body) = push_body(&row);
                    let url = format!("http://{addr}{path}");
                    let _ = reqwest::Client::new()
                        .post(url)
                        .header("authorization", format!("Token {PUSH_TOKEN}"))
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await;
                }
            });
            match row {
                "influx" => "bucket = \"kinds\"".into(),
                _ => String::new(),
            }
        }
        other => panic!("no source for row {other:?}"),
    }
}

/// The publish token the push rows' sources write with.
const PUSH_TOKEN: &str = "kinds-pt";

/// The route and body a push row's source writes (once the server runs):
/// one point whose value is 1.25, in the kind's own protocol.
fn push_body(row: &str) -> (&'static str, Vec<u8>) {
    match row {
        "influx" => ("/api/v2/write?bucket=kinds", b"k v=1.25".to_vec()),
        "remote_write" => {
            use prost::Message as _;
            let request = WriteRequest {
                timeseries: vec![TimeSeries {
                    labels: vec![Label {
                        name: "__name__".into(),
                        value: "k".into(),
                    }],
                    samples: vec![Sample {
                        value: 1.25,
                        timestamp: 1_700_000_000_000,
                    }],
                }],
            };
            let body = snap::raw::Encoder::new()
                .compress_vec(&request.encode_to_vec())
                .unwrap();
            ("/api/v1/write", body)
        }
        _ => (
            "/v1/metrics",
            br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"k","gauge":{"dataPoints":[{"asDouble":1.25}]}}]}]}]}"#
                .to_vec(),
        ),
    }
}

/// A config with one feed per row (`k.<row>` its topic), each with `common`
/// keys and `extra(row)`.
async fn config(
    rows: &[&str],
    payload: &str,
    s: &Sources,
    extra: impl Fn(&str) -> String,
) -> String {
    let mut text =
        format!("[server]\nlisten = \"127.0.0.1:0\"\npublish_token = \"{PUSH_TOKEN}\"\n");
    for row in rows {
        text += &format!(
            "\n[[feed]]\nname = \"{row}\"\nkind = \"{}\"\ntopic = \"k.{row}\"\n{}\n{}\n",
            kind_of(row),
            source(row, payload, s).await,
            extra(row)
        );
    }
    text
}

/// The first update of each row's topic, within [`TABLE_DEADLINE`]; on time
/// out, fails naming the rows still missing and every feed's status.
async fn first_of_each(server: &Server, c: &mut Client, rows: &[&str]) -> BTreeMap<String, Value> {
    let mut got = BTreeMap::new();
    let all = tokio::time::timeout(TABLE_DEADLINE, async {
        while got.len() < rows.len() {
            let v = c.recv().await;
            if v["type"] != "update" {
                continue;
            }
            if let Some(row) = v["topic"].as_str().and_then(|t| t.strip_prefix("k.")) {
                got.entry(row.to_string()).or_insert(v["data"].clone());
            }
        }
    })
    .await;
    if all.is_err() {
        let missing: Vec<&&str> = rows.iter().filter(|r| !got.contains_key(**r)).collect();
        panic!(
            "no update from {missing:?}; statuses: {:#?}",
            server.ticker.feed_statuses().await
        );
    }
    got
}

/// `transform` applies to every built-in kind: each row's feed renames the
/// field its source sends (`v`, or the kind's own, such as `price`) to
/// `shaped`, and the published value carries `shaped` and not the original.
/// A built-in kind with no row fails the test.
#[tokio::test]
async fn transform_shapes_every_kind() {
    // (row, the field its items carry)
    let table: &[(&str, &str)] = &[
        ("synthetic", "price"),
        ("system", "cpu_pct"),
        ("http", "v"),
        ("command", "v"),
        ("websocket", "v"),
        ("sse", "v"),
        ("file", "v"),
        ("mqtt", "v"),
        ("redis", "v"),
        ("nats", "v"),
        ("prometheus", "value"),
        ("postgres", "v"),
        ("influx", "fields"),
        ("remote_write", "value"),
        ("otlp", "value"),
    ];
    let kinds: BTreeSet<&str> = table.iter().map(|(row, _)| kind_of(row)).collect();
    let builtin: BTreeSet<&str> = tickerd::feeds::builtin_kinds().collect();
    assert_eq!(kinds, builtin, "every built-in kind needs a row");

    let s = Sources::start(true).await;
    let rows: Vec<&str> = table.iter().map(|(row, _)| *row).collect();
    let field = |row: &str| table.iter().find(|(r, _)| *r == row).unwrap().1;
    let text = config(&rows, r#"{"v":1.25}"#, &s, |row| {
        format!(
            "transform = [{{ rename = {{ {} = \"shaped\" }} }}]",
            field(row)
        )
    })
    .await;
    let server = Server::start(&text).await;
    s.push_to.set(server.addr.to_string()).unwrap();
    let mut c = server.client().await;
    c.subscribe(&["k.*"]).await;
    let got = first_of_each(&server, &mut c, &rows).await;
    let unshaped: Vec<String> = got
        .iter()
        .filter(|(row, data)| data.get("shaped").is_none() || data.get(field(row)).is_some())
        .map(|(row, data)| format!("{row}: {data}"))
        .collect();
    assert!(
        unshaped.is_empty(),
        "rows whose field was not renamed to `shaped`: {unshaped:#?}"
    );
}

/// `format = "text"` publishes `{"value": "<text>"}` with the line ending
/// trimmed, for every kind that takes `format` (each mode that reads text its
/// own way has a row). The kinds that take no `format` are named, so a new
/// built-in kind must be placed in one list or the other.
#[tokio::test]
async fn text_format_is_one_object_for_every_kind() {
    let rows = [
        "http",
        "command",
        "command-stream",
        "websocket",
        "sse",
        "file",
        "file-whole",
        "mqtt",
        "redis",
        "nats",
        "postgres-listen",
    ];
    // The push kinds take their protocol's own body, never a `format`.
    let without_format = [
        "synthetic",
        "system",
        "prometheus",
        "influx",
        "remote_write",
        "otlp",
    ];
    let kinds: BTreeSet<&str> = rows
        .iter()
        .map(|r| kind_of(r))
        .chain(without_format)
        .collect();
    let builtin: BTreeSet<&str> = tickerd::feeds::builtin_kinds().collect();
    assert_eq!(
        kinds, builtin,
        "every built-in kind needs a row or a reason"
    );

    let s = Sources::start(false).await;
    let text = config(&rows, "hello\r\n", &s, |_| "format = \"text\"".into()).await;
    let server = Server::start(&text).await;
    let mut c = server.client().await;
    c.subscribe(&["k.*"]).await;
    let got = first_of_each(&server, &mut c, &rows).await;
    let wrong: Vec<String> = got
        .iter()
        .filter(|(_, data)| **data != json!({"value": "hello"}))
        .map(|(row, data)| format!("{row}: {data}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "rows not publishing {{\"value\":\"hello\"}}: {wrong:#?}"
    );
}
