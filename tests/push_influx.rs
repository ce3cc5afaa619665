//! `influx` push feeds with real clients: the official `influxdb-client`
//! Python library (every field type, every precision, gzip) and curl (a bad
//! line), seen by a WebSocket subscriber. Also the answers InfluxDB clients
//! expect (204, 400/401/403/404/413 as `{"code","message"}`), `max_topics`
//! refusing a write whole, and reload adding and removing the feed.
//!
//! Needs the virtualenv of `scripts/pyenv.sh` (`influxdb-client`) and curl.

mod support;

use serde_json::Value;
use support::{eventually, python, within, Server};

/// A server with the publish token `pt` and `feeds` (TOML).
fn config(feeds: &str) -> String {
    format!("[server]\nlisten = \"127.0.0.1:0\"\npublish_token = \"pt\"\n\n{feeds}")
}

/// [`config`] plus an `[[access]]` token `w` that may publish only `m.a.>`
/// and a read-only token `ro` (reads then need a token: `ro`).
fn config_with_access(feeds: &str) -> String {
    let access = "[[access]]\ntoken = \"w\"\npatterns = [\">\"]\npublish = [\"m.a.>\"]\n\n\
                  [[access]]\ntoken = \"ro\"\npatterns = [\">\"]\n\n";
    config(&format!("{access}{feeds}"))
}

const FEED: &str = "[[feed]]\nname = \"lp\"\nkind = \"influx\"\nbucket = \"b1\"\n\
                    topic = \"m.{tags.host}.{measurement}\"\n";

/// POSTs `body` to `path` with `auth` as the `Authorization` header (if
/// any); the status and the body as JSON (or a string).
async fn post(server: &Server, path: &str, auth: Option<&str>, body: &[u8]) -> (u16, Value) {
    within(async {
        let mut req = reqwest::Client::new()
            .post(server.http(path))
            .body(body.to_vec());
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    })
    .await
}

/// The official client writes a point of every field type at every
/// precision (one gzip-compressed write among them); a subscriber sees each
/// as `{"measurement","tags","fields","time"}` with `time` in ms, on the
/// topic the template makes of a tag.
#[tokio::test]
async fn official_client_writes_every_type_and_precision() {
    let server = Server::start(&config(FEED)).await;
    let mut c = server.client().await;
    c.subscribe(&["m.>"]).await;
    let script = r#"
import sys
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
url = sys.argv[1]
t_s = 1700000000
for gzip in (False, True):
    with InfluxDBClient(url=url, token="pt", org="o", enable_gzip=gzip) as client:
        w = client.write_api(write_options=SYNCHRONOUS)
        if not gzip:
            for name, p, t in (("s", WritePrecision.S, t_s), ("ms", WritePrecision.MS, t_s * 1000),
                               ("us", WritePrecision.US, t_s * 10**6), ("ns", WritePrecision.NS, t_s * 10**9)):
                point = (Point("prec").tag("host", name).field("f", 1.5).field("i", 7)
                         .field("s", 'say "hi", ok').field("b", True).time(t, p))
                w.write(bucket="b1", record=point, write_precision=p)
            w.write(bucket="b1", record="types,host=u u=42u,neg=-3i,x=2.0,off=F", write_precision=WritePrecision.NS)
        else:
            w.write(bucket="b1", record=Point("zipped").tag("host", "gz").field("v", 3.25))
print("ok")
"#;
    let url = server.http("");
    python::run(script, vec![url], "influxdb-client").await;
    for prec in ["s", "ms", "us", "ns"] {
        let v = c.update_of(&format!("m.{prec}.prec")).await;
        let d = &v["data"];
        assert_eq!(d["measurement"], "prec");
        assert_eq!(d["tags"]["host"], prec);
        assert_eq!(d["time"], 1_700_000_000_000i64, "precision {prec}: {d}");
        assert_eq!(d["fields"]["f"], 1.5);
        assert_eq!(d["fields"]["i"], 7);
        assert_eq!(d["fields"]["s"], "say \"hi\", ok");
        assert_eq!(d["fields"]["b"], true);
    }
    let types = c.update_of("m.u.types").await;
    let f = &types["data"]["fields"];
    assert_eq!((f["u"].as_u64(), f["neg"].as_i64()), (Some(42), Some(-3)));
    assert_eq!(
        (f["x"].as_f64(), &f["off"]),
        (Some(2.0), &Value::Bool(false))
    );
    let zipped = c.update_of("m.gz.zipped").await;
    assert_eq!(zipped["data"]["fields"]["v"], 3.25);
}

