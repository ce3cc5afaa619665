//! `POST /api/publish`: many updates in one request (see [`crate::publish`]).
//!
//! The same gate as `POST /api/publish/{topic}`: the publish token (404 unset,
//! 401 without, 403 wrong), the body read within `max_frame_bytes` (413) and
//! `body_timeout` (408), 400 for a body that is not a non-empty JSON array.
//! Then 200 with one result per item, in order.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;

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
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("body is not JSON: {e}")))?;
    let items = publish::parse_items(value).map_err(ApiError::BadRequest)?;
    let results = publish::publish_all(&shared.hub, items, |_| true).await;
    Ok(Json(results).into_response())
}
