//! `file`: watches one file. `tail` publishes each appended line (starting at
//! the end of a file that exists at start); `whole` publishes the file's content
//! whenever it changes (an empty file is skipped: a write in progress).
//!
//! A tail leaves where it stopped (file, inode, offset after its last complete
//! line) in the feed's handoff, so a retry, or the successor of a feed whose
//! config changed but whose `path` did not, goes on from there: no line is lost
//! or repeated across the restart.
//!
//! The watch is on the parent directory (notify), filtered by file name, because
//! writers replace files by rename (editors, log rotation) and a watch on the
//! file itself would follow the old inode. A slow tick re-checks the file too, as
//! notify can drop events (full queues, network filesystems). A tail survives
//! truncation (the size falls below our position: read again from 0) and
//! rotation by rename (the path names another inode: finish the old file, then
//! read the new one from its start). A missing file is waited for, with the feed
//! left `starting`, never polled in a hot loop.
//!
//! Reads are capped at the feed's `max_item_bytes`: a `whole` file larger than
//! that is an error of the feed (once per change of the file, never read past
//! the cap), a `tail` line larger than that is an error of the feed and is
//! skipped up to its newline; the tail reads in bounded steps, never the whole
//! rest of the file at once.

use std::ffi::OsString;
use std::io::SeekFrom;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use notify::{RecursiveMode, Watcher as _};
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

use super::limit::read_capped;
use super::options::{self, Bad, KindOptions};
use super::registry::{self, BuiltinKind};
use super::{Feed, FeedContext, ItemTooLarge, Pipeline};
use serde::Deserialize;
use std::sync::Arc;

/// How often the file is re-checked without a notify event.
const RECHECK_EVERY: Duration = Duration::from_secs(1);

/// A watched file.
#[derive(Debug, Clone)]
pub(super) struct FileFeed {
    options: FileOptions,
    pipeline: Pipeline,
}