/// curl with a bad line gets 400 `{"code":"invalid"}` whose message names
/// the line; nothing of that write is published (its good first line
/// neither).
#[tokio::test]
async fn a_bad_line_is_refused_naming_it() {
    let server = Server::start(&config(FEED)).await;
    let out = tokio::process::Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            "-H",
            "Authorization: Token pt",
        ])
        .args(["--data-binary", "cpu,host=a v=1\ncpu,host=b\n"])
        .arg(server.http("/api/v2/write?bucket=b1&org=o"))
        .output();
    let out = within(out).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    assert_eq!(code, "400", "{text}");
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["code"], "invalid");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("line 2") && message.contains("missing fields"),
        "{message}"
    );
    let (status, _) = support::get_json(&server.http("/api/topics/m.a.cpu")).await;
    assert_eq!(
        status, 404,
        "the good line of a refused write was published"
    );
}

/// The answers clients act on: no token or an unknown one 401, a token that
/// may not publish 403, a topic outside an `[[access]]` publish grant 403
/// (the whole write), an unknown bucket 404 naming it, a body past
/// `max_push_bytes` 413, a write past `max_topics` 507 with nothing
/// published; v1 `/write?db=` with basic auth and the grant's topics 204.
#[tokio::test]
async fn credentials_grants_and_limits() {
    let limits = "[limits]\nmax_topics = 3\nmax_push_bytes = 2048\n";
    let server = Server::start(&format!("{}\n{limits}", config_with_access(FEED))).await;
    let v2 = "/api/v2/write?bucket=b1&org=o";
    let line = b"cpu,host=a v=1\n";
    for (auth, want) in [
        (None, 401),
        (Some("Token nope"), 401),
        (Some("Token ro"), 403),
    ] {
        let (status, body) = post(&server, v2, auth, line).await;
        assert_eq!(status, want, "{auth:?}: {body}");
        assert!(
            body["code"].is_string() && body["message"].is_string(),
            "{body}"
        );
    }
    let (status, body) = post(
        &server,
        v2,
        Some("Token w"),
        b"cpu,host=a v=1\ncpu,host=b v=1\n",
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("m.b.cpu"),
        "{body}"
    );
    let (status, body) = post(&server, "/api/v2/write?bucket=nope", Some("Token pt"), line).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("\"nope\""),
        "{body}"
    );
    let big = "cpu,host=a v=1\n".repeat(200);
    let (status, body) = post(&server, v2, Some("Token pt"), big.as_bytes()).await;
    assert_eq!(
        (status, &body["code"]),
        (413, &Value::from("request too large"))
    );
    let five: String = (0..5).map(|i| format!("cpu,host=h{i} v=1\n")).collect();
    let (status, body) = post(&server, v2, Some("Token pt"), five.as_bytes()).await;
    assert_eq!(status, 507, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("max_topics"),
        "{body}"
    );
    let (_, rows) = support::get_json(&server.http("/api/topics?token=ro")).await;
    let rows = rows.as_array().unwrap();
    assert!(
        rows.iter()
            .all(|r| r["topic"].as_str().unwrap().starts_with('$')),
        "{rows:?}"
    );
    // Basic auth (InfluxDB 1.x clients): the token is the password.
    let basic = "Basic dXNlcjp3"; // user:w
    let (status, body) = post(
        &server,
        "/write?db=b1&precision=s",
        Some(basic),
        b"cpu,host=a v=2 1700000000",
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (_, row) = support::get_json(&server.http("/api/topics/m.a.cpu?token=ro")).await;
    assert_eq!(row["data"]["time"], 1_700_000_000_000i64, "{row}");
}

