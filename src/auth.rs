//! Who may connect and what a connection may read.
//!
//! The model (documented for users in `SECURITY.md`), in the spirit of
//! Centrifugo's channel permissions:
//!
//! - No `server.token` and no `[[access]]` table: anyone may connect and read
//!   every topic.
//! - Otherwise `/ws` and `/api/*` (except publishing, which has its own
//!   `publish_token`) need a token, as `Authorization: Bearer` or `?token=`;
//!   a request without a known token is answered 401 before any upgrade.
//! - `server.token` grants everything. Each `[[access]]` table's `token` grants
//!   reading the topics its `patterns` match ([`Grant`]).
//! - A subscription pattern is allowed only when *every* topic it can match is
//!   matched by some granted pattern ([`Pattern::covered_by`]); otherwise the
//!   reply is `forbidden` and nothing is subscribed. So once subscribed, every
//!   update a pattern delivers is readable: nothing is filtered per update.
//! - An `[[access]]` table's `publish` patterns let its token publish to the
//!   topics they match with the WebSocket `publish` op; no other read token
//!   may (HTTP publishing needs `publish_token`).
//! - `topics` (WebSocket op and `GET /api/topics`) list only readable topics;
//!   `GET /api/topics/{topic}` answers 403 for one outside the grant, and
//!   `GET /api/feeds` needs read access to `$sys.feeds`.
//!
//! - With `[auth.jwt]`, a token that is none of those may be a JWT signed by
//!   a configured key ([`jwt`]): its `topics` and `publish` claims are its
//!   grant, and its `exp` ends the connection (close 4001) unless the client
//!   sends `refresh` with a new token first.
//!
//! Tokens are compared in constant time (`subtle`), against every configured
//! token, with no early exit. This module never touches sockets or HTTP.

pub(crate) mod jwt;
mod push;

pub(crate) use push::{push_credential_of, push_right, PublishRight, PushRefusal};

use std::sync::Arc;

use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::config::Config;
use crate::topic::Pattern;

/// What one connection may read. The default allows everything.
#[derive(Debug, Clone, Default)]
pub(crate) struct Grant {
    /// Patterns a subscription must fall within; `None` allows any.
    patterns: Option<Arc<[Pattern]>>,
    /// Topics the WebSocket `publish` op may write (`[[access]] publish`);
    /// `None`: none.
    publish: Option<Arc<[Pattern]>>,
    /// A JWT's `exp` plus the leeway (seconds since the Unix epoch): the
    /// connection ends then, unless refreshed.
    expires: Option<u64>,
}

impl Grant {
    /// A grant limited to the topics `patterns` match.
    pub(crate) fn limited(patterns: Vec<Pattern>) -> Self {
        Grant {
            patterns: Some(patterns.into()),
            publish: None,
            expires: None,
        }
    }

    /// The same grant, ending at `at` (seconds since the Unix epoch).
    pub(crate) fn expiring(mut self, at: u64) -> Self {
        self.expires = Some(at);
        self
    }

    /// When this grant ends (a JWT's), in seconds since the Unix epoch.
    pub(crate) fn expires(&self) -> Option<u64> {
        self.expires
    }

    /// The same grant, allowed to publish to the topics `patterns` match.
    pub(crate) fn with_publish(mut self, patterns: Vec<Pattern>) -> Self {
        self.publish = (!patterns.is_empty()).then(|| patterns.into());
        self
    }

    /// May this connection publish at all (the WebSocket `publish` op)?
    pub(crate) fn can_publish(&self) -> bool {
        self.publish.is_some()
    }

    /// May this connection publish to `topic`?
    pub(crate) fn may_publish(&self, topic: &str) -> bool {
        self.publish
            .as_ref()
            .is_some_and(|ps| ps.iter().any(|p| p.matches(topic)))
    }

    /// May this connection receive updates of `topic`?
    pub(crate) fn may_read(&self, topic: &str) -> bool {
        self.patterns
            .as_ref()
            .is_none_or(|ps| ps.iter().any(|p| p.matches(topic)))
    }

    /// May this connection subscribe to `pattern`: is every topic it can match
    /// readable?
    pub(crate) fn may_subscribe(&self, pattern: &Pattern) -> bool {
        self.patterns
            .as_ref()
            .is_none_or(|ps| pattern.covered_by(ps))
    }
}

