//! TLS in the binary (`[server.tls]`, docs/deploy.md): the rustls server
//! config the accept loop hands each connection to.
//!
//! Its certificate comes from [`ServedCert`], which a reload swaps, so a
//! renewed certificate serves new handshakes while open connections go on.
//! ALPN offers `http/1.1` only, like the plain listener (a WebSocket
//! upgrade is HTTP/1.1).

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use crate::config::ServedCert;

/// The acceptor for `cert`, on the ring provider (the crate's only one).
pub(super) fn acceptor(cert: Arc<ServedCert>) -> TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsAcceptor::from(Arc::new(config))
}
