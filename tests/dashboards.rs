//! Dashboards as config over real HTTP, WebSocket and child processes: the
//! routes (`/`, `/auto`, `/d/{name}` and its 404 page), `tickerd check` on dashboard files,
//! `$sys.dashboards` after start and after each reload, an invalid edit that
//! keeps the old dashboards, and the history route charts backfill from.

mod support;

use std::path::Path;

use serde_json::{json, Value};
use support::{eventually, get_json, within, write_atomic, Server, BIN};

const OPS: &str = r#"title = "Ops wall"
columns = 3

[[panel]]
kind = "value"
topic = "host.metrics"
field = "cpu_pct"
label = "CPU"
format = "percent"
thresholds = [{ above = 80, level = "warn" }]

[[panel]]
kind = "chart"
topic = "host.metrics"
fields = ["load1", "load5"]
window = "15m"
span = 2
"#;

/// A server whose config dir holds `dashboards/ops.toml`.
async fn with_ops() -> Server {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dashboards")).unwrap();
    std::fs::write(dir.path().join("dashboards/ops.toml"), OPS).unwrap();
    Server::start_in(dir, support::EMPTY).await
}

async fn get_text(url: &str) -> (u16, String) {
    within(async {
        let r = reqwest::get(url).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
    .await
}

/// The latest `$sys.dashboards` value, read through the HTTP API.
async fn dashboards(server: &Server) -> Value {
    let (status, v) = get_json(&server.http("/api/topics/$sys.dashboards")).await;
    assert_eq!(status, 200, "{v}");
    v["data"].clone()
}

/// With a dashboard defined, `/` lists it (a link to `d/ops` with its title),
/// `/d/ops` serves it, an unknown name is 404, and the automatic page moves to
/// `/auto`.
#[tokio::test]
async fn routes_list_show_and_refuse_unknown_dashboards() {
    let server = with_ops().await;
    let (status, list) = get_text(&server.http("/")).await;
    assert_eq!(status, 200);
    assert!(
        list.contains(r#"href="d/ops""#) && list.contains("Ops wall"),
        "{list}"
    );
    assert!(
        !list.contains("dashboard.js"),
        "the list is not the automatic page"
    );
    let (status, page) = get_text(&server.http("/d/ops")).await;
    assert_eq!(status, 200);
    assert!(page.contains("<title>Ops wall</title>"), "{page}");
    assert!(page.contains(r#"data-name="ops""#), "{page}");
    assert_eq!(get_text(&server.http("/d/nope")).await.0, 404);
    let (status, auto) = get_text(&server.http("/auto")).await;
    assert_eq!(status, 200);
    assert!(auto.contains("dashboard.js"), "{auto}");
    // The page templates are not served raw.
    assert_eq!(get_text(&server.http("/board.html")).await.0, 404);
}

/// GET `url` with `Accept: accept`: status, content type and body.
async fn get_accepting(url: &str, accept: &str) -> (u16, String, String) {
    within(async {
        let r = reqwest::Client::new()
            .get(url)
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        let kind = r.headers()["content-type"].to_str().unwrap().to_string();
        (r.status().as_u16(), kind, r.text().await.unwrap())
    })
    .await
}

/// The text a reader sees of `html`: tags dropped, whitespace collapsed.
fn visible_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An unknown dashboard (`/d/nope`) opened in a browser is a 404 HTML page in
/// the site's style that says "no dashboard nope", links to the start page and
/// lists the dashboards there are (title, link to /d/NAME), the name escaped;
/// a client that asks for JSON still gets the JSON error.
#[tokio::test]
async fn an_unknown_dashboard_is_a_page_that_lists_the_others() {
    let server = with_ops().await;
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let (status, kind, page) = get_accepting(&server.http("/d/nope"), browser).await;
    assert_eq!(status, 404, "{page}");
    assert!(kind.starts_with("text/html"), "{kind}");
    assert!(
        visible_text(&page).contains("There is no dashboard nope"),
        "{page}"
    );
    assert!(page.contains(r#"href="../style.css""#), "{page}");
    assert!(
        page.contains(r#"href="../""#),
        "no link to the start page: {page}"
    );
    assert!(
        page.contains(r#"href="ops""#) && page.contains("Ops wall"),
        "the dashboards there are are listed: {page}"
    );
    let (_, _, page) = get_accepting(&server.http("/d/%3Cb%3E"), browser).await;
    assert!(
        page.contains("&lt;b&gt;") && !page.contains("<b>"),
        "{page}"
    );
    // `curl` (Accept: */*) reads the page too; JSON only when asked for.
    let (status, kind, _) = get_accepting(&server.http("/d/nope"), "*/*").await;
    assert_eq!((status, kind.starts_with("text/html")), (404, true));
    let (status, kind, body) = get_accepting(&server.http("/d/nope"), "application/json").await;
    assert_eq!(status, 404, "{body}");
    assert!(kind.starts_with("application/json"), "{kind}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(body["error"].is_string(), "{body}");
    // The template itself is not served raw.
    assert_eq!(
        get_accepting(&server.http("/missing.html"), browser)
            .await
            .0,
        404
    );
}

/// Without a dashboards directory, `/` stays the automatic page and the
/// published set is empty.
#[tokio::test]
async fn without_dashboards_the_automatic_page_stays_at_root() {
    let server = Server::start(support::EMPTY).await;
    let (status, page) = get_text(&server.http("/")).await;
    assert_eq!(status, 200);
    assert!(page.contains("dashboard.js"), "{page}");
    assert_eq!(dashboards(&server).await, json!({}));
}

/// `$sys.dashboards` carries each definition as the browser needs it (kind,
/// keys, the chart window in ms), and a reload that changes a file publishes
/// the new one to a subscribed client; adding a file adds its route.
#[tokio::test]
async fn reload_publishes_the_new_definition() {
    let server = with_ops().await;
    let d = dashboards(&server).await;
    assert_eq!(d["ops"]["title"], "Ops wall");
    assert_eq!(d["ops"]["columns"], 3);
    assert_eq!(d["ops"]["panels"][1]["window_ms"], 900_000);
    assert_eq!(d["ops"]["panels"][0]["thresholds"][0]["level"], "warn");

    let mut client = server.client().await;
    client.subscribe(&["$sys.dashboards"]).await;
    client.update_of("$sys.dashboards").await; // the snapshot
    let path = server.dir.path().join("dashboards/ops.toml");
    write_atomic(&path, OPS.replace("Ops wall", "Ops wall v2"));
    let u = client
        .recv_until(|v| {
            v["topic"] == "$sys.dashboards" && v["data"]["ops"]["title"] == "Ops wall v2"
        })
        .await;
    assert_eq!(u["data"]["ops"]["panels"].as_array().unwrap().len(), 2);

    write_atomic(
        &server.dir.path().join("dashboards/more.toml"),
        "title = \"More\"\n[[panel]]\nkind = \"text\"\ntext = \"hi\"\n",
    );
    client
        .recv_until(|v| v["topic"] == "$sys.dashboards" && v["data"]["more"]["title"] == "More")
        .await;
    assert_eq!(get_text(&server.http("/d/more")).await.0, 200);
}

/// An invalid edit of a dashboard refuses the whole reload: `$sys.config`
/// reports file, line and panel, and the old definition keeps being served.
#[tokio::test]
async fn invalid_edit_keeps_the_old_dashboard() {
    let server = with_ops().await;
    let mut client = server.client().await;
    client.subscribe(&["$sys.config"]).await;
    let path = server.dir.path().join("dashboards/ops.toml");
    write_atomic(
        &path,
        OPS.replace("Ops wall", "Broken")
            .replace("window = ", "windw = "),
    );
    let err = client
        .recv_until(|v| v["topic"] == "$sys.config" && v["data"]["ok"] == false)
        .await;
    let text = err["data"]["error"].as_str().unwrap();
    assert!(
        text.contains("ops.toml:16: dashboard \"ops\": panel #2: unknown key `windw`"),
        "{text}"
    );
    assert_eq!(dashboards(&server).await["ops"]["title"], "Ops wall");
    let (_, page) = get_text(&server.http("/d/ops")).await;
    assert!(page.contains("<title>Ops wall</title>"), "{page}");

    // Fixed: the reload goes through and the new title is published.
    write_atomic(&path, OPS.replace("Ops wall", "Fixed"));
    eventually("the fixed dashboard is published", || async {
        dashboards(&server).await["ops"]["title"] == "Fixed"
    })
    .await;
}

/// Runs `tickerd check -c PATH`: exit code and stdout.
async fn check(path: &Path) -> (Option<i32>, String) {
    let out = within(
        tokio::process::Command::new(BIN)
            .arg("check")
            .arg("-c")
            .arg(path)
            .output(),
    )
    .await
    .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `tickerd check` validates every dashboard file: exit 1 with file:line, the
/// dashboard, the panel index and what is wrong for each error; exit 0 once
/// they are fixed.
#[tokio::test]
async fn check_names_file_line_and_panel() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, support::EMPTY).unwrap();
    std::fs::create_dir(dir.path().join("dashboards")).unwrap();
    std::fs::write(dir.path().join("dashboards/ops.toml"), OPS).unwrap();
    let (code, text) = check(&config).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("ok (0 feeds, 0 disabled, 1 dashboards)"),
        "{text}"
    );

    std::fs::write(
        dir.path().join("dashboards/bad.toml"),
        "title = \"Bad\"\n\n[[panel]]\nkind = \"sparkline\"\ntopic = \"a\"\n\n[[panel]]\nkind = \"gauge\"\ntopic = \"host.metrics\"\nfield = \"cpu_pct\"\nmin = 10\nmax = 5\n",
    )
    .unwrap();
    let (code, text) = check(&config).await;
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(
            "dashboards/bad.toml:4: dashboard \"bad\": panel #1: unknown kind \"sparkline\""
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "dashboards/bad.toml:12: dashboard \"bad\": panel #2: `max` must be greater than `min`"
        ),
        "{text}"
    );
}

/// `GET /api/topics/{topic}/history?limit=N` answers the last N retained
/// updates oldest first, each with its seq; 404 for a topic with none.
#[tokio::test]
async fn history_route_returns_the_last_updates_oldest_first() {
    let server = Server::start(support::EMPTY).await;
    for i in 1..=5 {
        server
            .ticker
            .hub()
            .publish("t.x", &json!({ "v": i }))
            .unwrap();
    }
    let (status, list) = get_json(&server.http("/api/topics/t.x/history?limit=3")).await;
    assert_eq!(status, 200, "{list}");
    let seqs: Vec<u64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![3, 4, 5]);
    assert_eq!(list[2]["data"]["v"], 5);
    let (_, all) = get_json(&server.http("/api/topics/t.x/history")).await;
    assert_eq!(all.as_array().unwrap().len(), 5);
    assert_eq!(
        get_json(&server.http("/api/topics/t.y/history")).await.0,
        404
    );
}

/// `/api` answers carry `Access-Control-Allow-Origin` for an origin that
/// `allowed_origins` admits (an embedded dashboard reads history and feeds
/// from another site), and none for an origin it refuses.
#[tokio::test]
async fn api_answers_allow_admitted_origins_only() {
    let server = Server::start(
        "[server]\nlisten = \"127.0.0.1:0\"\nallowed_origins = [\"http://good.test\"]\n",
    )
    .await;
    server.ticker.hub().publish("t.x", &json!(1)).unwrap();
    let get = |origin: &'static str| {
        let url = server.http("/api/topics/t.x/history");
        async move {
            within(
                reqwest::Client::new()
                    .get(url)
                    .header("origin", origin)
                    .send(),
            )
            .await
            .unwrap()
        }
    };
    let ok = get("http://good.test").await;
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "http://good.test"
    );
    let bad = get("http://evil.test").await;
    assert_eq!(bad.status(), 200);
    assert!(bad.headers().get("access-control-allow-origin").is_none());
}

/// A feed's own `history` (here 40 updates, against `[history] size = 5`) is
/// what its topics keep and what the history route answers: enough for a
/// chart's window on load.
#[tokio::test]
async fn a_feeds_history_outlasts_the_global_size() {
    let server = Server::start(
        "[server]\nlisten = \"127.0.0.1:0\"\n[history]\nsize = 5\n\n[[feed]]\nname = \"fast\"\nkind = \"synthetic\"\ntopic = \"fast.{symbol}\"\nsymbols = [\"A\"]\ninterval = \"10ms\"\nhistory = 40\n",
    )
    .await;
    eventually("40 updates kept for fast.A", || async {
        let (status, list) = get_json(&server.http("/api/topics/fast.A/history")).await;
        status == 200 && list.as_array().is_some_and(|l| l.len() == 40)
    })
    .await;
    let (_, list) = get_json(&server.http("/api/topics/fast.A/history")).await;
    let seqs: Vec<u64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
}