/// The tokens in force and what each grants; swapped whole on reload.
#[derive(Debug, Clone, Default)]
pub(crate) struct Access {
    /// (token, grant) pairs; empty (and no `jwt`) means no token is needed.
    tokens: Vec<(String, Grant)>,
    /// `[auth.jwt]`: tokens that are JWTs signed by a configured key.
    jwt: Option<Arc<jwt::Verifier>>,
}

impl Access {
    /// Reads `server.token` (full access) and every `[[access]]` table. The
    /// config is validated, so every pattern parses.
    pub(crate) fn from_config(c: &Config) -> Self {
        let mut tokens = Vec::new();
        if let Some(t) = &c.server.token {
            tokens.push((t.clone(), Grant::default()));
        }
        for a in &c.access {
            let patterns = a
                .patterns
                .iter()
                .filter_map(|p| Pattern::parse(p).ok())
                .collect();
            let publish = a
                .publish
                .iter()
                .filter_map(|p| Pattern::parse(p).ok())
                .collect();
            let grant = Grant::limited(patterns).with_publish(publish);
            tokens.push((a.token.clone(), grant));
        }
        let jwt = c
            .jwt
            .as_ref()
            .map(|j| Arc::new(jwt::Verifier::from_config(j)));
        Access { tokens, jwt }
    }

    /// The grant of a request presenting `presented`, or why it is refused
    /// (401 on `/ws`, `/sse` and `/api`, `unauthorized` to a `refresh`).
    pub(crate) fn grant_for(&self, presented: Option<&str>) -> Result<Grant, Refusal> {
        if self.tokens.is_empty() && self.jwt.is_none() {
            return Ok(Grant::default());
        }
        let presented = presented.ok_or(Refusal::Missing)?;
        if let Some(g) = self.static_grant(presented) {
            return Ok(g);
        }
        self.jwt_grant(presented)
    }

    /// The grant of a JWT signed by a key of `[auth.jwt]`, and only of one:
    /// what `refresh` takes (a static token never expires, so a connection
    /// refreshed with one would never end).
    ///
    /// # Errors
    /// Why the token is refused (no `[auth.jwt]`: unknown).
    pub(crate) fn jwt_grant(&self, presented: &str) -> Result<Grant, Refusal> {
        self.jwt.as_ref().ok_or(Refusal::Unknown)?.verify(presented)
    }

    /// The grant of one of the static tokens (`server.token`, `[[access]]`).
    fn static_grant(&self, presented: &str) -> Option<Grant> {
        // Compare with every token so the time taken does not say which matched.
        let mut found = subtle::Choice::from(0);
        let mut index = 0u64;
        for (i, (token, _)) in self.tokens.iter().enumerate() {
            let hit = presented.as_bytes().ct_eq(token.as_bytes());
            index.conditional_assign(&(i as u64), hit);
            found |= hit;
        }
        bool::from(found).then(|| self.tokens[index as usize].1.clone())
    }
}

/// Why a presented token grants nothing: the one text every path answers
/// with (`/ws`, `/sse` and `/api` as a 401, a WebSocket `refresh` as
/// `unauthorized`). Only a token that verified (a JWT signed by a configured
/// key) is told what is wrong with it; an unknown or forged one learns
/// nothing about which check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No token was presented.
    Missing,
    /// Not a configured token, nor a JWT that a configured key verifies.
    Unknown,
    /// A verified JWT whose `exp`, plus `leeway` seconds, is before `now`
    /// (both in seconds since the Unix epoch).
    Expired { exp: u64, now: u64, leeway: u64 },
    /// A verified JWT without an `exp` claim, which `[auth.jwt]` requires.
    NoExp,
    /// A verified JWT whose `topics` or `publish` claim holds something that
    /// is not a pattern.
    BadPattern { claim: &'static str, error: String },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let time = |secs: u64| {
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            humantime::format_rfc3339_seconds(at)
        };
        match self {
            Refusal::Missing => f.write_str(
                "a token is required: send it as `Authorization: Bearer <token>` \
                 or `?token=<token>`",
            ),
            Refusal::Unknown => f.write_str(
                "the token is not valid: it is neither a configured token nor a JWT \
                 that a configured [auth.jwt] key verifies",
            ),
            Refusal::Expired { exp, now, leeway } => write!(
                f,
                "the token expired at {} (now {}, leeway {leeway}s); get a fresh one",
                time(*exp),
                time(*now)
            ),
            Refusal::NoExp => f.write_str(
                "the token has no exp claim; an [auth.jwt] token must carry `exp` \
                 (when it expires, in seconds since the Unix epoch)",
            ),
            Refusal::BadPattern { claim, error } => {
                write!(f, "the token's `{claim}` claim: {error}")
            }
        }
    }
}

