//! `/api/*` and `/metrics`.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};

use super::extract::Api;
use crate::auth::{self, Grant};
use crate::hub::PublishError;
use crate::protocol::TopicInfo;
use crate::publish;
use crate::state::{ApiError, AppState, Settings};
use crate::topic;

/// `GET /api/topics[?pattern=P]`: the topics this request's token may read
/// (only those `P` matches, when given; 400 for a bad pattern). With a
/// pattern each row also carries the topic's latest value as `data`, so a
/// script reads what it asked for in one request; the plain listing (every
/// topic, possibly many and large) stays rows only.
pub(super) async fn list_topics(
    State(shared): State<Arc<AppState>>,
    Extension(grant): Extension<Grant>,
    Api(Query(query)): Api<Query<TopicsQuery>>,
) -> Response {
    let pattern = match query.pattern.as_deref().map(topic::Pattern::parse) {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => return ApiError::BadRequest(format!("pattern {e}")).into_response(),
    };
    // Listing every topic grows with the topic count: within the server's
    // budget for heavy work (see `hub::heavy`).
    let hub = shared.hub.clone();
    hub.offload(move |hub| {
        let rows = hub
            .topics_where(|t| grant.may_read(t) && pattern.as_ref().is_none_or(|p| p.matches(t)));
        if pattern.is_none() {
            return Json(rows).into_response();
        }
        let rows: Vec<ValueRow> = rows
            .into_iter()
            .map(|mut info| {
                // `seq`, `ts` and `data` of one update, even if another came
                // since the row was read.
                let data = match hub.latest(&info.topic) {
                    Some(update) => {
                        info.seq = update.seq();
                        info.ts = update.ts();
                        update.data().clone()
                    }
                    None => serde_json::Value::Null,
                };
                ValueRow { info, data }
            })
            .collect();
        Json(rows).into_response()
    })
    .await
}

/// The query of `GET /api/topics`.
#[derive(serde::Deserialize)]
pub(super) struct TopicsQuery {
    pattern: Option<String>,
}

/// A row of `GET /api/topics?pattern=P`: the topic's row and its latest value
/// (`null` before its first update).
#[derive(serde::Serialize)]
struct ValueRow {
    #[serde(flatten)]
    info: TopicInfo,
    data: serde_json::Value,
}

/// `GET /api/topics/{topic}`: 403 outside the grant (whether or not the topic
/// exists, so the answer says nothing about it), 404 when it has no update, 400
/// for a pattern (`stocks.*`), with a pointer to `?pattern=`.
pub(super) async fn get_topic(
    State(shared): State<Arc<AppState>>,
    Extension(grant): Extension<Grant>,
    Api(Path(name)): Api<Path<String>>,
) -> Response {
    if name.contains(['*', '>']) {
        // The hint is a URL to copy: a raw `>` in it is refused by curl and
        // HTTP servers (400 before tickerd sees it), so it is written `%3E`.
        let query = name.replace('>', "%3E");
        return ApiError::BadRequest(format!(
            "`{name}` is a pattern; /api/topics/{{topic}} takes one topic name. \
             List the topics a pattern matches with GET /api/topics?pattern={query}"
        ))
        .into_response();
    }
    if !grant.may_read(&name) {
        return ApiError::Forbidden("this token may not read that topic").into_response();
    }
    match shared.hub.latest_frame(&name) {
        Some(frame) => ([(header::CONTENT_TYPE, "application/json")], frame).into_response(),
        None => ApiError::NotFound("no such topic").into_response(),
    }
}

/// `?limit=` of the history route, as given (parsed by [`history_limit`]).
#[derive(Debug, serde::Deserialize)]
pub(super) struct HistoryQuery {
    limit: Option<String>,
}

/// Most updates one history answer holds, and the default `limit`.
const MAX_HISTORY_LIMIT: usize = 10_000;

/// `?limit=`: a whole number, capped at [`MAX_HISTORY_LIMIT`] (the default).
fn history_limit(limit: Option<&str>) -> Result<usize, ApiError> {
    let Some(limit) = limit else {
        return Ok(MAX_HISTORY_LIMIT);
    };
    match limit.parse::<usize>() {
        Ok(n) => Ok(n.min(MAX_HISTORY_LIMIT)),
        Err(_) => Err(ApiError::BadRequest(format!(
            "`limit` must be a whole number of updates, e.g. limit=100 \
             (default and most: {MAX_HISTORY_LIMIT}), not `{limit}`"
        ))),
    }
}

/// `GET /api/topics/{topic}/history?limit=N`: the topic's last `N` retained
/// updates (default and most: [`MAX_HISTORY_LIMIT`], within what
/// `[history] size` keeps), oldest first, each as on the wire (with `seq` and
/// `ts`). 400 for a `limit` that is not a whole number, 403 outside the
/// grant, 404 when the topic has no update.
pub(super) async fn topic_history(
    State(shared): State<Arc<AppState>>,
    Extension(grant): Extension<Grant>,
    Api(Path(name)): Api<Path<String>>,
    Api(Query(q)): Api<Query<HistoryQuery>>,
) -> Response {
    let limit = match history_limit(q.limit.as_deref()) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    if !grant.may_read(&name) {
        return ApiError::Forbidden("this token may not read that topic").into_response();
    }
    match shared.hub.history(&name, limit) {
        Some(frames) => {
            let mut body =
                String::with_capacity(frames.iter().map(|f| f.len() + 1).sum::<usize>() + 2);
            body.push('[');
            for (i, f) in frames.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(f);
            }
            body.push(']');
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        None => ApiError::NotFound("no such topic").into_response(),
    }
}

