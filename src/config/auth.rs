//! `[auth.jwt]`: JSON Web Tokens as read tokens, next to `server.token` and
//! `[[access]]` (see `SECURITY.md`, "JSON Web Tokens").
//!
//! The keys are read when the config is loaded (at start and on every
//! reload): HS256 secrets from an environment variable or a file, RS256 and
//! ES256 public keys from PEM files. A key that cannot be read is a config
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
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// HS256 secrets, each `"env:NAME"` (an environment variable) or
    /// `"file:PATH"` (relative to the config file); several during a rotation.
    #[serde(default)]
    pub hs256_secrets: Vec<String>,
    /// RS256 or ES256 (P-256) public keys, PEM files (relative to the config file).
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
pub struct JwtKey {
    /// What it verifies.
    pub algorithm: JwtAlgorithm,
    /// Where it came from (`env:NAME`, a path), for messages.
    pub source: String,
    /// The secret, or the public key's PEM text.
    pub material: Vec<u8>,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the material: a secret must not reach logs.
        f.debug_struct("JwtKey")
            .field("algorithm", &self.algorithm)
            .field("source", &self.source)
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
            Ok(pem) => match pem_algorithm(&pem) {
                Some(algorithm) => keys.push(JwtKey {
                    algorithm,
                    source: shown.to_string(),
                    material: pem,
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
