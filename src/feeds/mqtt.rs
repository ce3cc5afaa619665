//! `mqtt`: subscribes to topic filters on an MQTT 3.1.1 broker (rumqttc); each
//! message's payload is decoded by the broker payload rule (`broker`) and
//! published with `{mqtt_topic}` / `{mqtt_levelN}` available to the template.
//!
//! One call of `run` is one connection: connect (bounded by [`CONNECT_TIMEOUT`]),
//! subscribe, mark the feed running, then read until the connection fails; every
//! way it ends is an `Err`, so the supervisor reconnects with its backoff.
//!
//! The session is persistent by default (`clean_session = false` under a stable
//! client id, `tickerd-<feed name>` unless set): the broker keeps the
//! subscriptions and queues QoS 1 messages while tickerd is away, and delivers
//! them on the next connect. We still SUBSCRIBE on every connect (it is
//! idempotent, and a changed `subscribe` list must take effect); the cost is that
//! a retained message is delivered again, which for a ticker is the current value.
//!
//! Reads are bounded: rumqttc refuses a packet over [`max_packet_bytes`] (that
//! fails the connection, as the protocol offers no way to skip one); a payload
//! within it but over the item limit is a counted item error.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rumqttc::{
    AsyncClient, ConnectionError, Event, MqttOptions as ClientOptions, Packet, QoS,
    SubscribeFilter, TlsConfiguration, Transport,
};

use super::broker::{self, SourceName};
use super::{Feed, FeedContext, Pipeline};
use crate::config::MqttOptions;

/// Longest a connect (TCP, TLS and CONNACK) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest MQTT packet read: the item limit plus room for the topic name
/// (at most 64 KiB) and the fixed header.
fn max_packet_bytes(max_item_bytes: usize) -> usize {
    max_item_bytes + 64 * 1024 + 16
}

/// An MQTT subscription.
#[derive(Debug)]
pub struct MqttFeed {
    options: MqttOptions,
    client_id: String,
    pipeline: Pipeline,
    /// rustls with the webpki roots (or `ca_file`), built once for `mqtts://`.
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl MqttFeed {
    /// A subscription described by `options`; `feed` (the feed's name) gives
    /// the default client id.
    ///
    /// # Errors
    /// The TLS configuration cannot be built (e.g. `ca_file` is unreadable).
    pub fn new(options: MqttOptions, feed: &str) -> anyhow::Result<Self> {
        let tls = if options.url.starts_with("mqtts:") {
            let mut roots = rustls::RootCertStore::empty();
            match &options.ca_file {
                Some(path) => {
                    use rustls::pki_types::{pem::PemObject, CertificateDer};
                    let shown = path.display();
                    let certs = CertificateDer::pem_file_iter(path)
                        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                        .with_context(|| {
                            format!("ca_file {shown}: cannot read PEM certificates")
                        })?;
                    let (added, _) = roots.add_parsable_certificates(certs);
                    if added == 0 {
                        anyhow::bail!("ca_file {shown} holds no usable CA certificate");
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .context("cannot build the TLS configuration")?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Some(Arc::new(config))
        } else {
            None
        };
        Ok(MqttFeed {
            client_id: options
                .client_id
                .clone()
                .unwrap_or_else(|| format!("tickerd-{feed}")),
            pipeline: Pipeline::new(options.extract.as_deref(), options.format),
            options,
            tls,
        })
    }

    fn qos(&self) -> QoS {
        if self.options.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        }
    }

    /// The client options for one connection.
    fn client_options(&self, max_item_bytes: usize) -> anyhow::Result<ClientOptions> {
        let url = reqwest::Url::parse(&self.options.url).context("invalid url")?;
        let host = url.host_str().context("url has no host")?.to_string();
        let port = url
            .port()
            .unwrap_or(if self.tls.is_some() { 8883 } else { 1883 });
        let mut o = ClientOptions::new(self.client_id.clone(), host, port);
        o.set_clean_session(self.options.clean_session)
            .set_keep_alive(self.options.keep_alive)
            .set_max_packet_size(max_packet_bytes(max_item_bytes), 64 * 1024);
        if let Some(user) = &self.options.username {
            let password = self.options.password.as_ref().map(|p| p.0.clone());
            o.set_credentials(user.clone(), password.unwrap_or_default());
        }
        if let Some(tls) = &self.tls {
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                tls.clone(),
            )));
        }
        Ok(o)
    }