/// `GET /api/feeds`: needs read access to `$sys.feeds`, which carries the same.
pub(super) async fn list_feeds(
    State(shared): State<Arc<AppState>>,
    Extension(grant): Extension<Grant>,
) -> Response {
    if !grant.may_read(crate::feeds::FEEDS_TOPIC) {
        return ApiError::Forbidden("this token may not read $sys.feeds").into_response();
    }
    Json(shared.feeds.statuses().await).into_response()
}

/// The publish token check of the routes that change topics: 404 unless
/// `publish_token` is set, 401 without a bearer token, 403 with a wrong one.
pub(super) fn check_publish_token(
    settings: &Settings,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let Some(expected) = &settings.publish_token else {
        return Err(ApiError::NotFound(
            "publishing is not enabled (set server.publish_token)",
        ));
    };
    let presented = auth::bearer_of(headers).ok_or_else(|| {
        ApiError::Unauthorized("Authorization: Bearer <publish_token> is required".into())
    })?;
    if !auth::token_matches(presented, expected) {
        return Err(ApiError::Forbidden("wrong publish token"));
    }
    Ok(())
}

/// `DELETE /api/topics/{topic}`: the publish token's checks, then 204 when the
/// topic was deleted (its subscribers get `gone`), 404 when there is none, 400
/// in cluster mode (topics there live in the cluster's stream).
pub(super) async fn delete_topic(
    State(shared): State<Arc<AppState>>,
    Api(Path(name)): Api<Path<String>>,
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
/// bearer token, 403 with a wrong one; 413 past `max_frame_bytes`; 408 when the
/// body takes longer than `body_timeout`; 400 for a bad topic or a body that is
/// not JSON; 507 for a new topic past `max_topics`.
///
/// Everything the headers can decide is decided before any of the body is
/// read; the body is then read with a cap (a `Content-Length` over it is
/// refused at once, a body that grows past it when it is reached) and a
/// deadline.
pub(super) async fn publish(
    State(shared): State<Arc<AppState>>,
    Api(Path(name)): Api<Path<String>>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let settings = shared.settings();
    check_publish_token(&settings, headers)?;
    publish::check_topic(&name).map_err(ApiError::BadRequest)?;
    let body = read_body(headers, body, &settings.limits).await?;
    // Kept as text, never a tree (see `publish::compact_value`); the body is
    // dropped before the update's frame is built from the text.
    let json = publish::compact_value(&body).map_err(ApiError::BadRequest)?;
    drop(body);
    let published = shared
        .hub
        .publish_json_and_wait(&name, &json)
        .await
        .map_err(|e| match e {
            PublishError::Cluster { .. } => ApiError::Unavailable(publish::NOT_TAKEN),
            e @ PublishError::TooManyTopics { .. } => ApiError::Full(e.to_string()),
            PublishError::NotStored(_) => ApiError::Unavailable(publish::NOT_COMMITTED),
            e => ApiError::BadRequest(e.to_string()),
        })?;
    Ok((
        StatusCode::OK,
        Json(serde_json::json!({"topic": name, "seq": published.seq, "ts": published.ts})),
    )
        .into_response())
}

/// Reads a request body of at most `limits.max_frame_bytes` within
/// `limits.body_timeout`.
pub(super) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limits: &crate::config::LimitsConfig,
) -> Result<Bytes, ApiError> {
    read_body_within(headers, body, limits.max_frame_bytes, limits).await
}

/// Reads a request body of at most `max` bytes within `limits.body_timeout`:
/// a `Content-Length` over `max` is refused before any of the body is read,
/// a body that grows past it once it does (413).
pub(super) async fn read_body_within(
    headers: &HeaderMap,
    body: Body,
    max: usize,
    limits: &crate::config::LimitsConfig,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(ApiError::TooLarge(max));
    }
    // Into one buffer of the declared size as it arrives: collecting the
    // chunks and joining them after held the body twice.
    let read = async {
        let mut limited = Limited::new(body, max);
        let mut out = Vec::with_capacity(declared.map_or(0, |n| n as usize));
        while let Some(frame) = limited.frame().await {
            if let Ok(data) = frame?.into_data() {
                out.extend_from_slice(&data);
            }
        }
        Ok::<_, axum::BoxError>(Bytes::from(out))
    };
    match tokio::time::timeout(limits.body_timeout, read).await {
        Err(_) => Err(ApiError::Timeout("the request body did not arrive in time")),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(ApiError::TooLarge(max)),
        Ok(Err(e)) => Err(ApiError::BadRequest(format!("cannot read the body: {e}"))),
    }
}

pub(super) async fn metrics(State(shared): State<Arc<AppState>>) -> Response {
    let mut out = String::with_capacity(4096);
    shared.metrics.render(&mut out);
    crate::feeds::render_metrics(&shared.feeds.statuses().await, &mut out);
    if let Some(cluster) = &shared.cluster {
        cluster.render_metrics(&mut out);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
