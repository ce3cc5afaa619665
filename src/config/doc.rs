//! One config file being validated: where each key was written (so an error
//! names its line) and the errors found so far.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use toml::Spanned;

use super::{de, ConfigError, Location, RawTable};

/// One file being validated: where each key was written, and what is wrong.
pub(super) struct Doc<'a> {
    pub(super) file: &'a Path,
    pub(super) text: &'a str,
    /// `server` → its header's line, `server.listen` → the key's line.
    pub(super) lines: HashMap<String, Location>,
    pub(super) errors: Vec<ConfigError>,
}

impl<'a> Doc<'a> {
    pub(super) fn new(file: &'a Path, text: &'a str) -> Self {
        Doc {
            file,
            text,
            lines: HashMap::new(),
            errors: Vec::new(),
        }
    }

    /// Where `key` (`server.listen`) was written: its own line, else its
    /// section's, else line 1.
    pub(super) fn at(&self, key: &str) -> Location {
        let mut k = key;
        loop {
            if let Some(l) = self.lines.get(k) {
                return l.clone();
            }
            match k.rsplit_once('.') {
                Some((head, _)) => k = head,
                None => {
                    return Location {
                        file: self.file.to_path_buf(),
                        line: 1,
                    }
                }
            }
        }
    }

    pub(super) fn error(&mut self, key: &str, message: String) {
        let location = Some(self.at(key));
        self.errors.push(ConfigError {
            location,
            feed: None,
            message,
        });
    }

    /// Refuses top-level names that are neither `sections` nor plain `keys`
    /// (a dashboard's `title`), suggesting the nearest. A section is shown as
    /// the unknown name was written (`[sever]` → `[server]`, `[[panels]]` →
    /// `[[panel]]`), a key as `` `title` ``.
    pub(super) fn check_top_level(&mut self, sections: &[&str], keys: &[&str]) {
        let Ok(top) = toml::from_str::<BTreeMap<Spanned<String>, toml::Value>>(self.text) else {
            return; // the typed parse reports the syntax error
        };
        let known: Vec<&str> = sections.iter().chain(keys).copied().collect();
        for (name, value) in &top {
            let name_str = name.get_ref().as_str();
            if known.contains(&name_str) {
                continue;
            }
            let shown = |n: &str| match value {
                _ if keys.contains(&n) => format!("`{n}`"),
                toml::Value::Table(_) => format!("[{n}]"),
                toml::Value::Array(a) if a.iter().all(toml::Value::is_table) => format!("[[{n}]]"),
                _ => format!("`{n}`"),
            };
            let what = match shown(name_str).starts_with('[') {
                true => "section",
                false => "key",
            };
            let hint = match crate::transform::nearest(name_str, &known) {
                Some(near) => format!("; did you mean {}?", shown(near)),
                None => String::new(),
            };
            let all: Vec<String> = known.iter().map(|s| shown(s)).collect();
            let location = Some(Location::new(self.file, self.text, name.span().start));
            self.errors.push(ConfigError {
                location,
                feed: None,
                message: format!(
                    "unknown {what} {}{hint} (expected one of {})",
                    shown(name_str),
                    all.join(", ")
                ),
            });
        }
    }

    /// [`Doc::section`] for an optional `[name]` table.
    pub(super) fn named<T: serde::de::DeserializeOwned>(
        &mut self,
        name: &str,
        raw: Option<RawTable>,
    ) -> Option<T> {
        raw.and_then(|r| self.section(name, &format!("[{name}]"), r))
    }

    /// Deserializes one section, recording where each of its keys is and an
    /// error (at the key's line) for each bad key. `label` names the section in
    /// messages (`[server]`, `[[access]] #2`).
    pub(super) fn section<T: serde::de::DeserializeOwned>(
        &mut self,
        key: &str,
        label: &str,
        raw: RawTable,
    ) -> Option<T> {
        let (file, text) = (self.file, self.text);
        self.lines
            .insert(key.to_string(), Location::new(file, text, raw.span().start));
        let table: toml::Table = raw
            .into_inner()
            .into_iter()
            .map(|(k, v)| {
                let at = Location::new(file, text, k.span().start);
                self.lines.insert(format!("{key}.{}", k.get_ref()), at);
                (k.into_inner(), v.into_inner())
            })
            .collect();
        let mut problems = Vec::new();
        let value = de::<T>(table, &mut problems);
        for (k, msg) in problems {
            // The message names its key (`de`); the key picks the line.
            match k {
                Some(k) => self.error(&format!("{key}.{k}"), format!("{label} {msg}")),
                None => self.error(key, format!("{label} {msg}")),
            }
        }
        value
    }
}
