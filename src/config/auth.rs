//! `[auth.jwt]`: JSON Web Tokens as read tokens, next to `server.token` and
//! `[[access]]` (see `SECURITY.md`, "JSON Web Tokens").
//!
//! The keys are read when the config is loaded (at start and on every
//! reload): HS256 secrets from an environment variable or a file, RS256 and
//! ES256 public keys from PEM files or JWKS files (RFC 7517, `.json`). A key that cannot be read is a config
//! error like any other, at the key's line; on reload the whole new config is
//! then refused and the keys in force stay.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// `[auth]`, kept raw: its only table is `[auth.jwt]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    pub(super) jwt: Option<super::RawTable>,
}

/// `[auth.jwt]`
#[derive(Clone, PartialEq, Deserialize)]
#[non_exhaustive]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// HS256 secrets, each `"env:NAME"` (an environment variable) or
    /// `"file:PATH"` (relative to the config file); several during a rotation.
    #[serde(default)]
    pub hs256_secrets: Vec<String>,
    /// RS256 or ES256 (P-256) public keys, PEM files, or JWKS files (a name
    /// ending in `.json`), relative to the config file.
    #[serde(default)]
    pub public_keys: Vec<PathBuf>,
    /// Clock skew allowed on `exp` (default 30s).
    #[serde(default = "JwtConfig::default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
    /// The keys, read when the config was loaded.
    #[serde(skip)]
    pub keys: Vec<JwtKey>,
}

impl JwtConfig {
    fn default_leeway() -> Duration {
        Duration::from_secs(30)
    }
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("hs256_secrets", &self.hs256_secrets)
            .field("public_keys", &self.public_keys)
            .field("leeway", &self.leeway)
            .field("keys", &self.keys)
            .finish()
    }
}

/// The algorithm a key verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256 (a shared secret).
    Hs256,
    /// RSA PKCS#1 v1.5 with SHA-256.
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
}

/// One verification key, as read.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct JwtKey {
    /// What it verifies.
    pub algorithm: JwtAlgorithm,
    /// Where it came from (`env:NAME`, a path), for messages.
    pub source: String,
    /// The secret, the public key's PEM text, or (from a JWKS) the key's JWK
    /// as JSON.
    pub material: Vec<u8>,
    /// True when `material` is a JWK (from a JWKS file).
    pub jwk: bool,
    /// The key's `kid` (JWKS keys only): a token whose header names a `kid`
    /// is checked against the keys with that `kid`.
    pub kid: Option<String>,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the material: a secret must not reach logs.
        f.debug_struct("JwtKey")
            .field("algorithm", &self.algorithm)
            .field("source", &self.source)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The shortest HS256 secret taken (RFC 7518 §3.2: at least the hash size).
const MIN_SECRET: usize = 32;

/// Reads every key of `jwt`; `error(key, message)` for each that cannot be.
pub(super) fn load_keys(jwt: &mut JwtConfig, base: &Path, error: &mut dyn FnMut(&str, String)) {
    if jwt.hs256_secrets.is_empty() && jwt.public_keys.is_empty() {
        error(
            "auth.jwt",
            "[auth.jwt] needs hs256_secrets or public_keys, e.g. \
             hs256_secrets = [\"env:TICKERD_JWT_SECRET\"] or public_keys = [\"keys/issuer.pem\"]"
                .into(),
        );
    }
    let mut keys = Vec::new();
    for source in &jwt.hs256_secrets {
        let read = if let Some(name) = source.strip_prefix("env:") {
            std::env::var(name).map_err(|_| format!("environment variable {name} is not set"))
        } else if let Some(path) = source.strip_prefix("file:") {
            let path = base.join(path);
            std::fs::read_to_string(&path)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
        } else {
            Err("is neither \"env:NAME\" nor \"file:PATH\"".into())
        };
        match read {
            Err(why) => error(
                "auth.jwt.hs256_secrets",
                format!(
                    "[auth.jwt] hs256_secrets: {source:?} {why} \
                     (write \"env:NAME\" with NAME set, or \"file:path/to/secret\")"
                ),
            ),
            Ok(secret) if secret.len() < MIN_SECRET => error(
                "auth.jwt.hs256_secrets",
                format!(
                    "[auth.jwt] hs256_secrets: {source:?} is {} bytes; an HS256 secret needs at \
                     least {MIN_SECRET} (e.g. the output of `openssl rand -base64 48`)",
                    secret.len()
                ),
            ),
            Ok(secret) => keys.push(JwtKey {
                algorithm: JwtAlgorithm::Hs256,
                source: source.clone(),
                material: secret.into_bytes(),
                jwk: false,
                kid: None,
            }),
        }
    }
    for path in &jwt.public_keys {
        let full = base.join(path);
        let shown = path.display();
        match std::fs::read(&full) {
            Err(e) => error(
                "auth.jwt.public_keys",
                format!(
                    "[auth.jwt] public_keys: cannot read {shown:?} ({}): {e}",
                    full.display()
                ),
            ),
            Ok(json) if full.extension().is_some_and(|e| e == "json") => {
                match jwks_keys(&json, &shown.to_string()) {
                    Ok(read) => keys.extend(read),
                    Err(why) => error(
                        "auth.jwt.public_keys",
                        format!("[auth.jwt] public_keys: {shown:?} {why}"),
                    ),
                }
            }
            Ok(pem) => match pem_algorithm(&pem) {
                Some(algorithm) => keys.push(JwtKey {
                    algorithm,
                    source: shown.to_string(),
                    material: pem,
                    jwk: false,
                    kid: None,
                }),
                None => error(
                    "auth.jwt.public_keys",
                    format!(
                        "[auth.jwt] public_keys: {shown:?} is not an RSA or EC (P-256) public key \
                         in PEM (expected a \"-----BEGIN PUBLIC KEY-----\" file, e.g. from \
                         `openssl pkey -pubout`)"
                    ),
                ),
            },
        }
    }
    jwt.keys = keys;
}

