//! The HTTP surface (docs/protocol.md, "HTTP"): `/ws`, `/sse`, `/api/*`, `/metrics`, `/healthz` and the
//! embedded web assets, as one axum [`Router`] that carries its own state.
//!
//! Handlers only translate HTTP into hub and session calls; errors that reach a
//! client are [`ApiError`], logged in detail and answered briefly.

mod api;
mod assets;
mod bulk;
mod extract;
mod forwarded;
mod listener;
mod params;
mod sse;
mod tls;

pub(crate) use listener::serve;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::json;
use tower_http::compression::CompressionLayer;

use crate::auth;
use crate::protocol;
use crate::state::{ApiError, AppState};
use crate::ws;
use params::Params;

/// Builds the router over `shared`, usable inside any host `Router<S>`.
///
/// Every route but the web pages names the query parameters it takes
/// ([`Params`]); any other is a 400 before its handler runs.
pub(crate) fn router<S: Clone + Send + Sync + 'static>(shared: Arc<AppState>) -> Router<S> {
    let guarded = Router::new()
        .route("/ws", Params::guarded("GET /ws", &[]).on(get(ws::upgrade)))
        .route(
            "/sse",
            Params::guarded("GET /sse", protocol::SUBSCRIBE_FIELDS).on(get(sse::stream)),
        )
        .route(
            "/api/topics",
            Params::guarded("GET /api/topics", &["pattern"]).on(get(api::list_topics)),
        )
        .route(
            "/api/topics/{topic}",
            Params::guarded("GET /api/topics/{topic}", &[]).on(get(api::get_topic)),
        )
        .route(
            "/api/topics/{topic}/history",
            Params::guarded("GET /api/topics/{topic}/history", &["limit"])
                .on(get(api::topic_history)),
        )
        .route(
            "/api/feeds",
            Params::guarded("GET /api/feeds", &[]).on(get(api::list_feeds)),
        )
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            require_token,
        ))
        .layer(middleware::from_fn_with_state(shared.clone(), allow_origin));
    // Only the web assets are compressed: `/ws` must stay an untouched upgrade,
    // and API answers are small. Pages and assets take any query (see `params`).
    let web = Router::new()
        .route("/", get(assets::home))
        .route("/auto", get(assets::index))
        .route("/d/{name}", get(assets::board))
        .route("/{*path}", get(assets::file))
        .layer(CompressionLayer::new().gzip(true));
    Router::new()
        .merge(guarded)
        .route(
            "/api/publish",
            Params::publishing("POST /api/publish").on(post(bulk::publish_many)),
        )
        .route(
            "/api/publish/{topic}",
            Params::publishing("POST /api/publish/{topic}").on(post(api::publish)),
        )
        .route(
            "/api/topics/{topic}",
            Params::publishing("DELETE /api/topics/{topic}").on(delete(api::delete_topic)),
        )
        .route(
            "/healthz",
            Params::open("GET /healthz", &[]).on(get(healthz)),
        )
        .route(
            "/metrics",
            Params::open("GET /metrics", &[]).on(get(api::metrics)),
        )
        .merge(web)
        // Outermost: every route sees the client's address, never a trusted
        // proxy's (`forwarded`).
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            forwarded::client,
        ))
        .with_state(shared)
}

/// `200 ok` when ready; a cluster node that does not know the cluster's epoch
/// yet (it hands out no WebSocket until then) answers 503 with the reason.
/// A history store that cannot commit (a full disk) answers
/// `200 degraded: history store: <reason>`: still 200, because the node serves
/// every client and keeps every update in memory, and pulling it from a load
/// balancer would only move its clients; the text is for monitoring.
async fn healthz(State(shared): State<Arc<AppState>>) -> Response {
    match &shared.cluster {
        Some(cluster) if !cluster.epoch_known() => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "starting", "reason": ws::NOT_READY})),
        )
            .into_response(),
        _ => match shared.hub.store_problem() {
            Some(reason) => format!("degraded: history store: {reason}").into_response(),
            None => "ok".into_response(),
        },
    }
}

/// The token a request presents: `Authorization: Bearer`, else `?token=`
/// (browsers cannot set headers on a WebSocket).
pub(crate) fn presented_token(req: &Request) -> Option<String> {
    if let Some(t) = auth::bearer_of(req.headers()) {
        return Some(t.to_string());
    }
    let query = req.uri().query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

/// `server.token` and `[[access]]` guard `/ws` and `/api` (except publishing,
/// which has its own token): 401 without a known token, before any upgrade.
/// The request carries the token's [`auth::Grant`] on to the handler.
async fn require_token(
    State(shared): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let presented = presented_token(&req);
    let grant = match shared.settings().access.grant_for(presented.as_deref()) {
        Ok(grant) => grant,
        Err(refusal) => {
            shared.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
            return ApiError::Unauthorized(refusal.to_string()).into_response();
        }
    };
    req.extensions_mut().insert(grant);
    next.run(req).await
}

/// Lets pages of other origins read `/api` answers (a dashboard embedded with
/// `<ticker-dashboard>` fetches history and feed health): an `Origin` that
/// `server.allowed_origins` admits (any, when unset) is echoed in
/// `Access-Control-Allow-Origin`. The token still guards every answer; no
/// cookies are involved, so no credentials are allowed.
async fn allow_origin(State(shared): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let mut resp = next.run(req).await;
    if let Some(origin) = origin {
        let allowed = shared
            .settings()
            .allowed_origins
            .as_deref()
            .is_none_or(|list| ws::origin_allowed(list, origin.as_bytes()));
        if allowed
            && !resp
                .headers()
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        {
            let headers = resp.headers_mut();
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.append(header::VARY, HeaderValue::from_static("origin"));
        }
    }
    resp
}
