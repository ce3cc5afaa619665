//! The push feeds' routes: InfluxDB line protocol (`POST /api/v2/write`,
//! `POST /write`), Prometheus remote-write (`POST /api/v1/write`) and OTLP
//! metrics (`POST /v1/metrics`). The routes are always there; a write that no
//! running feed takes is answered 404 saying which feed would (see
//! `feeds::push`, where reloads change the running set).
//!
//! Every write goes the same way ([`take`]): the credential
//! (`auth::push_credential_of`: `Token`, `Bearer` or basic auth) checked
//! before the body is read, the body read within `[limits] max_push_bytes`
//! and `body_timeout`, decompressed within the same cap (gzip, or remote-
//! write's snappy), parsed and planned by the protocol's `ingest`, then
//! delivered whole or refused whole (`Batch::deliver`). Only the answer's
//! shape is each protocol's own ([`Shape`]), so its clients report errors
//! properly: InfluxDB's `{"code","message"}`, remote-write's plain text,
//! OTLP's `google.rpc.Status` (protobuf or JSON, as the request was).

use std::io::Read as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use prost::Message as _;
use serde_json::json;

use super::api::read_body_within;
use crate::auth;
use crate::feeds::push::{self, otlp_proto, Batch, Refused};
use crate::state::{ApiError, AppState};

/// How a protocol's clients expect to be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// InfluxDB: 204; errors as `{"code","message"}`.
    Influx,
    /// Prometheus remote-write: 204; errors as plain text.
    RemoteWrite,
    /// OTLP/HTTP: 200 with an empty `ExportMetricsServiceResponse`; errors as
    /// a `google.rpc.Status`, protobuf or JSON (`json`) as the request was.
    Otlp { json: bool },
}

/// A refused write: its status and what is wrong.
#[derive(Debug)]
struct Failure(StatusCode, String);

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::TooLarge(max) => Failure(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body is larger than {max} bytes ([limits] max_push_bytes); send \
                     smaller batches"
                ),
            ),
            ApiError::Timeout(m) => Failure(StatusCode::REQUEST_TIMEOUT, m.to_string()),
            ApiError::BadRequest(m) => Failure(StatusCode::BAD_REQUEST, m),
            other => {
                let response = other.into_response();
                Failure(response.status(), "the request was refused".into())
            }
        }
    }
}

impl From<Refused> for Failure {
    fn from(r: Refused) -> Self {
        let status = match &r {
            Refused::Invalid(_) => StatusCode::BAD_REQUEST,
            Refused::Forbidden(_) => StatusCode::FORBIDDEN,
            Refused::Full(_) => StatusCode::INSUFFICIENT_STORAGE,
            Refused::NoTaker(_) => StatusCode::NOT_FOUND,
        };
        Failure(status, r.to_string())
    }
}

impl Shape {
    /// The answer to a write that was taken.
    fn ok(self) -> Response {
        match self {
            Shape::Influx | Shape::RemoteWrite => StatusCode::NO_CONTENT.into_response(),
            Shape::Otlp { json: true } => {
                ([(header::CONTENT_TYPE, "application/json")], "{}").into_response()
            }
            Shape::Otlp { json: false } => (
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                Vec::new(),
            )
                .into_response(),
        }
    }

    /// The answer to a refused write, in the protocol's own shape.
    fn refuse(self, Failure(status, message): Failure) -> Response {
        tracing::debug!(%status, %message, "Push write refused.");
        match self {
            Shape::Influx => {
                let code = match status {
                    StatusCode::BAD_REQUEST => "invalid",
                    StatusCode::UNAUTHORIZED => "unauthorized",
                    StatusCode::FORBIDDEN => "forbidden",
                    StatusCode::NOT_FOUND => "not found",
                    StatusCode::PAYLOAD_TOO_LARGE => "request too large",
                    _ => "unavailable",
                };
                let body = json!({"code": code, "message": message});
                (status, axum::Json(body)).into_response()
            }
            Shape::RemoteWrite => (status, message).into_response(),
            Shape::Otlp { json } => {
                // The gRPC code of each status, as OTLP/HTTP maps them.
                let code = match status {
                    StatusCode::BAD_REQUEST => 3,
                    StatusCode::UNAUTHORIZED => 16,
                    StatusCode::FORBIDDEN => 7,
                    StatusCode::NOT_FOUND => 5,
                    StatusCode::REQUEST_TIMEOUT => 4,
                    _ => 8,
                };
                if json {
                    let body = json!({"code": code, "message": message});
                    (status, axum::Json(body)).into_response()
                } else {
                    let body = otlp_proto::Status { code, message }.encode_to_vec();
                    let ct = [(header::CONTENT_TYPE, "application/x-protobuf")];
                    (status, ct, body).into_response()
                }
            }
        }
    }
}

/// How a write's body is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Packing {
    /// `Content-Encoding: gzip` when the header says so, else none.
    GzipIfSaid,
    /// Snappy's block format, always (remote-write).
    Snappy,
}

/// One write, the same way for every protocol: the credential, the body
/// (capped, decompressed within the cap), `plan` (the protocol's parse),
/// then the whole batch delivered or refused. The answer is `shape`'s.
async fn take(
    shared: Arc<AppState>,
    request: Request,
    shape: Shape,
    packing: Packing,
    plan: impl FnOnce(&push::Inlets, &str, &[u8]) -> Result<Batch, Refused>,
) -> Response {
    let (parts, body) = request.into_parts();
    let query = parts.uri.query().unwrap_or("").to_string();
    match take_inner(&shared, &parts.headers, body, packing, &query, plan).await {
        Ok(()) => shape.ok(),
        Err(failure) => shape.refuse(failure),
    }
}