/// Constant-time comparison of a presented secret with the configured one.
pub(crate) fn token_matches(presented: &str, expected: &str) -> bool {
    presented.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// The bearer token of a request's `Authorization` header, if it has one.
pub(crate) fn bearer_of(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(bearer)
}

/// The bearer token of an `Authorization` header value, if it is one.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(ps: &[&str]) -> Grant {
        Grant::limited(ps.iter().map(|p| Pattern::parse(p).unwrap()).collect())
    }

    #[test]
    fn a_grant_allows_only_contained_patterns() {
        let g = grant(&["stocks.>", "$sys.feeds"]);
        assert!(g.may_read("stocks.AAPL"));
        assert!(!g.may_read("host.cpu"));
        let p = |s| Pattern::parse(s).unwrap();
        assert!(g.may_subscribe(&p("stocks.*")));
        assert!(g.may_subscribe(&p("stocks.>")));
        assert!(g.may_subscribe(&p("$sys.feeds")));
        assert!(!g.may_subscribe(&p(">")));
        assert!(!g.may_subscribe(&p("*.AAPL")));
        assert!(!g.may_subscribe(&p("$sys.*")));
        assert!(Grant::default().may_subscribe(&p(">")));
    }

    #[test]
    fn tokens_resolve_to_their_grants() {
        let c = Config::from_toml(
            "[server]\ntoken = \"root\"\n[[access]]\ntoken = \"ro\"\npatterns = [\"a.*\"]\n",
            std::path::Path::new("c.toml"),
        )
        .unwrap();
        let access = Access::from_config(&c);
        assert_eq!(access.grant_for(None).unwrap_err(), Refusal::Missing);
        assert_eq!(
            access.grant_for(Some("nope")).unwrap_err(),
            Refusal::Unknown
        );
        assert!(access.grant_for(Some("root")).unwrap().may_read("b"));
        let ro = access.grant_for(Some("ro")).unwrap();
        assert!(ro.may_read("a.x") && !ro.may_read("b"));
        assert!(Access::default().grant_for(None).is_ok());
    }

    /// Every form a push client sends its token in yields the token; other
    /// schemes and malformed basic auth yield none.
    #[test]
    fn push_credentials_come_in_three_forms() {
        use base64::Engine as _;
        let of = |value: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(http::header::AUTHORIZATION, value.parse().unwrap());
            push_credential_of(&h)
        };
        assert_eq!(of("Token t1").as_deref(), Some("t1"));
        assert_eq!(of("Bearer t2").as_deref(), Some("t2"));
        let basic = base64::engine::general_purpose::STANDARD.encode("user:t3");
        assert_eq!(of(&format!("Basic {basic}")).as_deref(), Some("t3"));
        assert_eq!(of("Basic !!!"), None);
        assert_eq!(of("Digest x"), None);
        assert_eq!(push_credential_of(&http::HeaderMap::new()), None);
    }

    /// The publish token grants every topic, a `publish` grant its patterns,
    /// a read-only token nothing (403), and no publishing configured at all
    /// refuses every write.
    #[test]
    fn push_rights_follow_tokens_and_grants() {
        let c = Config::from_toml(
            "[server]\ntoken = \"root\"\npublish_token = \"pub\"\n\
             [[access]]\ntoken = \"w\"\npatterns = [\"a.>\"]\npublish = [\"a.>\"]\n",
            std::path::Path::new("c.toml"),
        )
        .unwrap();
        let access = Access::from_config(&c);
        let right = |t: Option<&str>| push_right(Some("pub"), &access, t);
        assert!(right(Some("pub")).unwrap().allows("x.y"));
        let w = right(Some("w")).unwrap();
        assert!(w.allows("a.b") && !w.allows("x.y"));
        assert_eq!(right(Some("root")).unwrap_err(), PushRefusal::NoPublish);
        assert_eq!(right(Some("nope")).unwrap_err(), PushRefusal::Unknown);
        assert_eq!(right(None).unwrap_err(), PushRefusal::Missing);
        assert_eq!(
            push_right(None, &Access::default(), Some("x")).unwrap_err(),
            PushRefusal::NotEnabled
        );
    }
}
