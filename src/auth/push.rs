//! Push writes (InfluxDB, remote-write, OTLP): the credential each
//! protocol's clients present, and what it lets a write publish to.

use super::{bearer, token_matches, Access, Grant, Refusal};

/// The credential a push client presents, in whichever form its protocol's
/// clients send it: `Authorization: Token T` (InfluxDB), `Authorization:
/// Bearer T` (OTLP exporters, Prometheus `authorization`), or basic auth with
/// `T` as the password (Prometheus `basic_auth`, InfluxDB 1.x `-u user:T`).
/// The one reader of push credentials: every push route calls it.
pub(crate) fn push_credential_of(headers: &http::HeaderMap) -> Option<String> {
    use base64::Engine as _;
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(token) = bearer(value) {
        return Some(token.to_string());
    }
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("token") {
        return Some(rest.to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (_user, password) = text.split_once(':')?;
        return Some(password.to_string());
    }
    None
}

/// What a push write may publish to.
#[derive(Debug, Clone)]
pub(crate) enum PublishRight {
    /// The publish token: every topic.
    All,
    /// An `[[access]]` table's (or a JWT's) `publish` patterns.
    Topics(Grant),
}

impl PublishRight {
    /// May this write publish to `topic`?
    pub(crate) fn allows(&self, topic: &str) -> bool {
        match self {
            PublishRight::All => true,
            PublishRight::Topics(grant) => grant.may_publish(topic),
        }
    }
}

/// Why a push write's credential is refused: the one text of every push
/// route's 401 or 403.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PushRefusal {
    /// Neither `server.publish_token` nor any `publish` grant is configured.
    NotEnabled,
    /// No credential was presented (401).
    Missing,
    /// Not the publish token, nor a token with `publish` patterns (401).
    Unknown,
    /// A known token that grants no publishing (403).
    NoPublish,
}

impl std::fmt::Display for PushRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PushRefusal::NotEnabled => {
                "pushing is not enabled: set [server] publish_token, or give an \
                 [[access]] token `publish` patterns"
            }
            PushRefusal::Missing => {
                "a publish token is required: send it as `Authorization: Token <token>`, \
                 `Authorization: Bearer <token>` or as the basic auth password"
            }
            PushRefusal::Unknown => {
                "the token is not valid: it is neither the publish token nor a token \
                 with [[access]] publish patterns"
            }
            PushRefusal::NoPublish => {
                "this token may not publish: give its [[access]] table `publish` patterns"
            }
        })
    }
}

/// The publish right of a push write presenting `presented`: the publish
/// token grants every topic; a read token's (or JWT's) `publish` patterns
/// grant the topics they match.
///
/// # Errors
/// Why the credential is refused.
pub(crate) fn push_right(
    publish_token: Option<&str>,
    access: &Access,
    presented: Option<&str>,
) -> Result<PublishRight, PushRefusal> {
    let grants_publish = access.tokens.iter().any(|(_, g)| g.can_publish());
    if publish_token.is_none() && !grants_publish && access.jwt.is_none() {
        return Err(PushRefusal::NotEnabled);
    }
    let presented = presented.ok_or(PushRefusal::Missing)?;
    // Both compared, so the time taken does not say which one matched.
    let is_publish_token = publish_token.is_some_and(|t| token_matches(presented, t));
    // Without tokens `grant_for` lets anyone read; that grants no publishing.
    let open = access.tokens.is_empty() && access.jwt.is_none();
    let grant = if open {
        Err(Refusal::Unknown)
    } else {
        access.grant_for(Some(presented))
    };
    if is_publish_token {
        return Ok(PublishRight::All);
    }
    match grant {
        Ok(g) if g.can_publish() => Ok(PublishRight::Topics(g)),
        Ok(_) => Err(PushRefusal::NoPublish),
        Err(_) => Err(PushRefusal::Unknown),
    }
}
