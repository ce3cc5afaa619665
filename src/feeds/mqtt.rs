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
use super::options::{self, secs, Bad, KindOptions};
use super::registry::{self, BuiltinKind};
use super::{Feed, FeedContext, Pipeline};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Longest a connect (TCP, TLS and CONNACK) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest MQTT packet read: the item limit plus room for the topic name
/// (at most 64 KiB) and the fixed header.
fn max_packet_bytes(max_item_bytes: usize) -> usize {
    max_item_bytes + 64 * 1024 + 16
}

/// An MQTT subscription.
#[derive(Debug)]
pub(super) struct MqttFeed {
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
    pub(super) fn new(options: MqttOptions, feed: &str) -> anyhow::Result<Self> {
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

/// `kind = "mqtt"`.
pub(crate) const KIND: BuiltinKind = BuiltinKind {
    name: "mqtt",
    check: registry::check::<MqttOptions>,
    build: |c| Ok(Arc::new(MqttFeed::new(registry::options(c)?, &c.name)?)),
};

/// `mqtt`: subscribes to topic filters on an MQTT 3.1.1 broker.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MqttOptions {
    /// The broker, `mqtt://host:port` (default port 1883) or `mqtts://host:port`
    /// (TLS, default port 8883). Credentials go in `username`/`password`.
    pub(crate) url: String,
    /// Topic filters, e.g. `["sensors/+/temp", "plant/#"]`.
    pub(crate) subscribe: Vec<String>,
    /// Subscription QoS: 0 (at most once) or 1 (at least once; with the
    /// persistent session, messages sent while tickerd was away arrive on
    /// reconnect). Default 1.
    #[serde(default = "MqttOptions::default_qos")]
    pub(crate) qos: u8,
    /// The MQTT client id; default `tickerd-<feed name>`. The broker keeps the
    /// session under it, so it must be stable and unique per broker.
    pub(crate) client_id: Option<String>,
    /// `true` starts a fresh session on every connect (the broker forgets
    /// subscriptions and queued messages). Default `false`: a persistent session.
    #[serde(default)]
    pub(crate) clean_session: bool,
    /// User name, if the broker wants one.
    pub(crate) username: Option<String>,
    /// Password (with `username`); never logged.
    pub(crate) password: Option<options::Secret>,
    /// For `mqtts://`: a PEM file of CA certificates to trust instead of the
    /// public web roots (a broker with a private CA); relative to the config
    /// file's directory.
    pub(crate) ca_file: Option<PathBuf>,
    /// MQTT keep-alive: the client pings when idle this long; the broker drops
    /// a client silent for 1.5 times it. Default 30 s.
    #[serde(default = "secs::<30>", with = "humantime_serde")]
    pub(crate) keep_alive: Duration,
    /// JSON Pointer (RFC 6901) into each payload.
    pub(crate) extract: Option<String>,
    /// How each payload is read.
    #[serde(default)]
    pub(crate) format: options::Format,
}

impl MqttOptions {
    fn default_qos() -> u8 {
        1
    }
}

impl KindOptions for MqttOptions {
    fn resolve(options: &mut toml::Table, base_dir: &Path) {
        options::resolve_path(options, "ca_file", base_dir);
    }
    fn check(&self, bad: Bad<'_>) {
        options::extract(&self.extract, bad);
        check_mqtt(self, bad);
    }
}

fn check_mqtt(m: &MqttOptions, bad: Bad<'_>) {
    options::broker_url(&m.url, &["mqtt", "mqtts"], bad);
    if let Ok(url) = reqwest::Url::parse(&m.url) {
        if !url.username().is_empty() || url.password().is_some() {
            bad(
                "url",
                "put MQTT credentials in `username` and `password`, not in `url`".into(),
            );
        }
    }
    if m.ca_file.is_some() && !m.url.starts_with("mqtts:") {
        bad("ca_file", "`ca_file` is for mqtts:// URLs".into());
    }
    if m.subscribe.is_empty() {
        bad(
            "subscribe",
            "`subscribe` must list at least one topic filter, e.g. [\"sensors/#\"]".into(),
        );
    }
    for f in &m.subscribe {
        let levels: Vec<&str> = f.split('/').collect();
        let ok = !f.is_empty()
            && levels.iter().enumerate().all(|(i, l)| {
                (*l == "#" && i == levels.len() - 1)
                    || *l == "+"
                    || !(l.contains('#') || l.contains('+'))
            });
        if !ok {
            bad(
                "subscribe",
                format!(
                    "topic filter {f:?} is not valid: `+` must be a whole level, `#` the whole last level"
                ),
            );
        }
    }
    if m.qos > 1 {
        bad("qos", format!("qos {} is not supported: use 0 or 1", m.qos));
    }
    if m.client_id.as_deref() == Some("") {
        bad("client_id", "`client_id` must not be empty".into());
    }
    if m.password.is_some() && m.username.is_none() {
        bad("password", "`password` needs `username`".into());
    }
    if m.keep_alive < Duration::from_secs(1) {
        bad("keep_alive", "`keep_alive` must be at least 1s".into());
    }
}
