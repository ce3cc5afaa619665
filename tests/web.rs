//! The embedded web assets over real HTTP: the dashboard's title and its
//! `enabled` switch, `tickerd.js` (and its typings) for cross-origin
//! embedding, gzip and ETags.

mod support;

use support::Server;

async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// The dashboard is served at `/` with `[dashboard] title` substituted (HTML-escaped).
#[tokio::test]
async fn dashboard_has_the_configured_title() {
    let server = Server::start(
        "[server]\nlisten = \"127.0.0.1:0\"\n[dashboard]\ntitle = \"Prices & <Co>\"\n",
    )
    .await;
    let r = get(&server.http("/"), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let body = r.text().await.unwrap();
    assert!(
        body.contains("<title>Prices &amp; &lt;Co&gt;</title>"),
        "{body}"
    );
    assert!(!body.contains("{{title}}"));
}

/// `enabled = false` serves no dashboard (404 at `/` and `/index.html`), while
/// `tickerd.js` stays available for embedding.
#[tokio::test]
async fn disabled_dashboard_is_not_served() {
    let server =
        Server::start("[server]\nlisten = \"127.0.0.1:0\"\n[dashboard]\nenabled = false\n").await;
    assert_eq!(get(&server.http("/"), &[]).await.status(), 404);
    assert_eq!(get(&server.http("/index.html"), &[]).await.status(), 404);
    assert_eq!(get(&server.http("/tickerd.js"), &[]).await.status(), 200);
}

/// `tickerd.js` loads cross-origin as a module: JavaScript type and `Access-Control-Allow-Origin: *`.
#[tokio::test]
async fn tickerd_js_is_embeddable_from_any_origin() {
    let server = Server::start(support::EMPTY).await;
    let r = get(
        &server.http("/tickerd.js"),
        &[("origin", "http://example.test")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("javascript"));
    assert!(r.text().await.unwrap().contains("customElements.define"));
}

/// `tickerd.d.ts`, the typings of `tickerd.js`, is served next to it as
/// TypeScript (not the MPEG stream `.ts` would guess), for any origin.
#[tokio::test]
async fn tickerd_typings_are_served() {
    let server = Server::start(support::EMPTY).await;
    let r = get(
        &server.http("/tickerd.d.ts"),
        &[("origin", "http://example.test")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert_eq!(
        r.headers()["content-type"],
        "application/typescript; charset=utf-8"
    );
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("export declare class TickerClient"));
}

/// Assets are gzipped when the client accepts it (with `Vary`), not otherwise,
/// and an ETag revalidates to 304 for either encoding.
#[tokio::test]
async fn assets_are_gzipped_and_revalidate() {
    let server = Server::start(support::EMPTY).await;
    let url = server.http("/dashboard.js");
    let plain = get(&url, &[]).await;
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(plain.headers()["cache-control"], "no-cache");
    let etag = plain.headers()["etag"].to_str().unwrap().to_string();
    let plain_len = plain.bytes().await.unwrap().len();

    let gz = get(&url, &[("accept-encoding", "gzip")]).await;
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert!(gz.headers()["vary"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase()
        .contains("accept-encoding"));
    let gz_len = gz.bytes().await.unwrap().len();
    assert!(gz_len < plain_len / 2, "gzip {gz_len} vs {plain_len}");

    let again = get(
        &url,
        &[("if-none-match", &etag), ("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(again.status(), 304);
    let other = get(&url, &[("if-none-match", "W/\"nope\"")]).await;
    assert_eq!(other.status(), 200);
}
