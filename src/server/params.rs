//! The query parameters each route takes, and the one check that refuses any
//! other: 400 with `{"error": ...}` naming the parameter, the nearest known
//! one when it looks like a typo, and every one the route takes (the text of
//! [`protocol::unknown_name`], the same as for an unknown WebSocket field).
//!
//! The router gives every route its [`Params`] (`server/mod.rs`), so a
//! misspelt `?patern=` is an error rather than a silently unfiltered answer.
//! The check only knows names; each handler parses the values it takes.
//! The web pages and assets take none of this: their scripts read their own
//! query (`?token=` on a dashboard), and a `?v=` may bust a cache.

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

use crate::protocol;
use crate::state::ApiError;

/// How a route treats `?token=`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Token {
    /// The read-token check in front of the route reads it (`require_token`,
    /// through `presented_token`).
    Read,
    /// Not taken, but let through to the route's publish-token check, which
    /// answers 401 saying the publish token goes in `Authorization: Bearer`
    /// (SECURITY.md).
    HeaderOnly,
    /// No token at all.
    No,
}

/// The query parameters of one route.
#[derive(Debug, Clone, Copy)]
pub(super) struct Params {
    /// The route as an error names it, e.g. `GET /api/topics`.
    route: &'static str,
    /// The names its handler reads.
    names: &'static [&'static str],
    token: Token,
}

impl Params {
    /// A route behind the read-token check: `names`, and `token`.
    pub(super) const fn guarded(route: &'static str, names: &'static [&'static str]) -> Self {
        Params {
            route,
            names,
            token: Token::Read,
        }
    }

    /// A route guarded by the publish token (a header only): no parameter.
    pub(super) const fn publishing(route: &'static str) -> Self {
        Params {
            route,
            names: &[],
            token: Token::HeaderOnly,
        }
    }

    /// A push route (`influx`, `remote_write`, `otlp`): `names`; the token
    /// comes in a header only (`auth::push_credential_of`).
    pub(super) const fn pushing(route: &'static str, names: &'static [&'static str]) -> Self {
        Params {
            route,
            names,
            token: Token::No,
        }
    }

    /// A route without a token: `names` only.
    pub(super) const fn open(route: &'static str, names: &'static [&'static str]) -> Self {
        Params {
            route,
            names,
            token: Token::No,
        }
    }

    /// `handler` behind this check.
    pub(super) fn on<S: Clone + Send + Sync + 'static>(
        self,
        handler: MethodRouter<S>,
    ) -> MethodRouter<S> {
        handler.layer(middleware::from_fn_with_state(self, refuse_unknown))
    }

    /// Every name in `query` is one the route takes; else the error for the
    /// first that is not.
    fn check(&self, query: Option<&str>) -> Result<(), ApiError> {
        let query = query.unwrap_or("");
        for (name, _) in form_urlencoded::parse(query.as_bytes()) {
            let known = self.names.contains(&&*name);
            if known || (name == "token" && self.token != Token::No) {
                continue;
            }
            let mut names = self.names.to_vec();
            if self.token == Token::Read {
                names.push("token");
            }
            let place = format!(" in {}", self.route);
            let message = protocol::unknown_name("query parameter", &name, &place, &names);
            return Err(ApiError::BadRequest(message));
        }
        Ok(())
    }
}

/// The middleware of [`Params::on`].
async fn refuse_unknown(State(params): State<Params>, req: Request, next: Next) -> Response {
    match params.check(req.uri().query()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names a route takes pass (repeated, percent-encoded or empty);
    /// any other is refused with the route, the nearest name and the list.
    #[test]
    fn only_known_names_pass() {
        let p = Params::guarded("GET /api/topics", &["pattern"]);
        for ok in [None, Some(""), Some("pattern=a.*&token=t&pattern=b")] {
            assert!(p.check(ok).is_ok(), "{ok:?}");
        }
        let Err(ApiError::BadRequest(msg)) = p.check(Some("patern=x")) else {
            panic!("`patern` passed");
        };
        assert_eq!(
            msg,
            "unknown query parameter `patern` in GET /api/topics; did you mean `pattern`? \
             (expected `pattern` or `token`)"
        );
        let open = Params::open("GET /healthz", &[]);
        let Err(ApiError::BadRequest(msg)) = open.check(Some("token=t")) else {
            panic!("`token` passed an open route");
        };
        assert!(msg.ends_with("(it takes none)"), "{msg}");
        // The publish routes let `token` through to their own 401, and say
        // nothing of it in the list.
        let publishing = Params::publishing("POST /api/publish");
        assert!(publishing.check(Some("token=t")).is_ok());
        let Err(ApiError::BadRequest(msg)) = publishing.check(Some("x=1")) else {
            panic!("`x` passed");
        };
        assert!(msg.ends_with("(it takes none)"), "{msg}");
    }
}
