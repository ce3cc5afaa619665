//! `file`: watches one file. `tail` publishes each appended line (starting at
//! the end of a file that exists at start); `whole` publishes the file's content
//! whenever it changes (an empty file is skipped: a write in progress).
//!
//! The watch is on the parent directory (notify), filtered by file name, because
//! writers replace files by rename (editors, log rotation) and a watch on the
//! file itself would follow the old inode. A slow tick re-checks the file too, as
//! notify can drop events (full queues, network filesystems). A tail survives
//! truncation (the size falls below our position: read again from 0) and
//! rotation by rename (the path names another inode: finish the old file, then
//! read the new one from its start). A missing file is waited for, with the feed
//! left `starting`, never polled in a hot loop.

use std::ffi::OsString;
use std::io::SeekFrom;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use notify::{RecursiveMode, Watcher as _};
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

use super::{Feed, FeedContext, Pipeline};
use crate::config::{FileMode, FileOptions};

/// How often the file is re-checked without a notify event.
const RECHECK_EVERY: Duration = Duration::from_secs(1);

/// A watched file.
#[derive(Debug, Clone)]
pub struct FileFeed {
    options: FileOptions,
    pipeline: Pipeline,
}

impl FileFeed {
    /// A watch described by `options`.
    pub fn new(options: FileOptions) -> Self {
        FileFeed {
            pipeline: Pipeline::new(options.extract.as_deref(), options.format),
            options,
        }
    }

    /// Publishes one document; a bad one is that item's error. With `prune`
    /// (whole mode) the document is the feed's whole set of topics.
    fn document(&self, ctx: &FeedContext, text: &str) {
        let published = if self.options.prune {
            ctx.publish_set(&self.pipeline, text)
        } else {
            ctx.publish_document(&self.pipeline, text)
        };
        if let Err(e) = published {
            ctx.item_error(format!("{e:#}"));
        }
    }
}

impl Feed for FileFeed {
    async fn run(&self, ctx: FeedContext) -> anyhow::Result<()> {
        let path = self.options.path.as_path();
        let (_watcher, mut changed) = watch(path)?;
        let mut tick = tokio::time::interval(RECHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tail = Tail::default();
        let mut last_whole: Option<String> = None;
        let mut first = true;
        loop {
            match self.options.mode {
                FileMode::Tail => tail.check(self, &ctx, path, first).await?,
                FileMode::Whole => {
                    if let Some(content) = read_whole(path).await? {
                        // Empty is a writer that truncated and has not written yet.
                        let fresh = last_whole.as_deref() != Some(content.as_str());
                        if fresh && !content.trim().is_empty() {
                            ctx.mark_running();
                            self.document(&ctx, &content);
                            last_whole = Some(content);
                        }
                    }
                }
            }
            if first && tail.file.is_none() && last_whole.is_none() {
                tracing::info!(path = %path.display(), "Waiting for the file to appear.");
            }
            first = false;
            tokio::select! {
                _ = changed.recv() => {}
                _ = tick.tick() => {}
                _ = ctx.cancelled() => return Ok(()),
            }
        }
    }
}

/// Watches `path`'s directory; the receiver gets a signal (coalesced) whenever
/// an event names `path`'s file.
fn watch(path: &Path) -> anyhow::Result<(notify::RecommendedWatcher, mpsc::Receiver<()>)> {
    let name: OsString = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?
        .to_owned();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => ".".into(),
    };
    let (tx, rx) = mpsc::channel(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let ours = match event {
            Ok(e) => e
                .paths
                .iter()
                .any(|p| p.file_name() == Some(name.as_os_str())),
            // An overflow or watch error: re-check to be safe.
            Err(_) => true,
        };
        if ours {
            let _ = tx.try_send(());
        }
    })
    .context("cannot create a file watcher")?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .with_context(|| format!("cannot watch {}", dir.display()))?;
    Ok((watcher, rx))
}

/// The file's whole content, or `None` while it does not exist.
async fn read_whole(path: &Path) -> anyhow::Result<Option<String>> {
    match tokio::fs::read(path).await {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// An open tail: the file, which inode it is, where we are, and the unfinished
/// last line.
#[derive(Default)]
struct Tail {
    file: Option<File>,
    id: (u64, u64),
    pos: u64,
    partial: Vec<u8>,
}

impl Tail {
    /// Brings the tail up to date with the file at `path`. At `start`, a file
    /// that exists is read from its end; one that appears later, from 0.
    async fn check(
        &mut self,
        feed: &FileFeed,
        ctx: &FeedContext,
        path: &Path,
        start: bool,
    ) -> anyhow::Result<()> {
        let meta = match tokio::fs::metadata(path).await {
            Ok(m) => Some(m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("cannot stat {}", path.display())),
        };
        let Some(meta) = meta else {
            // Renamed away and not yet replaced: finish what was written.
            return self.read_new(feed, ctx).await;
        };
        let id = (meta.dev(), meta.ino());
        if self.file.is_some() && id != self.id {
            // Rotated: the old file may still have had lines appended.
            self.read_new(feed, ctx).await?;
            self.file = None;
        }
        if self.file.is_none() {
            let mut file = match File::open(path).await {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
            };
            let opened = file.metadata().await?;
            self.id = (opened.dev(), opened.ino());
            self.pos = if start { opened.len() } else { 0 };
            file.seek(SeekFrom::Start(self.pos)).await?;
            self.partial.clear();
            self.file = Some(file);
            ctx.mark_running();
        } else if meta.len() < self.pos {
            // Truncated in place: start over.
            tracing::info!(path = %path.display(), "File truncated; reading from the start.");
            self.pos = 0;
            self.partial.clear();
            if let Some(f) = &mut self.file {
                f.seek(SeekFrom::Start(0)).await?;
            }
        }
        self.read_new(feed, ctx).await
    }

    /// Reads to the end of the open file and publishes each complete line.
    async fn read_new(&mut self, feed: &FileFeed, ctx: &FeedContext) -> anyhow::Result<()> {
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        let mut bytes = Vec::new();
        let n = file
            .read_to_end(&mut bytes)
            .await
            .context("cannot read the file")?;
        self.pos += n as u64;
        self.partial.extend_from_slice(&bytes);
        let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return Ok(());
        };
        let rest = self.partial.split_off(end + 1);
        let complete = std::mem::replace(&mut self.partial, rest);
        for line in complete.split(|b| *b == b'\n') {
            let line = String::from_utf8_lossy(line);
            let line = line.trim_end_matches('\r');
            if !line.trim().is_empty() {
                feed.document(ctx, line);
            }
        }
        Ok(())
    }
}
