//! Configuration: `config.toml`, every `*.toml` in `feeds_dir` (feeds) and
//! every `*.toml` in `dashboards_dir` (one dashboard each, see [`dashboard`]).
//!
//! Loading is two steps, as in Vector: serde reads raw tables whose keys keep
//! their positions, then validation turns each section and feed into a checked
//! [`Config`] and collects *every* error (one bad section hides nothing), each
//! naming file, line (the value's own), feed, and what would be right: the
//! typed structs have `deny_unknown_fields`, unknown names get the nearest valid
//! one, durations and lists get an example. A config either loads whole or not
//! at all: nothing here starts or stops anything. What is allowed but likely a
//! mistake is a warning ([`Config::warnings`]).

mod auth;
pub mod dashboard;
mod doc;
mod error;
mod explain;
mod feed;
mod section_checks;
mod sections;
mod tls;

pub use auth::{JwtAlgorithm, JwtConfig, JwtKey};
pub use dashboard::{Dashboard, FeedHealth, Level, Panel, PanelKind, Threshold};
use doc::Doc;
use error::{one_error, plain_error, toml_error};
pub use error::{ConfigError, ConfigErrors, Location};
use section_checks::{check_access, check_history, check_sections};
pub(crate) use sections::parse_cidr;
pub use sections::{
    parse_listen, AccessConfig, ClusterConfig, DashboardConfig, HistoryConfig, LimitsConfig,
    OneOrMany, ServerConfig, SyncPolicy,
};
pub use tls::TlsConfig;
pub(crate) use tls::{certified_key, ServedCert};

pub use crate::transform::Transform;
pub(crate) use explain::de;
pub(crate) use feed::{Blame, FeedKinds};
pub use feed::{FeedConfig, FeedHistory, OnRemove};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The config used when no `config.toml` is given or found: synthetic stock
/// tickers and this host's metrics, offline.
pub const BUILTIN: &str = include_str!("builtin.toml");

/// The dashboards of the built-in config: the shipped examples of
/// `dashboards/`, compiled in, so a run without any config file shows them.
pub const BUILTIN_DASHBOARDS: [(&str, &str); 2] = [
    ("host", include_str!("../../dashboards/host.toml")),
    ("markets", include_str!("../../dashboards/markets.toml")),
];

/// A table whose keys and values keep their positions in the text.
type RawTable = feed::RawFeed;

/// The main file's sections, each kept raw so that every key's line is known
/// and one bad section does not hide the errors of the others.
#[derive(Deserialize)]
struct RawMain {
    server: Option<RawTable>,
    limits: Option<RawTable>,
    history: Option<RawTable>,
    dashboard: Option<RawTable>,
    cluster: Option<RawTable>,
    auth: Option<auth::RawAuth>,
    #[serde(default)]
    access: Vec<RawTable>,
    #[serde(default)]
    feed: Vec<feed::RawFeed>,
}

/// The top-level names of a main file.
const MAIN_SECTIONS: [&str; 8] = [
    "server",
    "limits",
    "history",
    "dashboard",
    "cluster",
    "auth",
    "access",
    "feed",
];

#[derive(Deserialize)]
struct RawFeedsFile {
    #[serde(default)]
    feed: Vec<feed::RawFeed>,
}

/// A loaded, validated config.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// `[server]`
    pub server: ServerConfig,
    /// `[limits]`
    pub limits: LimitsConfig,
    /// `[history]`
    pub history: HistoryConfig,
    /// `[dashboard]`
    pub dashboard: DashboardConfig,
    /// `[cluster]`, when present.
    pub cluster: Option<ClusterConfig>,
    /// `[[access]]` tables: tokens with limited read permissions.
    pub access: Vec<AccessConfig>,
    /// `[auth.jwt]`, when present: JSON Web Tokens as read tokens.
    pub jwt: Option<JwtConfig>,
    /// Every feed of the main file and of `feeds_dir`, in load order.
    pub feeds: Vec<FeedConfig>,
    /// The main file, when loaded from disk (what hot reload watches).
    pub path: Option<PathBuf>,
    /// The resolved feeds directory, when loaded from disk.
    pub feeds_dir: Option<PathBuf>,
    /// What is allowed but probably a mistake (a `feeds_dir` that does not
    /// exist): `tickerd check` prints these, the server logs them.
    pub warnings: Vec<ConfigError>,
    /// Every dashboard by name (its file name without `.toml`).
    pub dashboards: BTreeMap<String, Dashboard>,
    /// The resolved dashboards directory, when loaded from disk.
    pub dashboards_dir: Option<PathBuf>,
}

/// A feed or cluster node name: `[a-z0-9_-]+` (it appears in topics such as
/// `$sys.feeds.{name}`, in lease keys and in URLs).
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The kinds a config may name: the feed registry (`feeds::Kinds`).
pub(crate) type KindFilter<'a> = &'a dyn FeedKinds;

