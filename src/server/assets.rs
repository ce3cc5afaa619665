//! The web assets of `web/`, embedded in the binary (or read from `web_dir`
//! during development), with content types and ETags; and the HTML pages: `/`
//! (the list of dashboards, or the automatic page when none is defined),
//! `/auto`, `/d/{name}` and its 404 page for a name no file defines.
//!
//! Caching: every asset is `Cache-Control: no-cache` with an ETag, so a browser
//! revalidates (a 304 costs one round trip) and never runs a stale `tickerd.js`
//! against a newer server; the file names carry no version to bust. The ETag is
//! weak (`W/"…"`) because the router gzips these responses: one ETag then names
//! both the identity and the gzip body, which only a weak validator may do.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use super::extract::Api;
use crate::config::Dashboard;
use crate::state::{ApiError, AppState};

#[derive(RustEmbed)]
#[folder = "web/"]
struct Assets;

/// `GET /`: the list of dashboards when any is defined, else the automatic page.
pub(super) async fn home(State(shared): State<Arc<AppState>>) -> Response {
    let settings = shared.settings();
    if settings.dashboards.is_empty() {
        return index(State(shared)).await;
    }
    if !settings.dashboard.enabled {
        return ApiError::NotFound("the dashboard is disabled").into_response();
    }
    let items = dashboard_items(&settings.dashboards, "d/");
    page(
        &shared,
        "list.html",
        &[("title", &settings.dashboard.title), ("items", &items)],
        &["items"],
    )
    .await
}

/// The `<li>` of each dashboard for a page's list (HTML-escaped): its title
/// and path, linked by `href` `{prefix}NAME` (relative, so the links also work
/// when the router is nested under a path); "none" when there are none.
fn dashboard_items(dashboards: &BTreeMap<String, Dashboard>, prefix: &str) -> String {
    if dashboards.is_empty() {
        return "<li class=\"muted\">No dashboard is defined.</li>\n".to_string();
    }
    let mut items = String::new();
    for (name, d) in dashboards {
        items.push_str(&format!(
            "<li><a href=\"{prefix}{name}\" data-dashboard=\"{name}\"><strong>{title}</strong><span class=\"muted\">/d/{name} · {n} panels</span></a></li>\n",
            name = escape_html(name),
            title = escape_html(&d.title),
            n = d.panels.len(),
        ));
    }
    items
}

/// `GET /auto` (and `/` without dashboards): the automatic page of every topic.
pub(super) async fn index(State(shared): State<Arc<AppState>>) -> Response {
    let title = shared.settings().dashboard.title.clone();
    page(&shared, "index.html", &[("title", &title)], &[]).await
}

/// `GET /d/{name}`: one dashboard; for a name no file defines, a 404 page that
/// says so and lists the dashboards there are (JSON only for a client that
/// asks for it with `Accept: application/json`).
pub(super) async fn board(
    State(shared): State<Arc<AppState>>,
    Api(Path(name)): Api<Path<String>>,
    headers: HeaderMap,
) -> Response {
    let settings = shared.settings();
    let Some(d) = settings.dashboards.get(&name) else {
        if !settings.dashboard.enabled {
            return ApiError::NotFound("the dashboard is disabled").into_response();
        }
        if wants_json(&headers) {
            return ApiError::NotFound("no such dashboard").into_response();
        }
        // Links relative to `/d/`: `NAME` is a sibling, `../` the start page.
        let items = dashboard_items(&settings.dashboards, "");
        let mut resp = page(
            &shared,
            "missing.html",
            &[
                ("title", &settings.dashboard.title),
                ("name", &name),
                ("items", &items),
            ],
            &["items"],
        )
        .await;
        *resp.status_mut() = StatusCode::NOT_FOUND;
        return resp;
    };
    page(
        &shared,
        "board.html",
        &[("title", &d.title), ("name", &name)],
        &[],
    )
    .await
}

/// True when the client asks for JSON (`Accept: application/json`) and not for
/// HTML: a browser's `Accept` names `text/html` first and gets the page.
fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"))
}

/// An HTML template of `web/` with `{{key}}`s replaced (HTML-escaped, except
/// the keys in `raw`, which the caller escaped); 404 while the dashboard is
/// disabled.
async fn page(shared: &AppState, file: &str, vars: &[(&str, &str)], raw: &[&str]) -> Response {
    if !shared.settings().dashboard.enabled {
        return ApiError::NotFound("the dashboard is disabled").into_response();
    }
    let Some((bytes, _)) = load(shared, file).await else {
        return ApiError::NotFound("page template is missing").into_response();
    };
    let mut html = String::from_utf8_lossy(&bytes).into_owned();
    for (key, value) in vars {
        let value = if raw.contains(key) {
            (*value).to_string()
        } else {
            escape_html(value)
        };
        html = html.replace(&format!("{{{{{key}}}}}"), &value);
    }
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response()
}

pub(super) async fn file(
    State(shared): State<Arc<AppState>>,
    Api(Path(path)): Api<Path<String>>,
    headers: HeaderMap,
) -> Response {
    if path == "index.html" {
        return index(State(shared)).await;
    }
    if ["board.html", "list.html", "missing.html"].contains(&path.as_str()) {
        return ApiError::NotFound("not found").into_response();
    }
    let Some((bytes, etag)) = load(&shared, &path).await else {
        return ApiError::NotFound("not found").into_response();
    };
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| etag_matches(v, &etag))
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    // `.ts` would guess MPEG transport streams; `tickerd.d.ts` is TypeScript.
    let mime = if path.ends_with(".ts") {
        "application/typescript; charset=utf-8".to_string()
    } else {
        mime_guess::from_path(&path)
            .first_or_octet_stream()
            .as_ref()
            .to_string()
    };
    let mut resp = (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "no-cache".to_string()),
        ],
        bytes.into_owned(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    if path.ends_with(".js") || path.ends_with(".d.ts") {
        resp.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    resp
}

/// The asset's bytes and ETag, from `web_dir` when set, else embedded.
async fn load(shared: &AppState, path: &str) -> Option<(Cow<'static, [u8]>, String)> {
    if path.split('/').any(|seg| seg == ".." || seg.is_empty()) {
        return None;
    }
    if let Some(dir) = &shared.settings().web_dir {
        let bytes = tokio::fs::read(dir.join(path)).await.ok()?;
        let etag = format!(
            "W/\"{:x}-{}\"",
            bytes.len(),
            bytes
                .iter()
                .fold(0u32, |h, b| h.rotate_left(5) ^ u32::from(*b))
        );
        return Some((Cow::Owned(bytes), etag));
    }
    let file = Assets::get(path)?;
    let hash = file.metadata.sha256_hash();
    let etag = format!(
        "W/\"{}\"",
        hash.iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    Some((file.data, etag))
}

/// `If-None-Match` matches `etag` by weak comparison (RFC 9110 §13.1.2): a list
/// of tags, `W/` ignored on both sides, or `*`.
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let ours = opaque(etag);
    if_none_match
        .split(',')
        .any(|t| t.trim() == "*" || opaque(t) == ours)
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
