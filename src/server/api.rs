//! `/api/*` and `/metrics`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::ApiError;
use crate::auth::{self, Grant};
use crate::hub::PublishError;
use crate::ticker::{Settings, Shared};
use crate::topic;

/// `GET /api/topics`: the topics this request's token may read.
pub(super) async fn list_topics(
    State(shared): State<Arc<Shared>>,
    Extension(grant): Extension<Grant>,
) -> Response {
    let mut topics = shared.hub.topics();
    topics.retain(|t| grant.may_read(&t.topic));
    Json(topics).into_response()
}

/// `GET /api/topics/{topic}`: 403 outside the grant (whether or not the topic
/// exists, so the answer says nothing about it), 404 when it has no update.
pub(super) async fn get_topic(
    State(shared): State<Arc<Shared>>,
    Extension(grant): Extension<Grant>,
    Path(name): Path<String>,
) -> Response {
    if !grant.may_read(&name) {
        return ApiError::Forbidden("this token may not read that topic").into_response();
    }
    match shared.hub.snapshot(&name) {
        Some(frame) => ([(header::CONTENT_TYPE, "application/json")], frame).into_response(),
        None => ApiError::NotFound("no such topic").into_response(),
    }
}

/// `GET /api/feeds`: needs read access to `$sys.feeds`, which carries the same.
pub(super) async fn list_feeds(
    State(shared): State<Arc<Shared>>,
    Extension(grant): Extension<Grant>,
) -> Response {
    if !grant.may_read("$sys.feeds") {
        return ApiError::Forbidden("this token may not read $sys.feeds").into_response();
    }
    Json(shared.feeds.statuses().await).into_response()
}

/// The publish token check of the routes that change topics: 404 unless
/// `publish_token` is set, 401 without a bearer token, 403 with a wrong one.
fn check_publish_token(settings: &Settings, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &settings.publish_token else {
        return Err(ApiError::NotFound(
            "publishing is not enabled (set server.publish_token)",
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(auth::bearer)
        .ok_or(ApiError::Unauthorized(
            "Authorization: Bearer <publish_token> is required",
        ))?;
    if !auth::token_matches(presented, expected) {
        return Err(ApiError::Forbidden("wrong publish token"));
    }
    Ok(())
}

/// `DELETE /api/topics/{topic}`: the publish token's checks, then 204 when the
/// topic was deleted (its subscribers get `gone`), 404 when there is none, 400
/// in cluster mode (topics there live in the cluster's stream).
pub(super) async fn delete_topic(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_publish_token(&shared.settings(), &headers)?;
    if shared.cluster.is_some() {
        return Err(ApiError::BadRequest(
            "deleting topics is not supported in cluster mode".into(),
        ));
    }
    if shared.hub.delete_topic(&name) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound("no such topic"))
    }
}

/// `POST /api/publish/{topic}`: 404 unless `publish_token` is set; 401 without a
/// bearer token, 403 with a wrong one; 413 past `max_frame_bytes`; 400 for a bad
/// topic or a body that is not JSON.
pub(super) async fn publish(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let settings = shared.settings();
    check_publish_token(&settings, &headers)?;
    let max = settings.limits.max_frame_bytes;
    if body.len() > max {
        return Err(ApiError::TooLarge(max));
    }
    topic::validate_topic(&name).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if topic::is_system(&name) {
        return Err(ApiError::BadRequest(
            "topics starting with `$` are the server's own".into(),
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("body is not JSON: {e}")))?;
    let published = shared
        .hub
        .publish_and_wait(&name, &value)
        .await
        .map_err(|e| match e {
            PublishError::Cluster(_) => {
                ApiError::Unavailable("the cluster did not take the update")
            }
            PublishError::NotStored(_) => ApiError::Unavailable(
                "the update was published but the history store could not commit it",
            ),
            e => ApiError::BadRequest(e.to_string()),
        })?;
    Ok((
        StatusCode::OK,
        Json(serde_json::json!({"topic": name, "seq": published.seq, "ts": published.ts})),
    )
        .into_response())
}

pub(super) async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let mut out = String::with_capacity(4096);
    shared.metrics.render(&mut out);
    crate::feeds::render_metrics(&shared.feeds.statuses().await, &mut out);
    if let Some(cluster) = &shared.cluster {
        cluster.render_metrics(&mut out);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
