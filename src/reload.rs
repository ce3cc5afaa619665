//! Hot reload: watch the config file, the feeds directory, the dashboards
//! directory and the files the config reads (`[server.tls]`'s certificate and
//! key), and reload the ticker when they change.
//!
//! The watcher only signals: [`ConfigWatch::changed`] returns once per burst
//! of changes, and its caller (the ticker) loads, validates, diffs and applies (an invalid config changes nothing and is reported on
//! `$sys.config`). Directories are watched rather than files, because editors
//! save by writing a temp file and renaming it over the original (which would
//! orphan a watch on the file's inode). Only events about the config file, the
//! feeds directory itself or a file inside it count; others in the same
//! directory (an editor's swap file, an unrelated file) are ignored, unless the
//! config file is a symlink, whose target may change under other names.
//!
//! Events are debounced: a burst of writes yields one reload of the final state,
//! after [`DEBOUNCE`] of quiet (or at most [`MAX_DELAY`] after the burst began, so
//! a file rewritten without pause is still followed). A half-written file whose
//! rest arrives after the debounce is first refused as invalid, and the write of
//! the rest is another event that reloads again: the ticker always ends on the
//! files' final state. After each burst the watches are renewed, so a feeds
//! directory that was deleted and created again, or created after start, is
//! followed too; a reload that changes `feeds_dir` moves the watch to the new
//! directory (and reloads once more, for what was written there before).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::sync::RwLockExt;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

/// Quiet time after the last event before reloading.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(250);

/// Longest a continuous burst of events may postpone a reload.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(2);

/// Watches of the config file, the feeds directory and the dashboards
/// directory; [`ConfigWatch::changed`] waits for the next burst of changes.
pub(crate) struct ConfigWatch {
    watcher: RecommendedWatcher,
    /// One message per relevant event (a full channel already holds one).
    events: mpsc::Receiver<()>,
    config: PathBuf,
    /// Read by the watcher's thread; swapped when a reload moves `feeds_dir`.
    feeds_dir: Arc<RwLock<PathBuf>>,
    dash_dir: PathBuf,
    /// Other files the config reads (a renewed certificate is a reload);
    /// read by the watcher's thread, swapped by [`ConfigWatch::follow_files`].
    files: Arc<RwLock<Vec<PathBuf>>>,
    /// The directories watched now.
    dirs: Vec<PathBuf>,
}