/// Reload adds and removes the feed: a write is 404 before it exists, 204
/// while it runs (counted on `$sys.feeds`), 404 again once it is removed.
#[tokio::test]
async fn reload_adds_and_removes_the_route_taker() {
    let server = Server::start(&config("")).await;
    let v2 = "/api/v2/write?bucket=b1";
    let line = b"cpu,host=a v=1\n";
    assert_eq!(post(&server, v2, Some("Token pt"), line).await.0, 404);
    support::write_atomic(&server.config_path, config(FEED));
    eventually("the influx feed takes writes", || async {
        post(&server, v2, Some("Token pt"), line).await.0 == 204
    })
    .await;
    eventually("$sys.feeds counts the point", || async {
        let (_, s) = support::get_json(&server.http("/api/topics/$sys.feeds.lp")).await;
        s["data"]["updates"].as_u64().is_some_and(|n| n >= 1)
    })
    .await;
    support::write_atomic(&server.config_path, config(""));
    eventually("the removed feed no longer takes writes", || async {
        post(&server, v2, Some("Token pt"), line).await.0 == 404
    })
    .await;
}

/// Two feeds take one bucket: the one without `transform` steps publishes
/// each point's item as it was parsed (its JSON text written straight from
/// the line: escapes, unicode, every field type, keys sorted and a repeated
/// key's last value), the one with steps gets the same item as a `Value`
/// and publishes what its steps make of it; both topics come from the same
/// template fields. A point whose tag cannot make a topic is dropped and
/// counted on the feed, the rest of the write is published.
#[tokio::test]
async fn a_feed_with_transform_steps_gets_the_same_item() {
    let feeds = "[[feed]]\nname = \"plain\"\nkind = \"influx\"\nbucket = \"b1\"\n\
                 topic = \"p.{tags.host}\"\n\n\
                 [[feed]]\nname = \"shaped\"\nkind = \"influx\"\nbucket = \"b1\"\n\
                 topic = \"s.{tags.host}.{fields.n}\"\n\
                 transform = [{ rename = { measurement = \"m\" } }, { select = [\"m\", \"tags\"] }]\n";
    let server = Server::start(&config(feeds)).await;
    let mut c = server.client().await;
    c.subscribe(&["p.>", "s.>"]).await;
    let body = "cpu\\ load,zone=Zürich\\ 1,host=h1,host=h2 \
                s=\"say \\\"hi\\\" \\\\ 🚀\",f=1.5,i=-9223372036854775808i,u=18446744073709551615u,\
                b=t,n=7i 1700000000123456789\n\
                cpu,host=bad.host v=1\n";
    let (status, _) = post(
        &server,
        "/api/v2/write?bucket=b1",
        Some("Token pt"),
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, 204);
    let plain = c.update_of("p.h2").await;
    assert_eq!(
        plain["data"],
        serde_json::json!({
            "measurement": "cpu load",
            "tags": {"host": "h2", "zone": "Zürich 1"},
            "fields": {"s": "say \"hi\" \\ 🚀", "f": 1.5, "i": i64::MIN, "u": u64::MAX,
                       "b": true, "n": 7},
            "time": 1_700_000_000_123i64,
        })
    );
    let shaped = c.update_of("s.h2.7").await;
    assert_eq!(
        shaped["data"],
        serde_json::json!({"m": "cpu load", "tags": {"host": "h2", "zone": "Zürich 1"}})
    );
    eventually(
        "the point without a topic is counted on the feed",
        || async {
            let (_, s) = support::get_json(&server.http("/api/topics/$sys.feeds.plain")).await;
            s["data"]["errors"].as_u64() == Some(1) && s["data"]["updates"].as_u64() == Some(1)
        },
    )
    .await;
}