impl Config {
    /// The built-in default config, with `kinds` for its feeds.
    pub(crate) fn builtin_with(kinds: KindFilter<'_>) -> Config {
        let mut config = Config::parse(BUILTIN, Path::new("<built-in>"), None, kinds)
            .expect("the built-in config is valid");
        for (name, text) in BUILTIN_DASHBOARDS {
            let file = PathBuf::from(format!("<built-in>/dashboards/{name}.toml"));
            let d = dashboard::parse_dashboard(name, text, &file)
                .expect("the built-in dashboards are valid");
            config.dashboards.insert(name.to_string(), d);
        }
        let unfed = dashboard::unreachable_panels(&config.dashboards, &config.feeds);
        config.warnings.extend(unfed);
        config
    }

    /// Loads `path` and every `*.toml` of its feeds directory, with `kinds`.
    ///
    /// # Errors
    /// Every problem found, each with file, line and feed.
    pub(crate) fn load_with(path: &Path, kinds: KindFilter<'_>) -> Result<Config, ConfigErrors> {
        let text = read_main(path)?;
        Config::parse_main(path, &text, kinds)
    }

    /// Like [`Config::load_with`], but `None` when the file is empty or
    /// only whitespace: an editor that truncates before writing leaves it so
    /// for a moment (it is read once, so the answer matches what was parsed).
    pub(crate) fn load_unless_blank(
        path: &Path,
        custom: KindFilter<'_>,
    ) -> Result<Option<Config>, ConfigErrors> {
        let text = read_main(path)?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        Config::parse_main(path, &text, custom).map(Some)
    }

    /// Parses `text`, read from the main config file at `path`.
    fn parse_main(path: &Path, text: &str, custom: KindFilter<'_>) -> Result<Config, ConfigErrors> {
        let base = path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        let mut config = Config::parse(text, path, Some(&base), custom)?;
        config.path = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses config text, with `custom` for its feeds' kinds. With `base_dir`,
    /// `feeds_dir` and `dashboards_dir` are read relative to it; without,
    /// neither directory is read.
    ///
    /// # Errors
    /// Every problem found, each with file, line and feed.
    pub(crate) fn parse(
        text: &str,
        file: &Path,
        base_dir: Option<&Path>,
        custom: KindFilter<'_>,
    ) -> Result<Config, ConfigErrors> {
        let raw: RawMain = toml::from_str(text).map_err(|e| toml_error(file, text, &e))?;
        let mut doc = Doc::new(file, text);
        doc.check_top_level(&MAIN_SECTIONS, &[]);
        let server: ServerConfig = doc.named("server", raw.server).unwrap_or_default();
        let limits: LimitsConfig = doc.named("limits", raw.limits).unwrap_or_default();
        let history: HistoryConfig = doc.named("history", raw.history).unwrap_or_default();
        let dashboard: DashboardConfig = doc.named("dashboard", raw.dashboard).unwrap_or_default();
        let cluster: Option<ClusterConfig> = doc.named("cluster", raw.cluster);
        let mut jwt: Option<JwtConfig> = raw
            .auth
            .and_then(|a| a.jwt)
            .and_then(|r| doc.section("auth.jwt", "[auth.jwt]", r));
        if let Some(jwt) = &mut jwt {
            let base = base_dir.unwrap_or(Path::new("."));
            auth::load_keys(jwt, base, &mut |key, msg| doc.error(key, msg));
        }
        let mut server = server;
        if let Some(tls) = &mut server.tls {
            let base = base_dir.unwrap_or(Path::new("."));
            tls::load(tls, base, &mut |key, msg| doc.error(key, msg));
        }
        let access: Vec<AccessConfig> = raw
            .access
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| {
                doc.section(&format!("access{i}"), &format!("[[access]] #{}", i + 1), r)
            })
            .collect();
        let here = Path::new(".");
        let mut feeds = Vec::new();
        let mut warnings = Vec::new();
        let in_file = FeedsIn {
            base: base_dir.unwrap_or(here),
            kinds: custom,
            max_history: limits.max_history,
        };
        in_file.collect(raw.feed, file, text, &mut feeds, &mut doc.errors);
        let feeds_dir = base_dir.map(|b| b.join(&server.feeds_dir));
        if let Some(dir) = &feeds_dir {
            match feed_files(dir) {
                Err(e) => doc.error("server.feeds_dir", e),
                // Only when written: the default `feeds` may well be absent.
                Ok(None) if doc.lines.contains_key("server.feeds_dir") => {
                    warnings.push(ConfigError {
                        location: Some(doc.at("server.feeds_dir")),
                        feed: None,
                        message: format!(
                            "[server] feeds_dir = {:?} ({}): no such directory, 0 feeds from it",
                            server.feeds_dir.display().to_string(),
                            dir.display()
                        ),
                    })
                }
                Ok(None) => {}
                Ok(Some(files)) => {
                    for path in files {
                        load_feeds_file(&path, &in_file, &mut feeds)
                            .unwrap_or_else(|e| doc.errors.extend(e));
                    }
                }
            }
        }
        let mut seen: HashMap<&str, &Location> = HashMap::new();
        for f in &feeds {
            if let Some(first) = seen.insert(&f.name, &f.location) {
                doc.errors.push(ConfigError {
                    location: Some(f.location.clone()),
                    feed: Some(f.name.clone()),
                    message: format!(
                        "duplicate feed name: \"{}\" is already defined at {first}; \
                         feed names must be unique (rename or remove one)",
                        f.name
                    ),
                });
            }
        }
        let dashboards_dir = base_dir.map(|b| b.join(&server.dashboards_dir));
        let dashboards = match &dashboards_dir {
            Some(dir) => dashboard::load_dir(dir, &mut doc.errors),
            None => BTreeMap::new(),
        };
        check_sections(&server, &limits, &cluster, &mut doc);
        check_history(&history, &cluster, &mut doc);
        check_access(&server, &access, &mut doc);
        if !doc.errors.is_empty() {
            // In file order (the main file first), then by line.
            let mut files: Vec<PathBuf> = Vec::new();
            for e in &doc.errors {
                if let Some(l) = &e.location {
                    if !files.contains(&l.file) {
                        files.push(l.file.clone());
                    }
                }
            }
            let order = |e: &ConfigError| {
                e.location.as_ref().map_or((usize::MAX, 0), |l| {
                    let file = files.iter().position(|f| *f == l.file);
                    (file.unwrap_or(usize::MAX), l.line)
                })
            };
            doc.errors.sort_by_key(order);
            return Err(ConfigErrors(doc.errors));
        }
        // A feed without its own cap takes `[limits]`'s, resolved here so that
        // a change of either is a change of the feed (it restarts on reload).
        for f in &mut feeds {
            f.max_item_bytes.get_or_insert(limits.max_item_bytes);
        }
        warnings.extend(dashboard::unreachable_panels(&dashboards, &feeds));
        let mut history = history;
        if let (Some(path), Some(base)) = (&history.path, base_dir) {
            history.path = Some(base.join(path));
        }
        Ok(Config {
            server,
            limits,
            history,
            dashboard,
            cluster,
            access,
            jwt,
            feeds,
            path: None,
            feeds_dir,
            warnings,
            dashboards,
            dashboards_dir,
        })
    }