impl FileFeed {
    /// A watch described by `options`.
    pub(super) fn new(options: FileOptions) -> Self {
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
        let mut tail = Tail {
            resume: ctx.handoff().take::<Resume>().filter(|r| r.path == path),
            ..Tail::default()
        };
        let mut last_whole: Option<String> = None;
        let mut oversized = None;
        let mut first = true;
        loop {
            match self.options.mode {
                FileMode::Tail => {
                    tail.check(self, &ctx, path, first).await?;
                    if let Some(resume) = tail.resume_point(path) {
                        ctx.handoff().put(resume);
                    }
                }
                FileMode::Whole => {
                    let content = match read_whole(path, ctx.max_item_bytes()).await? {
                        Whole::Missing => None,
                        Whole::Content(c) => Some(c),
                        Whole::TooLarge(stamp, e) => {
                            // Reported once per version of the file.
                            if oversized != Some(stamp) {
                                oversized = Some(stamp);
                                ctx.item_error(format!("{}: {e}", path.display()));
                            }
                            None
                        }
                    };
                    if let Some(content) = content {
                        oversized = None;
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
            if first
                && tail.file.is_none()
                && last_whole.is_none()
                && !tokio::fs::try_exists(path).await.unwrap_or(false)
            {
                tracing::info!(path = %path.display(), "Waiting for the file to appear.");
                ctx.waiting(format!("waiting for {} to exist", path.display()));
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

/// What [`read_whole`] found.
enum Whole {
    /// The file does not exist (yet).
    Missing,
    /// Its content.
    Content(String),
    /// Larger than the cap: its (length, mtime), to report it once.
    TooLarge((u64, i64), ItemTooLarge),
}

/// The file's whole content, read only up to `max` bytes.
async fn read_whole(path: &Path, max: usize) -> anyhow::Result<Whole> {
    let file = match File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Whole::Missing),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let meta = file.metadata().await?;
    let stamp = (meta.len(), meta.mtime());
    if meta.len() > max as u64 {
        let e = ItemTooLarge {
            len: Some(meta.len()),
            max,
        };
        return Ok(Whole::TooLarge(stamp, e));
    }
    match read_capped(file, max)
        .await
        .with_context(|| format!("cannot read {}", path.display()))?
    {
        Ok(bytes) => Ok(Whole::Content(String::from_utf8_lossy(&bytes).into_owned())),
        // Grew while being read.
        Err(e) => Ok(Whole::TooLarge(stamp, e)),
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
    /// Inside a line that passed the cap: skip to its newline.
    skipping: bool,
    /// Where the previous run of this feed stopped, used at the first open.
    resume: Option<Resume>,
}

/// Where a tail stopped: the next run goes on from `offset` of the same file.
#[derive(Debug)]
struct Resume {
    path: std::path::PathBuf,
    id: (u64, u64),
    /// Just after the last complete line published.
    offset: u64,
    /// Still inside a line that passed the cap there.
    skipping: bool,
}

/// Bytes a tail reads at a time.
const TAIL_STEP: usize = 64 * 1024;

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
            self.skipping = false;
            self.pos = match self.resume.take() {
                // The file the previous run read, not truncated since.
                Some(r) if start && r.id == self.id && r.offset <= opened.len() => {
                    self.skipping = r.skipping;
                    r.offset
                }
                // Replaced or truncated while no run was reading it: all of it is new.
                Some(_) if start => 0,
                _ if start => opened.len(),
                _ => 0,
            };
            file.seek(SeekFrom::Start(self.pos)).await?;
            self.partial.clear();
            self.file = Some(file);
            ctx.mark_running();
        } else if meta.len() < self.pos {
            // Truncated in place: start over.
            tracing::info!(path = %path.display(), "File truncated; reading from the start.");
            self.pos = 0;
            self.partial.clear();
            self.skipping = false;
            if let Some(f) = &mut self.file {
                f.seek(SeekFrom::Start(0)).await?;
            }
        }
        self.read_new(feed, ctx).await
    }

    /// Where the next run should go on from, while a file is open.
    fn resume_point(&self, path: &Path) -> Option<Resume> {
        self.file.as_ref()?;
        Some(Resume {
            path: path.to_path_buf(),
            id: self.id,
            offset: self.pos - self.partial.len() as u64,
            skipping: self.skipping,
        })
    }

    /// Reads to the end of the open file and publishes each complete line. At
    /// most [`TAIL_STEP`] bytes are read at a time; a line past the cap is
    /// reported and skipped up to its newline.
    async fn read_new(&mut self, feed: &FileFeed, ctx: &FeedContext) -> anyhow::Result<()> {
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        let max = ctx.max_item_bytes();
        let mut chunk = vec![0u8; TAIL_STEP];
        loop {
            let n = file
                .read(&mut chunk)
                .await
                .context("cannot read the file")?;
            if n == 0 {
                return Ok(());
            }
            self.pos += n as u64;
            let mut rest = &chunk[..n];
            while !rest.is_empty() {
                let end = rest.iter().position(|b| *b == b'\n');
                let part = &rest[..end.unwrap_or(rest.len())];
                rest = end.map_or(&[][..], |i| &rest[i + 1..]);
                if !self.skipping {
                    if self.partial.len() + part.len() > max {
                        self.partial = Vec::new();
                        self.skipping = true;
                        ctx.item_error(format!(
                            "a line of the file: {}",
                            ItemTooLarge { len: None, max }
                        ));
                    } else {
                        self.partial.extend_from_slice(part);
                    }
                }
                if end.is_none() {
                    break;
                }
                if std::mem::take(&mut self.skipping) {
                    continue;
                }
                let line = std::mem::take(&mut self.partial);
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches('\r');
                if !line.trim().is_empty() {
                    feed.document(ctx, line);
                }
            }
        }
    }
}

/// `kind = "file"`.
pub(crate) const KIND: BuiltinKind = BuiltinKind {
    name: "file",
    check: registry::check::<FileOptions>,
    build: |c| Ok(Arc::new(FileFeed::new(registry::options(c)?))),
};

/// How a `file` feed reads its file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FileMode {
    /// Each appended line is one document.
    #[default]
    Tail,
    /// The whole content is one document, read on every change.
    Whole,
}

/// `file`: watches a file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileOptions {
    /// The file; a relative path is relative to the config file's directory.
    pub(crate) path: PathBuf,
    /// `tail` (default) or `whole`.
    #[serde(default)]
    pub(crate) mode: FileMode,
    /// JSON Pointer (RFC 6901) into each document.
    pub(crate) extract: Option<String>,
    /// How each document is read.
    #[serde(default)]
    pub(crate) format: options::Format,
    /// `whole` mode: after each read, delete this feed's topics that the
    /// document no longer has.
    #[serde(default)]
    pub(crate) prune: bool,
}

impl KindOptions for FileOptions {
    fn resolve(options: &mut toml::Table, base_dir: &Path) {
        if matches!(options.get("path"), Some(toml::Value::String(p)) if Path::new(p).is_relative())
        {
            options::resolve_path(options, "path", base_dir);
        }
    }
    fn check(&self, bad: Bad<'_>) {
        options::extract(&self.extract, bad);
        if self.prune && self.mode != FileMode::Whole {
            bad(
                "prune",
                "`prune = true` needs `mode = \"whole\"` (a tailed file has no full set of topics)"
                    .into(),
            );
        }
    }
}