async fn take_inner(
    shared: &AppState,
    headers: &HeaderMap,
    body: Body,
    packing: Packing,
    query: &str,
    plan: impl FnOnce(&push::Inlets, &str, &[u8]) -> Result<Batch, Refused>,
) -> Result<(), Failure> {
    let settings = shared.settings();
    let presented = auth::push_credential_of(headers);
    let right = auth::push_right(
        settings.publish_token.as_deref(),
        &settings.access,
        presented.as_deref(),
    )
    .map_err(|refusal| {
        shared.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
        let status = match refusal {
            auth::PushRefusal::NoPublish => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        Failure(status, refusal.to_string())
    })?;
    let limits = &settings.limits;
    let max = limits.max_push_bytes;
    let raw = read_body_within(headers, body, max, limits).await?;
    let body = unpack(headers, &raw, packing, max)?;
    let batch = plan(shared.feeds.inlets(), query, &body)?;
    batch.deliver(&shared.hub, &right, limits.max_topics)?;
    Ok(())
}

/// The body as sent, decompressed when `packing` says so, refused past `max`
/// bytes once decompressed.
fn unpack<'a>(
    headers: &HeaderMap,
    raw: &'a [u8],
    packing: Packing,
    max: usize,
) -> Result<std::borrow::Cow<'a, [u8]>, Failure> {
    let too_large = || Failure::from(ApiError::TooLarge(max));
    match packing {
        Packing::Snappy => {
            let len = snap::raw::decompress_len(raw).map_err(|e| bad_packing("snappy", e))?;
            if len > max {
                return Err(too_large());
            }
            let out = snap::raw::Decoder::new()
                .decompress_vec(raw)
                .map_err(|e| bad_packing("snappy", e))?;
            Ok(out.into())
        }
        Packing::GzipIfSaid => {
            let encoding = headers
                .get(header::CONTENT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("identity")
                .trim();
            if encoding.eq_ignore_ascii_case("identity") {
                return Ok(raw.into());
            }
            if !encoding.eq_ignore_ascii_case("gzip") {
                return Err(Failure(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!("Content-Encoding `{encoding}` is not supported: send gzip or none"),
                ));
            }
            let mut out = Vec::with_capacity(raw.len() * 4);
            flate2::read::GzDecoder::new(raw)
                .take(max as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| bad_packing("gzip", e))?;
            if out.len() > max {
                return Err(too_large());
            }
            Ok(out.into())
        }
    }
}

fn bad_packing(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure(
        StatusCode::BAD_REQUEST,
        format!("the body is not valid {what}: {e}"),
    )
}

/// The value of `name` in a query string.
fn param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A line protocol write to the bucket named by `bucket_param`.
fn influx_plan(
    bucket_param: &'static str,
) -> impl FnOnce(&push::Inlets, &str, &[u8]) -> Result<Batch, Refused> {
    move |inlets, query, body| {
        let bucket = param(query, bucket_param)
            .filter(|b| !b.is_empty())
            .ok_or_else(|| {
                Refused::Invalid(format!(
                    "`{bucket_param}` is required: the bucket an `influx` feed takes, e.g. \
                 ?{bucket_param}=telegraf"
                ))
            })?;
        let precision = param(query, "precision");
        push::influx::ingest(inlets, &bucket, precision.as_deref(), body)
    }
}

/// `POST /api/v2/write?bucket=B&org=O&precision=P` (InfluxDB 2.x).
pub(super) async fn influx_v2(State(shared): State<Arc<AppState>>, request: Request) -> Response {
    take(
        shared,
        request,
        Shape::Influx,
        Packing::GzipIfSaid,
        influx_plan("bucket"),
    )
    .await
}

/// The query parameters of `POST /api/v2/write`.
pub(super) const INFLUX_V2_PARAMS: &[&str] = &["bucket", "org", "orgID", "precision"];

/// `POST /write?db=B&precision=P` (InfluxDB 1.x).
pub(super) async fn influx_v1(State(shared): State<Arc<AppState>>, request: Request) -> Response {
    take(
        shared,
        request,
        Shape::Influx,
        Packing::GzipIfSaid,
        influx_plan("db"),
    )
    .await
}

/// The query parameters of `POST /write`.
pub(super) const INFLUX_V1_PARAMS: &[&str] = &["db", "rp", "precision", "consistency"];

/// `POST /api/v1/write` (Prometheus remote-write 1.0).
pub(super) async fn remote_write(
    State(shared): State<Arc<AppState>>,
    request: Request,
) -> Response {
    take(
        shared,
        request,
        Shape::RemoteWrite,
        Packing::Snappy,
        |inlets, _, body| push::remote_write::ingest(inlets, body),
    )
    .await
}

/// `POST /v1/metrics` (OTLP/HTTP): JSON when `Content-Type` says so, else
/// protobuf.
pub(super) async fn otlp(State(shared): State<Arc<AppState>>, request: Request) -> Response {
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().starts_with("application/json"));
    take(
        shared,
        request,
        Shape::Otlp { json },
        Packing::GzipIfSaid,
        move |inlets, _, body| push::otlp::ingest(inlets, body, json),
    )
    .await
}
