//! Who may connect and what a connection may read.
//!
//! `server.token` guards `/ws` and `/api` as a whole; a [`Grant`] is what one
//! connection was allowed, checked when it subscribes. Tokens are compared in
//! constant time.

use subtle::ConstantTimeEq;

use crate::topic::Pattern;

/// What one connection may read. The default allows everything.
#[derive(Debug, Clone, Default)]
pub(crate) struct Grant {
    /// Patterns a subscription must fall within; `None` allows any.
    pub(crate) patterns: Option<Vec<Pattern>>,
}

impl Grant {
    /// May this connection receive updates of `topic`?
    pub(crate) fn may_read(&self, topic: &str) -> bool {
        self.patterns
            .as_ref()
            .is_none_or(|ps| ps.iter().any(|p| p.matches(topic)))
    }

    /// May this connection subscribe to `pattern`? A literal pattern must be
    /// readable; a wildcard must equal one of the granted patterns or be a
    /// narrower literal (conservative: no pattern containment beyond that).
    pub(crate) fn may_subscribe(&self, pattern: &Pattern) -> bool {
        match &self.patterns {
            None => true,
            Some(ps) => {
                if pattern.is_literal() {
                    self.may_read(pattern.as_str())
                } else {
                    ps.iter().any(|p| p == pattern)
                }
            }
        }
    }
}

/// Constant-time comparison of a presented secret with the configured one.
pub(crate) fn token_matches(presented: &str, expected: &str) -> bool {
    presented.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// The bearer token of an `Authorization` header value, if it is one.
pub(crate) fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}
