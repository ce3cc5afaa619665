//! axum's extractors with JSON refusals: [`Api`] wraps `Path` and `Query`
//! (the only extractors the API handlers take from a request), so a path
//! that does not decode or a query that does not parse is answered like every
//! other API error, `{"error": ...}` through [`ApiError`], instead of axum's
//! plain-text rejection.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::state::ApiError;

/// `Api(Path(..))`, `Api(Query(..))`: the extractor `T`, refused as an
/// [`ApiError`].
pub(super) struct Api<T>(pub(super) T);

impl<S, T> FromRequestParts<S> for Api<T>
where
    S: Send + Sync,
    T: FromRequestParts<S>,
    T::Rejection: Refusal,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match T::from_request_parts(parts, state).await {
            Ok(t) => Ok(Api(t)),
            Err(rejection) => Err(rejection.into_api_error()),
        }
    }
}

/// An extractor's rejection as an [`ApiError`], keeping its status and text.
pub(super) trait Refusal {
    fn into_api_error(self) -> ApiError;
}

impl Refusal for PathRejection {
    fn into_api_error(self) -> ApiError {
        ApiError::Rejected(self.status(), self.body_text())
    }
}

impl Refusal for QueryRejection {
    fn into_api_error(self) -> ApiError {
        ApiError::Rejected(self.status(), self.body_text())
    }
}
