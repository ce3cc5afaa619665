//! `POST /api/publish`: many updates in one request (see [`crate::publish`]).
//!
//! The same gate as `POST /api/publish/{topic}`: the publish token (404 unset,
//! 401 without, 403 wrong), the body read within `max_frame_bytes` (413) and
//! `body_timeout` (408), 400 for a body that is not a non-empty JSON array.
//! Then 200 with one result per item, in order.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::api::{check_publish_token, read_body};
use super::ApiError;
use crate::publish;
use crate::state::AppState;

pub(super) async fn publish_many(
    State(shared): State<Arc<AppState>>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let settings = shared.settings();
    check_publish_token(&settings, &parts.headers)?;
    let body = read_body(&parts.headers, body, &settings.limits).await?;
    let items = publish::parse_items(&body).map_err(ApiError::BadRequest)?;
    // Each result is written into the answer as it comes: what a large body
    // costs is its own bytes, one item, and the answer's text.
    let mut answer = Vec::with_capacity(64);
    answer.push(b'[');
    publish::publish_all(
        &shared.hub,
        items,
        |_| true,
        |result| {
            if answer.len() > 1 {
                answer.push(b',');
            }
            // Writing a plain struct into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut answer, &result);
        },
    )
    .await;
    answer.push(b']');
    Ok(([(header::CONTENT_TYPE, "application/json")], answer).into_response())
}
