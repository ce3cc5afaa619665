//! Config errors: where something was written ([`Location`]) and what is
//! wrong with it ([`ConfigError`]); a config is refused with all of them
//! ([`ConfigErrors`]).

use std::fmt;
use std::path::{Path, PathBuf};

/// Where something was written: file and 1-based line.
#[derive(Debug, Clone, Eq)]
#[non_exhaustive]
pub struct Location {
    /// The file, as given or found.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
}

impl Location {
    pub(super) fn new(file: &Path, text: &str, offset: usize) -> Self {
        let upto = &text.as_bytes()[..offset.min(text.len())];
        Location {
            file: file.to_path_buf(),
            line: upto.iter().filter(|b| **b == b'\n').count() + 1,
        }
    }
}

/// Locations never make two configs differ: moving a feed is not a change.
impl PartialEq for Location {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One thing wrong with a config.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ConfigError {
    /// Where, when known.
    pub location: Option<Location>,
    /// The feed it is about, when it is about one.
    pub feed: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(loc) = &self.location {
            write!(f, "{loc}: ")?;
        }
        if let Some(feed) = &self.feed {
            write!(f, "feed \"{feed}\": ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every error found in a config; it is never empty.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

pub(super) fn plain_error(file: &Path, message: String) -> ConfigError {
    ConfigError {
        location: Some(Location {
            file: file.to_path_buf(),
            line: 1,
        }),
        feed: None,
        message,
    }
}

pub(super) fn one_error(file: &Path, message: String) -> ConfigErrors {
    ConfigErrors(vec![plain_error(file, message)])
}

pub(super) fn toml_error(file: &Path, text: &str, e: &toml::de::Error) -> ConfigErrors {
    let line = e
        .span()
        .map_or(1, |s| Location::new(file, text, s.start).line);
    ConfigErrors(vec![ConfigError {
        location: Some(Location {
            file: file.to_path_buf(),
            line,
        }),
        feed: None,
        message: e.message().trim().to_string(),
    }])
}