    /// One connection, until it fails (always `Err`) or the feed is cancelled.
    async fn connection(&self, ctx: &FeedContext) -> anyhow::Result<()> {
        let (client, mut events) = AsyncClient::new(self.client_options(ctx.max_item_bytes())?, 16);
        let url = &self.options.url;
        let connack = tokio::select! {
            r = tokio::time::timeout(CONNECT_TIMEOUT, events.poll()) => r
                .map_err(|_| anyhow::anyhow!("connect to {url} timed out after {CONNECT_TIMEOUT:?}"))?
                .map_err(|e| connect_error(e, url))?,
            _ = ctx.cancelled() => return Ok(()),
        };
        let session_present = match connack {
            Event::Incoming(Packet::ConnAck(ack)) => ack.session_present,
            other => anyhow::bail!("{url}: expected CONNACK, got {other:?}"),
        };
        let filters = self
            .options
            .subscribe
            .iter()
            .map(|f| SubscribeFilter::new(f.clone(), self.qos()));
        client
            .try_subscribe_many(filters)
            .context("cannot queue the subscription")?;
        ctx.mark_running();
        tracing::info!(feed = %ctx.name(), url = %url, session_present, "MQTT broker connected.");
        loop {
            let event = tokio::select! {
                e = events.poll() => e.map_err(|e| read_error(e, url))?,
                _ = ctx.cancelled() => {
                    let _ = client.try_disconnect();
                    let _ = tokio::time::timeout(Duration::from_secs(1), events.poll()).await;
                    return Ok(());
                }
            };
            match event {
                Event::Incoming(Packet::Publish(p)) => {
                    let name = SourceName {
                        var: "mqtt_topic",
                        level: "mqtt_level",
                        separator: '/',
                        name: &p.topic,
                    };
                    broker::publish_message(
                        ctx,
                        &self.pipeline,
                        self.options.format,
                        name,
                        &p.payload,
                    );
                }
                Event::Incoming(Packet::SubAck(ack)) => {
                    let refused = ack
                        .return_codes
                        .iter()
                        .zip(&self.options.subscribe)
                        .filter(|(c, _)| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                        .map(|(_, f)| f.as_str())
                        .collect::<Vec<_>>();
                    if !refused.is_empty() {
                        anyhow::bail!("{url} refused the subscription to {refused:?}");
                    }
                }
                _ => {}
            }
        }
    }
}

/// A failed connect, said plainly (a refused CONNACK names why).
fn connect_error(e: ConnectionError, url: &str) -> anyhow::Error {
    use rumqttc::ConnectReturnCode as Code;
    match e {
        ConnectionError::ConnectionRefused(Code::BadUserNamePassword) => {
            anyhow::anyhow!("{url} refused the connection: bad user name or password")
        }
        ConnectionError::ConnectionRefused(Code::NotAuthorized) => {
            anyhow::anyhow!(
                "{url} refused the connection: not authorized (check username and password)"
            )
        }
        e => anyhow::anyhow!("cannot connect to {url}: {e}"),
    }
}

/// A connection that broke after connecting.
fn read_error(e: ConnectionError, url: &str) -> anyhow::Error {
    anyhow::anyhow!("MQTT connection to {url} failed: {e}")
}

impl Feed for MqttFeed {
    async fn run(&self, ctx: FeedContext) -> anyhow::Result<()> {
        self.connection(&ctx).await
    }
}
