//! The feed kinds: [`BUILTIN`], the table of the built-in kinds, each defined
//! whole in its own file (its options, their checks and its constructor), and
//! [`Kinds`], the registry that adds an embedder's custom kinds. The config
//! loader asks the registry about every `[[feed]]` (built-in or custom) in one
//! pass, and the supervisor builds feeds through it.
//!
//! Adding a built-in kind: a new file in `feeds/` with its options type
//! (implementing [`KindOptions`]), its [`Feed`] and its `KIND`, plus its name
//! in `builtin_kinds!` (`feeds/mod.rs`), which declares the module and lists it
//! in [`BUILTIN`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::options::KindOptions;
use super::{DynFeed, Feed, BUILTIN};
use crate::config::{Blame, Config, ConfigErrors, FeedConfig, FeedKinds};

/// The names of the built-in kinds, as accepted in `kind = ".."`.
pub fn builtin_kinds() -> impl Iterator<Item = &'static str> {
    BUILTIN.iter().map(|k| k.name)
}

/// One built-in kind: its name, the check of its options, its constructor.
pub(crate) struct BuiltinKind {
    /// `kind = "name"`.
    pub(crate) name: &'static str,
    /// Resolves relative paths in the options and checks them whole.
    pub(crate) check: fn(&mut toml::Table, &Path) -> Vec<(Blame, String)>,
    /// Builds the runnable feed of a checked config.
    pub(crate) build: fn(&FeedConfig) -> anyhow::Result<Arc<dyn DynFeed>>,
}

/// The built-in kind named `name`.
fn builtin(name: &str) -> Option<&'static BuiltinKind> {
    BUILTIN.iter().find(|k| k.name == name)
}

/// A built-in kind's check: resolve paths, deserialize (naming every bad
/// key), then the value checks of [`KindOptions::check`].
pub(crate) fn check<O: KindOptions>(
    options: &mut toml::Table,
    base_dir: &Path,
) -> Vec<(Blame, String)> {
    O::resolve(options, base_dir);
    let mut problems = Vec::new();
    let parsed = crate::config::de::<O>(options.clone(), &mut problems);
    let mut out: Vec<(Blame, String)> = problems
        .into_iter()
        .map(|(key, msg)| (key.map_or(Blame::Kind, Blame::Key), msg))
        .collect();
    if let Some(o) = parsed {
        o.check(&mut |key, msg| out.push((Blame::Key(key.to_string()), msg)));
    }
    out
}

/// A checked feed's options as its kind's type.
pub(crate) fn options<O: KindOptions>(config: &FeedConfig) -> anyhow::Result<O> {
    toml::Value::Table(config.options.clone())
        .try_into::<O>()
        .map_err(|e| anyhow::anyhow!("invalid options: {}", e.message().trim()))
}

type Factory = dyn Fn(&toml::Table) -> anyhow::Result<Arc<dyn DynFeed>> + Send + Sync;
type Check = dyn Fn(&toml::Table) -> Result<(), String> + Send + Sync;

/// Custom feed kinds registered from Rust, by kind name.
#[derive(Clone, Default)]
pub struct Kinds {
    factories: HashMap<String, Arc<Factory>>,
    /// Per kind: do a table's options deserialize into the kind's options type?
    /// Run when a config is loaded, so bad options refuse the whole config.
    checks: HashMap<String, Arc<Check>>,
}

impl std::fmt::Debug for Kinds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.factories.keys()).finish()
    }
}

impl Kinds {
    /// Registers `kind`: `make` builds a feed from the options of a `[[feed]]`
    /// table (every key but `name`, `kind`, `topic`, `enabled`, `stale_after`,
    /// `transform`, `max_item_bytes`, `history`, `ttl`, `on_remove`),
    /// deserialized into `O` (use [`toml::Table`] to take them raw).
    pub fn register<O, F, M>(&mut self, kind: &str, make: M)
    where
        O: serde::de::DeserializeOwned,
        F: Feed,
        M: Fn(O) -> anyhow::Result<F> + Send + Sync + 'static,
    {
        let factory = move |options: &toml::Table| -> anyhow::Result<Arc<dyn DynFeed>> {
            let options = parse_options::<O>(options).map_err(anyhow::Error::msg)?;
            Ok(Arc::new(make(options)?))
        };
        self.factories.insert(kind.to_string(), Arc::new(factory));
        let check = |options: &toml::Table| parse_options::<O>(options).map(drop);
        self.checks.insert(kind.to_string(), Arc::new(check));
    }

    /// Is `kind` registered?
    pub fn contains(&self, kind: &str) -> bool {
        self.factories.contains_key(kind)
    }

    /// Builds the runnable feed for a config.
    pub(crate) fn build(&self, config: &FeedConfig) -> anyhow::Result<Arc<dyn DynFeed>> {
        if let Some(kind) = builtin(&config.kind) {
            return (kind.build)(config);
        }
        match self.factories.get(&config.kind) {
            Some(make) => make(&config.options),
            None => anyhow::bail!("kind {:?} is not registered in this program", config.kind),
        }
    }
}

/// Deserializes a custom kind's options table into `O`.
fn parse_options<O: serde::de::DeserializeOwned>(options: &toml::Table) -> Result<O, String> {
    toml::Value::Table(options.clone())
        .try_into::<O>()
        .map_err(|e| format!("invalid options: {}", e.message().trim()))
}

impl FeedKinds for Kinds {
    fn check(
        &self,
        kind: &str,
        options: &mut toml::Table,
        base_dir: &Path,
    ) -> Option<Vec<(Blame, String)>> {
        if let Some(k) = builtin(kind) {
            return Some((k.check)(options, base_dir));
        }
        let check = self.checks.get(kind)?;
        Some(
            check(options)
                .err()
                .map(|m| (Blame::Table, m))
                .into_iter()
                .collect(),
        )
    }

    fn expected(&self) -> String {
        builtin_kinds().collect::<Vec<_>>().join(", ")
    }
}

/// The config's public constructors know the built-in kinds; a ticker with
/// custom kinds loads its config through its own [`Kinds`]
/// (`TickerBuilder::config_path`, `TickerBuilder::config_toml`).
impl Config {
    /// The built-in default config.
    pub fn builtin() -> Config {
        Config::builtin_with(&Kinds::default())
    }

    /// Loads `path` and every `*.toml` of its feeds directory: what `tickerd
    /// check` reports and what a reload would apply.
    ///
    /// # Errors
    /// Every problem found, each with file, line and feed.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Config::load_with(path, &Kinds::default())
    }

    /// Parses config text read from `file` (named in errors). No feeds or
    /// dashboards directory is read.
    ///
    /// # Errors
    /// Every problem found, each with file, line and feed.
    pub fn from_toml(text: &str, file: &Path) -> Result<Config, ConfigErrors> {
        Config::parse(text, file, None, &Kinds::default())
    }
}
