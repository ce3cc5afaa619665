//! `[server.tls]`: the certificate and key tickerd serves `https://` and
//! `wss://` with (docs/deploy.md, "TLS in the binary").
//!
//! The two PEM files are read when the config is loaded (at start and on every
//! reload) and checked as a pair here, in [`certified_key`], the one place that
//! says whether a pair is usable: parsed, a certificate and a private key
//! present, and the key the certificate's own. A pair that fails is a config
//! error at the key's line like any other, so a bad pair at start stops the
//! start, and a bad pair on reload is refused while the running one stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use serde::Deserialize;

/// `[server.tls]`
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TlsConfig {
    /// The certificate chain, PEM (the server's certificate first, then its
    /// intermediates, as Let's Encrypt's `fullchain.pem`), relative to the
    /// config file.
    pub cert: PathBuf,
    /// The certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1), relative
    /// to the config file.
    pub key: PathBuf,
    /// The two files as read when the config was loaded: a renewed
    /// certificate at the same paths makes a different config, so a reload
    /// swaps it in.
    #[serde(skip)]
    pub(crate) pem: (Vec<u8>, Vec<u8>),
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key's bytes: they must not reach logs.
        f.debug_struct("TlsConfig")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Resolves `tls`'s paths against `base` (the config file's directory), reads
/// both files and checks them as a pair; `error(key, message)` for each
/// problem, at `server.tls.cert` or `server.tls.key`.
pub(super) fn load(tls: &mut TlsConfig, base: &Path, error: &mut dyn FnMut(&str, String)) {
    tls.cert = base.join(&tls.cert);
    tls.key = base.join(&tls.key);
    let read = |key: &str, path: &Path, what: &str| {
        std::fs::read(path).map_err(|e| {
            (
                key.to_string(),
                format!(
                    "[server.tls] {}: cannot read {}: {e} (write the path of a PEM {what} file, \
                     relative to the config file)",
                    key.rsplit('.').next().unwrap_or(key),
                    path.display()
                ),
            )
        })
    };
    let pem = read("server.tls.cert", &tls.cert, "certificate")
        .and_then(|c| Ok((c, read("server.tls.key", &tls.key, "private key")?)));
    match pem {
        Err((key, msg)) => error(&key, msg),
        Ok(pem) => {
            tls.pem = pem;
            if let Err((key, msg)) = certified_key(tls) {
                error(key, msg);
            }
        }
    }
}

/// The pair `tls` holds as rustls serves it, or which key is wrong and why,
/// in words that say what would be right.
///
/// # Errors
/// `(config key, message)`: no certificate in the cert file, no private key in
/// the key file, a key of a kind the server cannot sign with, or a key that is
/// not the certificate's.
pub(crate) fn certified_key(tls: &TlsConfig) -> Result<Arc<CertifiedKey>, (&'static str, String)> {
    let (cert_pem, key_pem) = &tls.pem;
    let (cert, key) = (tls.cert.display(), tls.key.display());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            let msg = format!("[server.tls] cert: {cert} is not valid PEM ({e})");
            ("server.tls.cert", msg)
        })?;
    if chain.is_empty() {
        let msg = format!(
            "[server.tls] cert: {cert} holds no certificate (expected PEM \
             `-----BEGIN CERTIFICATE-----` blocks, the server's certificate first)"
        );
        return Err(("server.tls.cert", msg));
    }
    let der = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        let msg = format!(
            "[server.tls] key: {key} holds no private key ({e}; expected a PEM \
             `-----BEGIN PRIVATE KEY-----`, `RSA PRIVATE KEY` or `EC PRIVATE KEY` block)"
        );
        ("server.tls.key", msg)
    })?;
    let provider = rustls::crypto::ring::default_provider();
    let signer = provider.key_provider.load_private_key(der).map_err(|e| {
        let msg = format!(
            "[server.tls] key: {key} cannot sign ({e}); use an RSA, ECDSA (P-256, P-384) \
             or Ed25519 key"
        );
        ("server.tls.key", msg)
    })?;
    let pair = CertifiedKey::new(chain, signer);
    match pair.keys_match() {
        // `Unknown`: the key cannot tell its public half; rustls serves it anyway.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(Arc::new(pair))
        }
        Err(e) => {
            let msg = format!(
                "[server.tls] key: {key} is not the private key of the certificate in {cert} \
                 ({e}); give the key the certificate was issued for (e.g. Let's Encrypt's \
                 privkey.pem next to fullchain.pem)"
            );
            Err(("server.tls.key", msg))
        }
    }
}

/// The pair served now, swapped whole when a reload brings a renewed one:
/// each new handshake asks for it, so connections made before a swap keep
/// their session and later ones see the new certificate.
#[derive(Debug)]
pub(crate) struct ServedCert(std::sync::RwLock<Arc<CertifiedKey>>);

impl ServedCert {
    /// Serves `pair` until [`ServedCert::swap`].
    pub(crate) fn new(pair: Arc<CertifiedKey>) -> Self {
        ServedCert(std::sync::RwLock::new(pair))
    }

    /// New handshakes get `pair` from now on.
    pub(crate) fn swap(&self, pair: Arc<CertifiedKey>) {
        use crate::sync::RwLockExt;
        *self.0.write_or_recover() = pair;
    }
}

impl rustls::server::ResolvesServerCert for ServedCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        use crate::sync::RwLockExt;
        Some(self.0.read_or_recover().clone())
    }
}