/// RS256 for an RSA public key, ES256 for an EC one; `None` for anything else.
fn pem_algorithm(pem: &[u8]) -> Option<JwtAlgorithm> {
    use jsonwebtoken::DecodingKey;
    if DecodingKey::from_rsa_pem(pem).is_ok() {
        Some(JwtAlgorithm::Rs256)
    } else if DecodingKey::from_ec_pem(pem).is_ok() {
        Some(JwtAlgorithm::Es256)
    } else {
        None
    }
}

/// The keys of a JWKS file (RFC 7517: `{"keys": [...]}`): RSA keys verify
/// RS256, EC P-256 keys ES256. Any key that is not one of those, or that
/// cannot be read, refuses the whole file (the error names the key).
fn jwks_keys(bytes: &[u8], source: &str) -> Result<Vec<JwtKey>, String> {
    use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
    use jsonwebtoken::DecodingKey;
    let not_jwks = "is not a JWKS (expected JSON {\"keys\": [{\"kty\": \"RSA\", ...}]}, RFC 7517)";
    let set: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("{not_jwks}: {e}"))?;
    let Some(list) = set.get("keys").and_then(|k| k.as_array()) else {
        return Err(format!("{not_jwks}: no \"keys\" list"));
    };
    if list.is_empty() {
        return Err("has no keys (an empty \"keys\" list)".into());
    }
    let mut keys: Vec<JwtKey> = Vec::new();
    for (i, raw) in list.iter().enumerate() {
        let kid = raw.get("kid").and_then(|k| k.as_str()).map(str::to_string);
        let name = match &kid {
            Some(kid) => format!("key {i} (kid {kid:?})"),
            None => format!("key {i}"),
        };
        let jwk: Jwk = serde_json::from_value(raw.clone()).map_err(|e| {
            format!("{name} is not a JWK tickerd reads ({e}); expected kty RSA (n, e) or EC (crv P-256, x, y)")
        })?;
        if let Some(u) = &jwk.common.public_key_use {
            if *u != PublicKeyUse::Signature {
                return Err(format!(
                    "{name} is not for signatures (\"use\" must be \"sig\" or absent)"
                ));
            }
        }
        let (algorithm, wanted) = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => (JwtAlgorithm::Rs256, KeyAlgorithm::RS256),
            AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                let point_ok = [&ec.x, &ec.y].iter().all(|c| base64_len(c) == Some(32));
                if !point_ok {
                    return Err(format!(
                        "{name}: x and y must each be 32 bytes, base64url (a P-256 point)"
                    ));
                }
                (JwtAlgorithm::Es256, KeyAlgorithm::ES256)
            }
            AlgorithmParameters::EllipticCurve(ec) => {
                return Err(format!(
                    "{name} is on curve {:?}; tickerd verifies ES256, P-256 only",
                    ec.curve
                ));
            }
            _ => {
                return Err(format!(
                    "{name} is neither an RSA nor an EC (P-256) public key"
                ));
            }
        };
        if let Some(alg) = jwk.common.key_algorithm {
            if alg != wanted {
                return Err(format!(
                    "{name} has alg {alg:?}; its key type verifies {wanted:?}"
                ));
            }
        }
        if let Err(e) = DecodingKey::from_jwk(&jwk) {
            return Err(format!("{name} cannot be read: {e}"));
        }
        if kid.is_some() && keys.iter().any(|k| k.kid == kid) {
            return Err(format!("{name}: the kid is used twice"));
        }
        keys.push(JwtKey {
            algorithm,
            source: format!("{source} {name}"),
            material: raw.to_string().into_bytes(),
            jwk: true,
            kid,
        });
    }
    Ok(keys)
}

/// The decoded length of base64url text (no padding), or `None` when it is not.
fn base64_len(text: &str) -> Option<usize> {
    let ok = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    match (ok, text.len() % 4) {
        (false, _) | (_, 1) => None,
        (true, r) => Some(text.len() / 4 * 3 + r.saturating_sub(1)),
    }
}
