//! What the built-in kinds' options share: the body [`Format`], a [`Secret`],
//! the value checks several kinds run, and [`KindOptions`], which each kind's
//! options type implements (see `super::registry`).
//!
//! Every kind's options type has `deny_unknown_fields`, so a misspelt key is an
//! error that names its line.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// Reports a problem with one key of a kind's options: `bad(key, message)`.
pub(crate) type Bad<'a> = &'a mut dyn FnMut(&str, String);

/// A built-in kind's options: deserialized from the `[[feed]]` table's keys
/// but the common ones, then checked beyond their types.
pub(crate) trait KindOptions: serde::de::DeserializeOwned {
    /// Makes relative paths in `options` relative to `base_dir` (the config
    /// file's directory), before they are deserialized.
    fn resolve(_options: &mut toml::Table, _base_dir: &Path) {}

    /// Value checks beyond types (URLs, pointers, positive intervals).
    fn check(&self, bad: Bad<'_>);
}

/// Resolves the path at `key` of `options` (a string) against `base_dir`.
pub(crate) fn resolve_path(options: &mut toml::Table, key: &str, base_dir: &Path) {
    if let Some(toml::Value::String(p)) = options.get_mut(key) {
        *p = base_dir.join(&*p).to_string_lossy().into_owned();
    }
}

/// How a document's body is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Format {
    /// Parse the body as JSON (the default).
    #[default]
    Json,
    /// Take the body as one JSON string.
    Text,
}

/// A secret from the config (a password, a token): deserialized as a plain
/// string, shown as `***` by `Debug`, so printing a config never leaks it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub(crate) struct Secret(pub(crate) String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

pub(crate) fn secs<const N: u64>() -> Duration {
    Duration::from_secs(N)
}

/// `key` must be a positive duration.
pub(crate) fn interval(d: &Duration, key: &str, bad: Bad<'_>) {
    if d.is_zero() {
        bad(key, format!("`{key}` must be greater than zero"));
    }
}

/// `extract` must be a JSON Pointer.
pub(crate) fn extract(e: &Option<String>, bad: Bad<'_>) {
    if let Some(p) = e {
        if !p.is_empty() && !p.starts_with('/') {
            bad(
                "extract",
                format!("extract {p:?} is not a JSON Pointer (it must be empty or start with `/`)"),
            );
        }
    }
}

/// `url` must parse and have one of `schemes`.
pub(crate) fn url(u: &str, schemes: &[&str], bad: Bad<'_>) {
    match reqwest::Url::parse(u) {
        Ok(url) if schemes.contains(&url.scheme()) => {}
        Ok(url) => bad(
            "url",
            format!(
                "url scheme `{}` is not one of {}",
                url.scheme(),
                schemes.join(", ")
            ),
        ),
        Err(e) => bad("url", format!("url {u:?}: {e}")),
    }
}

/// Every header must be a valid HTTP header.
pub(crate) fn headers(h: &BTreeMap<String, String>, bad: Bad<'_>) {
    for (k, v) in h {
        if http::HeaderName::from_bytes(k.as_bytes()).is_err()
            || http::HeaderValue::from_str(v).is_err()
        {
            bad(
                "headers",
                format!("header {k:?} is not a valid HTTP header"),
            );
        }
    }
}

/// The `headers` option as a header map (checked at load by [`headers`]).
///
/// # Errors
/// A name or value that is not a valid HTTP header.
pub(crate) fn header_map(h: &BTreeMap<String, String>) -> anyhow::Result<http::HeaderMap> {
    let mut map = http::HeaderMap::new();
    for (k, v) in h {
        map.insert(
            http::HeaderName::from_bytes(k.as_bytes())?,
            http::HeaderValue::from_str(v)?,
        );
    }
    Ok(map)
}

/// The HTTP client of the HTTP-based kinds: tickerd's `User-Agent`, and a
/// connect timeout when given.
///
/// # Errors
/// The client cannot be built (e.g. no TLS backend).
pub(crate) fn http_client(connect_timeout: Option<Duration>) -> anyhow::Result<reqwest::Client> {
    let mut builder =
        reqwest::Client::builder().user_agent(concat!("tickerd/", env!("CARGO_PKG_VERSION")));
    if let Some(t) = connect_timeout {
        builder = builder.connect_timeout(t);
    }
    anyhow::Context::context(builder.build(), "cannot build the HTTP client")
}

/// Checks a broker URL: parses, has one of `schemes` and a host. The URL is
/// shown with its password redacted.
pub(crate) fn broker_url(u: &str, schemes: &[&str], bad: Bad<'_>) {
    match reqwest::Url::parse(u) {
        Ok(url) if !schemes.contains(&url.scheme()) => bad(
            "url",
            format!(
                "url scheme `{}` is not one of {}",
                url.scheme(),
                schemes.join(", ")
            ),
        ),
        Ok(url) if url.host_str().is_none_or(str::is_empty) => bad(
            "url",
            format!(
                "url {:?} has no host (write e.g. {}://127.0.0.1)",
                redact_url(u),
                schemes[0]
            ),
        ),
        Ok(_) => {}
        Err(e) => bad("url", format!("url {:?}: {e}", redact_url(u))),
    }
}

/// `url` with any password replaced by `***`, for errors and logs.
pub(crate) fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) if u.has_host() => u.to_string(),
        // Unparsable, or no host to hold credentials (`u:pw@host` reads as a
        // path): drop whatever sits between the scheme and the last `@`.
        _ => match (url.find("://"), url.rfind('@')) {
            (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
            (None, Some(at)) => format!("***{}", &url[at..]),
            _ => url.to_string(),
        },
    }
}
