//! One rule set for `/ws` and `/sse`: the same bad subscribe gets the same
//! words through both transports (an `error` frame on `/ws`, an HTTP error
//! with the JSON `/api` shape on `/sse`). The subscribe checks live in
//! `src/connection/subscribe.rs` (`Check`); the table below must hold a row
//! for each of them, so a check added there is run through both transports
//! here.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Value};
use support::sse::Sse;
use support::{Client, Server};

/// A token granted `a.>` only, and a limit of two patterns.
const CONFIG: &str = "[server]\nlisten = \"127.0.0.1:0\"\ntoken = \"root\"\n\
                      [limits]\nmax_subscriptions = 2\n\
                      [[access]]\ntoken = \"ro\"\npatterns = [\"a.>\"]\n";

/// One bad subscribe: what `/ws` sends, what `/sse` asks, the status `/sse`
/// answers with, and the `/ws` error code.
struct Row {
    /// A `Check` variant (its text is made once: [`Alike::Exact`]), or
    /// another refusal's name.
    name: &'static str,
    /// The `subscribe` request's fields besides `op` and `id`.
    ws: Value,
    /// The `/sse` query (without the token).
    sse: &'static str,
    status: u16,
    code: &'static str,
    alike: Alike,
}

/// How alike the two texts must be.
#[derive(Clone, Copy, Debug)]
enum Alike {
    /// The same text: a check of `connection`, made once for both.
    Exact,
    /// `/sse`'s text starts with `/ws`'s and adds the value it was given
    /// (a query parameter is text, a field is JSON).
    Prefix,
    /// An unknown name: each names it and the same nearest valid one, in
    /// its own words (a query parameter of `GET /sse`, a field of
    /// `subscribe`).
    Suggestion(&'static str, &'static str),
}

impl Alike {
    fn holds(self, ws: &str, sse: &str) -> bool {
        match self {
            Alike::Exact => ws == sse,
            Alike::Prefix => sse.starts_with(ws),
            Alike::Suggestion(name, nearest) => [ws, sse].iter().all(|m| {
                m.contains(&format!("`{name}`"))
                    && m.contains(&format!("did you mean `{nearest}`?"))
            }),
        }
    }
}

/// The subscribe refusals, one row per `Check` variant and one per refusal
/// made elsewhere (the request's fields, by `protocol` and `server::params`).
fn rows() -> Vec<Row> {
    vec![
        Row {
            name: "TooMany",
            ws: json!({"topics": ["a.x", "a.y", "a.z"]}),
            sse: "topics=a.x,a.y,a.z",
            status: 400,
            code: "too_many_subscriptions",
            alike: Alike::Exact,
        },
        Row {
            name: "Pattern",
            ws: json!({"topics": ["a..x"]}),
            sse: "topics=a..x",
            status: 400,
            code: "invalid_topic",
            alike: Alike::Exact,
        },
        Row {
            name: "Grant",
            ws: json!({"topics": ["b.*"]}),
            sse: "topics=b.*",
            status: 403,
            code: "forbidden",
            alike: Alike::Exact,
        },
        Row {
            name: "unknown field",
            ws: json!({"topics": ["a.x"], "maxrate": 2}),
            sse: "topics=a.x&maxrate=2",
            status: 400,
            code: "bad_request",
            alike: Alike::Suggestion("maxrate", "max_rate"),
        },
        Row {
            name: "bad max_rate",
            ws: json!({"topics": ["a.x"], "max_rate": -1}),
            sse: "topics=a.x&max_rate=-1",
            status: 400,
            code: "bad_request",
            alike: Alike::Prefix,
        },
    ]
}

/// The variants of `enum Check` in `src/connection/subscribe.rs`.
fn checks() -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/connection/subscribe.rs");
    let text = std::fs::read_to_string(&path).unwrap();
    let body = text
        .split_once("pub(crate) enum Check {")
        .expect("subscribe.rs declares `enum Check`")
        .1
        .split_once("\n}")
        .unwrap()
        .0;
    body.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("//") && !l.is_empty())
        .map(|l| l.trim_end_matches(',').to_string())
        .collect()
}

/// The error text a `/ws` subscribe gets for `fields`, with its code.
async fn ws_refusal(c: &mut Client, fields: &Value) -> (String, String) {
    let mut request = fields.clone();
    request["op"] = json!("subscribe");
    request["id"] = json!("r");
    c.send(request).await;
    let e = c.recv_until(|v| v["id"] == "r").await;
    assert_eq!(e["type"], "error", "{e}");
    let code = e["code"].as_str().unwrap().to_string();
    (code, e["message"].as_str().unwrap().to_string())
}

/// Every subscribe check `connection` makes (and each refusal of a
/// subscribe's fields) refuses the same request through `/ws` and `/sse`
/// with the same text; the table has a row for every `Check`.
#[tokio::test]
async fn every_refusal_reads_the_same_through_both_transports() {
    let rows = rows();
    let named: BTreeSet<String> = rows.iter().map(|r| r.name.to_string()).collect();
    let missing: Vec<_> = checks().difference(&named).cloned().collect();
    assert!(
        missing.is_empty(),
        "tests/refusals.rs has no row for Check::{missing:?}: add one that runs it through /ws and /sse"
    );
    let s = Server::start(CONFIG).await;
    let mut c = Client::connect(&format!("{}?token=ro", s.ws_url())).await;
    for row in &rows {
        let (code, ws_msg) = ws_refusal(&mut c, &row.ws).await;
        assert_eq!(code, row.code, "{}: /ws says `{ws_msg}`", row.name);
        let url = s.http(&format!("/sse?{}&token=ro", row.sse));
        let (status, body) = Sse::open(&url, &[]).await.err().expect("refused");
        assert_eq!(status, row.status, "{}: {body}", row.name);
        let error: Value = serde_json::from_str(&body).unwrap();
        let sse_msg = error["error"].as_str().unwrap();
        assert!(
            row.alike.holds(&ws_msg, sse_msg),
            "{} ({:?}): /sse says `{sse_msg}`, /ws `{ws_msg}`",
            row.name,
            row.alike
        );
    }
}

/// A `since` for another epoch is not resumed, and both transports' acks say
/// so in the same words (`resume.partial` and `resume.reason`).
#[tokio::test]
async fn a_foreign_epoch_is_refused_alike() {
    let s = Server::start(CONFIG).await;
    s.ticker.hub().publish("a.x", &json!(1)).unwrap();
    let mut c = Client::connect(&format!("{}?token=ro", s.ws_url())).await;
    let request = json!({"op": "subscribe", "topics": ["a.x"], "since": {"a.x": 1},
                         "epoch": "OTHER", "id": "r"});
    c.send(request).await;
    let ws_ack = c.recv_until(|v| v["id"] == "r").await;
    assert_eq!(ws_ack["type"], "ack", "{ws_ack}");
    assert!(ws_ack["resume"]["reason"].is_string(), "{ws_ack}");
    let url = s.http("/sse?topics=a.x&since=a.x:1&epoch=OTHER&token=ro");
    let mut sse = Sse::open(&url, &[]).await.unwrap();
    assert_eq!(sse.frame().await.1["type"], "hello");
    let sse_ack = sse.frame().await.1;
    assert_eq!(sse_ack["type"], "ack", "{sse_ack}");
    assert_eq!(sse_ack["resume"], ws_ack["resume"]);
}
