//! The web assets of `web/`, embedded in the binary (or read from `web_dir`
//! during development), with content types and ETags.
//!
//! Caching: every asset is `Cache-Control: no-cache` with an ETag, so a browser
//! revalidates (a 304 costs one round trip) and never runs a stale `tickerd.js`
//! against a newer server; the file names carry no version to bust. The ETag is
//! weak (`W/"…"`) because the router gzips these responses: one ETag then names
//! both the identity and the gzip body, which only a weak validator may do.

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use super::ApiError;
use crate::ticker::Shared;

#[derive(RustEmbed)]
#[folder = "web/"]
struct Assets;

pub(super) async fn index(State(shared): State<Arc<Shared>>) -> Response {
    let settings = shared.settings();
    if !settings.dashboard.enabled {
        return ApiError::NotFound("the dashboard is disabled").into_response();
    }
    let Some((bytes, _)) = load(&shared, "index.html").await else {
        return ApiError::NotFound("index.html is missing").into_response();
    };
    let html = String::from_utf8_lossy(&bytes)
        .replace("{{title}}", &escape_html(&settings.dashboard.title));
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
    State(shared): State<Arc<Shared>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    if path == "index.html" {
        return index(State(shared)).await;
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
    let mime = mime_guess::from_path(&path).first_or_octet_stream();
    let mut resp = (
        [
            (header::CONTENT_TYPE, mime.as_ref().to_string()),
            (header::CACHE_CONTROL, "no-cache".to_string()),
        ],
        bytes.into_owned(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    if path == "tickerd.js" {
        resp.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    resp
}

/// The asset's bytes and ETag, from `web_dir` when set, else embedded.
async fn load(shared: &Shared, path: &str) -> Option<(Cow<'static, [u8]>, String)> {
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