impl ConfigWatch {
    /// Starts watching `config`, `feeds_dir`, `dashboards_dir` and `files`;
    /// `None` (and a warning logged) when the platform's watcher cannot be
    /// created.
    pub(crate) fn new(
        config: &Path,
        feeds_dir: &Path,
        dashboards_dir: &Path,
        files: &[PathBuf],
    ) -> Option<Self> {
        let config = absolute(config);
        let feeds_dir = Arc::new(RwLock::new(absolute(feeds_dir)));
        let dash_dir = absolute(dashboards_dir);
        let files = Arc::new(RwLock::new(
            files.iter().map(|f| absolute(f)).collect::<Vec<_>>(),
        ));
        // A config that is a symlink (e.g. a Kubernetes ConfigMap, which swaps a
        // `..data` link) changes through other names in its directory: there, any
        // event in that directory counts.
        let via_link = std::fs::symlink_metadata(&config).is_ok_and(|m| m.file_type().is_symlink());
        let relevant = {
            let (config, feeds_dir, dash_dir, files) = (
                config.clone(),
                feeds_dir.clone(),
                dash_dir.clone(),
                files.clone(),
            );
            let config_dir = parent_dir(&config);
            move |p: &Path| {
                let feeds_dir = feeds_dir.read_or_recover();
                p == config
                    || p == *feeds_dir
                    || p.parent() == Some(&**feeds_dir)
                    || p == dash_dir
                    || p.parent() == Some(&*dash_dir)
                    || (via_link && p.parent() == Some(&*config_dir))
                    || files.read_or_recover().iter().any(|f| f == p)
            }
        };
        let (tx, events) = mpsc::channel::<()>(16);
        let watcher =
            match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                let Ok(ev) = res else {
                    // Overflow and the like: something may have changed, reload.
                    let _ = tx.try_send(());
                    return;
                };
                let interesting = !matches!(ev.kind, notify::EventKind::Access(_))
                    && (ev.need_rescan() || ev.paths.iter().any(|p| relevant(p)));
                if interesting {
                    // A full channel already holds a pending reload.
                    let _ = tx.try_send(());
                }
            }) {
                Ok(w) => w,
                Err(e) => {
                    warn!(error = %e, "Cannot watch the config; hot reload is off.");
                    return None;
                }
            };
        let mut watch = ConfigWatch {
            watcher,
            events,
            config,
            feeds_dir,
            dash_dir,
            files,
            dirs: Vec::new(),
        };
        let feeds_dir = watch.feeds_dir();
        watch.dirs = watch.watched(&feeds_dir);
        arm(&mut watch.watcher, &watch.dirs);
        Some(watch)
    }

    /// Waits for a change, then until no event arrived for [`DEBOUNCE`] (at
    /// most [`MAX_DELAY`]), and renews the watches before returning, so that a
    /// reload that follows misses nothing. `None` when the watcher stopped.
    pub(crate) async fn changed(&mut self) -> Option<()> {
        self.events.recv().await?;
        let give_up = Instant::now() + MAX_DELAY;
        loop {
            let quiet = (Instant::now() + DEBOUNCE).min(give_up);
            tokio::select! {
                _ = tokio::time::sleep_until(quiet) => break,
                got = self.events.recv() => got?,
            }
        }
        arm(&mut self.watcher, &self.dirs);
        Some(())
    }

    /// Moves the watch of the feeds directory to `dir` (the `feeds_dir` of the
    /// config now in force). Returns whether it moved: then the caller reloads
    /// once more, for anything written there before its watch was armed.
    pub(crate) fn follow_feeds_dir(&mut self, dir: &Path) -> bool {
        let now = absolute(dir);
        if now == self.feeds_dir() {
            return false;
        }
        info!(feeds_dir = %now.display(), "feeds_dir changed; watching the new directory.");
        let new_dirs = self.watched(&now);
        *self.feeds_dir.write_or_recover() = now;
        for old in self.dirs.iter().filter(|d| !new_dirs.contains(d)) {
            let _ = self.watcher.unwatch(old);
        }
        self.dirs = new_dirs;
        arm(&mut self.watcher, &self.dirs);
        true
    }

    /// Follows `files` (those the config in force reads) from now on.
    pub(crate) fn follow_files(&mut self, files: &[PathBuf]) {
        let now: Vec<PathBuf> = files.iter().map(|f| absolute(f)).collect();
        if now == *self.files.read_or_recover() {
            return;
        }
        *self.files.write_or_recover() = now;
        let feeds_dir = self.feeds_dir();
        let new_dirs = self.watched(&feeds_dir);
        for old in self.dirs.iter().filter(|d| !new_dirs.contains(d)) {
            let _ = self.watcher.unwatch(old);
        }
        self.dirs = new_dirs;
        arm(&mut self.watcher, &self.dirs);
    }

    fn feeds_dir(&self) -> PathBuf {
        self.feeds_dir.read_or_recover().clone()
    }

    /// The directories to watch for a feeds directory `feeds_dir`.
    fn watched(&self, feeds_dir: &Path) -> Vec<PathBuf> {
        let mut dirs = vec![
            parent_dir(&self.config),
            parent_dir(feeds_dir),
            feeds_dir.to_path_buf(),
            parent_dir(&self.dash_dir),
            self.dash_dir.clone(),
        ];
        // A file's directory, not the file: a renewal renames a new file (or
        // a new symlink, as certbot's `live/`) over the old one.
        dirs.extend(self.files.read_or_recover().iter().map(|f| parent_dir(f)));
        dirs
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// (Re-)adds a watch on each of `dirs` that exists now.
///
/// Every watch is renewed, not only missing ones: a directory removed and
/// created again may get the same inode number, and notify drops its own watch
/// of a deleted directory, so neither can tell us reliably that a watch is
/// stale. Renewing is one syscall per directory, emits no event, and is done
/// before the reload reads the files, so nothing written in between is missed.
fn arm(watcher: &mut RecommendedWatcher, dirs: &[PathBuf]) {
    let mut done: Vec<&PathBuf> = Vec::new();
    for dir in dirs {
        if done.contains(&dir) {
            continue;
        }
        done.push(dir);
        let _ = watcher.unwatch(dir);
        if dir.is_dir() {
            if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                warn!(dir = %dir.display(), error = %e, "Cannot watch directory.");
            }
        }
    }
}
