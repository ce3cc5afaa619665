//! Hot reload: watch the config file and the feeds directory, and reload the
//! ticker when they change.
//!
//! The watcher only signals; [`crate::Ticker::reload`] loads, validates, diffs
//! and applies. Directories are watched rather than files, because editors save
//! by writing a temp file and renaming it over the original (which would orphan
//! a watch on the file's inode). Events are debounced: a burst of writes (or a
//! half-written file followed by the rest) yields one reload of the final state.
//! After each burst the watches are re-armed, so a feeds directory that was
//! deleted and created again, or created after start, is followed too.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::Ticker;

/// Quiet time after the last event before reloading.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// Watches `config` and `feeds_dir` and reloads `ticker` on changes, until the
/// ticker shuts down.
pub async fn watch(ticker: Ticker, config: &Path, feeds_dir: &Path) {
    let (tx, mut rx) = mpsc::channel::<()>(16);
    let mut watcher =
        match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res {
                if !matches!(ev.kind, notify::EventKind::Access(_)) {
                    let _ = tx.try_send(());
                }
            }
        }) {
            Ok(w) => w,
            Err(e) => {
                warn!(error = %e, "Cannot watch the config; hot reload is off.");
                return;
            }
        };
    let config_dir = parent_dir(config);
    let feeds_dir = feeds_dir.to_path_buf();
    let mut armed = Vec::new();
    arm(
        &mut watcher,
        &[
            config_dir.clone(),
            parent_dir(&feeds_dir),
            feeds_dir.clone(),
        ],
        &mut armed,
    );
    let cancel = ticker.shutdown_token();
    loop {
        tokio::select! {
            got = rx.recv() => if got.is_none() { return },
            _ = cancel.cancelled() => return,
        }
        // Debounce: wait until no event arrived for DEBOUNCE.
        loop {
            tokio::select! {
                _ = tokio::time::sleep(DEBOUNCE) => break,
                got = rx.recv() => if got.is_none() { return },
                _ = cancel.cancelled() => return,
            }
        }
        arm(
            &mut watcher,
            &[
                config_dir.clone(),
                parent_dir(&feeds_dir),
                feeds_dir.clone(),
            ],
            &mut armed,
        );
        debug!("Config files changed; reloading.");
        let _ = ticker.reload().await;
    }
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// (Re-)adds a watch on each existing directory that is not watched yet, and
/// forgets the ones that vanished.
fn arm(
    watcher: &mut RecommendedWatcher,
    dirs: &[PathBuf],
    armed: &mut Vec<(PathBuf, Option<u64>)>,
) {
    use std::os::unix::fs::MetadataExt;
    for dir in dirs {
        let ino = std::fs::metadata(dir)
            .ok()
            .filter(|m| m.is_dir())
            .map(|m| m.ino());
        let known = armed.iter().position(|(d, _)| d == dir);
        match (known, ino) {
            (Some(i), now) if armed[i].1 == now => {}
            (known, now) => {
                if let Some(i) = known {
                    let _ = watcher.unwatch(dir);
                    armed.remove(i);
                }
                if now.is_some() {
                    match watcher.watch(dir, RecursiveMode::NonRecursive) {
                        Ok(()) => armed.push((dir.clone(), now)),
                        Err(e) => {
                            warn!(dir = %dir.display(), error = %e, "Cannot watch directory.")
                        }
                    }
                } else {
                    armed.push((dir.clone(), None));
                }
            }
        }
    }
}