    /// The feed named `name`.
    pub fn feed(&self, name: &str) -> Option<&FeedConfig> {
        self.feeds.iter().find(|f| f.name == name)
    }
}

/// What every `[[feed]]` of a config is checked against, whichever file it is in.
struct FeedsIn<'a> {
    /// The main file's directory (relative paths in options).
    base: &'a Path,
    /// The kinds a feed may name.
    kinds: KindFilter<'a>,
    /// `[limits] max_history`: the largest `history` count.
    max_history: usize,
}

impl FeedsIn<'_> {
    /// Checks each raw `[[feed]]` of `file`, adding it to `feeds` or its
    /// problems to `errors`.
    fn collect(
        &self,
        raw: Vec<feed::RawFeed>,
        file: &Path,
        text: &str,
        feeds: &mut Vec<FeedConfig>,
        errors: &mut Vec<ConfigError>,
    ) {
        for r in raw {
            match feed::parse_feed(r, file, text, self.base, self.kinds, self.max_history) {
                Ok(f) => feeds.push(f),
                Err(e) => errors.extend(e),
            }
        }
    }
}

/// The `*.toml` files of `dir`, sorted; `None` when it does not exist.
fn feed_files(dir: &Path) -> Result<Option<Vec<PathBuf>>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read directory {}: {e}", dir.display())),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(Some(files))
}

/// Like [`feed_files`], where a missing directory has none.
fn toml_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    feed_files(dir).map(Option::unwrap_or_default)
}

/// Adds the feeds of one file of `feeds_dir`.
///
/// # Errors
/// Every problem of that file.
fn load_feeds_file(
    path: &Path,
    in_file: &FeedsIn<'_>,
    feeds: &mut Vec<FeedConfig>,
) -> Result<(), Vec<ConfigError>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![plain_error(path, format!("cannot read: {e}"))])?;
    let raw: RawFeedsFile = toml::from_str(&text).map_err(|e| toml_error(path, &text, &e).0)?;
    let mut doc = Doc::new(path, &text);
    doc.check_top_level(&["feed"], &[]);
    in_file.collect(raw.feed, path, &text, feeds, &mut doc.errors);
    match doc.errors.is_empty() {
        true => Ok(()),
        false => Err(doc.errors),
    }
}

/// The main config file's text.
fn read_main(path: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|e| one_error(path, format!("cannot read: {e}")))
}

#[cfg(test)]
mod tests;
