//! `[auth.jwt]`: verifying JSON Web Tokens presented as read tokens.
//!
//! A token is taken when its header's `alg` is one a configured key verifies
//! (HS256, RS256, ES256: never `none`, never an algorithm the key was not
//! configured for), its signature verifies with one of those keys, and its
//! `exp` (required) has not passed, give or take `leeway`. Its claims become
//! the connection's grant: `topics` the patterns it may read (as an
//! `[[access]]` table's `patterns`), `publish` the patterns it may publish to
//! with the WebSocket `publish` op; `sub` names it in logs. A token with a
//! pattern that does not parse is refused whole. A token whose header names
//! a `kid` is checked against the JWKS keys with that `kid` only; a `kid` no
//! key carries, against the keys without one (PEM files, HS256 secrets).

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::{Grant, Refusal};
use crate::config::{JwtAlgorithm, JwtConfig};
use crate::topic::Pattern;

/// The claims tickerd reads.
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    /// Required, but checked here rather than by `jsonwebtoken`, so that a
    /// verified token without one is told so.
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    topics: Vec<String>,
    #[serde(default)]
    publish: Vec<String>,
}

/// One key in force: what it verifies, its `kid` (JWKS keys), the key.
struct Key {
    alg: Algorithm,
    kid: Option<String>,
    key: DecodingKey,
}

/// The keys in force and the leeway; built from the config, swapped on reload.
pub(crate) struct Verifier {
    keys: Vec<Key>,
    leeway: u64,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.keys.len())
            .field("leeway", &self.leeway)
            .finish()
    }
}

impl Verifier {
    /// The verifier of a loaded `[auth.jwt]` (its keys were read and checked
    /// by the config loader).
    pub(crate) fn from_config(c: &JwtConfig) -> Self {
        let keys = c
            .keys
            .iter()
            .filter_map(|k| {
                let key = match k.algorithm {
                    _ if k.jwk => serde_json::from_slice::<Jwk>(&k.material)
                        .map_err(jsonwebtoken::errors::Error::from)
                        .and_then(|jwk| DecodingKey::from_jwk(&jwk)),
                    JwtAlgorithm::Hs256 => Ok(DecodingKey::from_secret(&k.material)),
                    JwtAlgorithm::Rs256 => DecodingKey::from_rsa_pem(&k.material),
                    JwtAlgorithm::Es256 => DecodingKey::from_ec_pem(&k.material),
                };
                let alg = match k.algorithm {
                    JwtAlgorithm::Hs256 => Algorithm::HS256,
                    JwtAlgorithm::Rs256 => Algorithm::RS256,
                    JwtAlgorithm::Es256 => Algorithm::ES256,
                };
                key.ok().map(|key| Key {
                    alg,
                    kid: k.kid.clone(),
                    key,
                })
            })
            .collect();
        Verifier {
            keys,
            leeway: c.leeway.as_secs(),
        }
    }

    /// The grant of `token`, or why it is refused. The signature is checked
    /// before any claim, so only a token one of our keys signed is told more
    /// than [`Refusal::Unknown`].
    pub(crate) fn verify(&self, token: &str) -> Result<Grant, Refusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Unknown)?;
        let mut validation = Validation::new(header.alg);
        validation.validate_aud = false;
        // `exp` is checked below, after the signature, with what was wrong.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        // A `kid` some key carries picks those keys only; a `kid` none carries
        // only the keys without one (PEM files, secrets); no `kid`, any key.
        let kid = header.kid.as_deref();
        let known = kid.is_some_and(|kid| self.keys.iter().any(|k| k.kid.as_deref() == Some(kid)));
        let claims = self
            .keys
            .iter()
            .filter(|k| k.alg == header.alg)
            .filter(|k| match kid {
                None => true,
                Some(_) if known => k.kid.as_deref() == kid,
                Some(_) => k.kid.is_none(),
            })
            .find_map(|k| jsonwebtoken::decode::<Claims>(token, &k.key, &validation).ok())
            .ok_or(Refusal::Unknown)?
            .claims;
        let exp = claims.exp.ok_or(Refusal::NoExp)?;
        let now = crate::hub::now_ms() / 1000;
        // Valid through `exp + leeway` inclusive, as `jsonwebtoken` counts it.
        if exp.saturating_add(self.leeway) < now {
            return Err(Refusal::Expired {
                exp,
                now,
                leeway: self.leeway,
            });
        }
        let parse = |claim: &'static str, ps: &[String]| -> Result<Vec<Pattern>, Refusal> {
            ps.iter()
                .map(|p| {
                    Pattern::parse(p).map_err(|e| Refusal::BadPattern {
                        claim,
                        error: e.to_string(),
                    })
                })
                .collect()
        };
        let topics = parse("topics", &claims.topics)?;
        let publish = parse("publish", &claims.publish)?;
        tracing::debug!(sub = claims.sub.as_deref().unwrap_or("-"), "JWT accepted.");
        Ok(Grant::limited(topics)
            .with_publish(publish)
            .expiring(exp.saturating_add(self.leeway)))
    }
}

/// When a grant that expires at `at` (seconds since the Unix epoch) runs out,
/// as an instant of this process.
pub(crate) fn deadline(at: u64) -> tokio::time::Instant {
    let now_ms = crate::hub::now_ms();
    let left = (at.saturating_mul(1000)).saturating_sub(now_ms);
    tokio::time::Instant::now() + std::time::Duration::from_millis(left)
}
