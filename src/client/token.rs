//! When to ask for a fresh token: a JWT's `exp`, read without verifying (the
//! server verifies it), and the same lead time `web/tickerd.js` takes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;

/// The `exp` claim (seconds since the Unix epoch) of a JWT; `None` for any
/// other token.
pub(super) fn jwt_expiry(token: &str) -> Option<u64> {
    let mut parts = token.split('.');
    let (_, claims, _) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_u64()
}

/// How long from now to refresh a token expiring at `exp`: a quarter of its
/// remaining life before, at most 30 s before, at least 250 ms from now.
pub(super) fn refresh_in(exp: u64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let left = Duration::from_secs(exp).saturating_sub(now);
    let lead = (left / 4).min(Duration::from_secs(30));
    left.saturating_sub(lead).max(Duration::from_millis(250))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exp_of_jwts_only() {
        // {"alg":"HS256"} . {"exp":1700000000,"sub":"x"} . signature
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDAsInN1YiI6IngifQ.c2ln";
        assert_eq!(jwt_expiry(token), Some(1_700_000_000));
        assert_eq!(jwt_expiry("static-token"), None);
        assert_eq!(refresh_in(0), Duration::from_millis(250));
    }
}
