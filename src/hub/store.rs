//! The durable store behind `[history] path`: every topic's seq, latest update,
//! history ring and the epoch, kept in one [redb] file so that a restart is
//! invisible to resuming clients.
//!
//! The hub never waits for the disk on its publish path. A publish only marks
//! its topic dirty ([`persist`]). One writer task ([`writer`]) wakes about
//! every `sync_interval` (or, with `sync = "always"`, as soon as a topic is
//! marked), copies the frames each dirty topic gained since the last commit
//! out of its in-memory history ring, and commits them in one redb write
//! transaction on a blocking thread. What can be pending is bounded by what
//! the hub already holds: at most one history ring per topic. A commit that
//! fails (a full disk) keeps all of it pending and is retried until it works;
//! `$sys.store` and `/healthz` say so meanwhile.
//!
//! Crash safety is redb's: a commit is atomic and checksummed, so a process
//! killed mid-commit reopens at the previous commit (redb repairs its
//! allocator state on open; that is logged as a warning). With `interval`,
//! a crash loses at most the updates of the last interval, and what survives
//! is a prefix of every topic's seq sequence: never a gap or a duplicate.
//! With `always`, [`Persist::flushed`] lets a caller wait until everything
//! published before it is on disk (HTTP publishes do).
//!
//! Tables: `meta` (the epoch), `topics` (name -> seq, ts, latest frame, feed)
//! and `history_batches` ((name, first seq) -> the frames from that seq on,
//! one row per topic and commit), trimmed to the history ring's size. One row
//! per topic rather than per update keeps a commit's cost in its topics, not
//! its updates: under heavy publishing per-update rows made a commit of 200
//! topics x 100 updates take 2.7 s (debug build), longer than the interval.
//! `history` ((name, seq) -> frame) is how earlier versions kept history: it
//! is still read and trimmed, never written.

mod persist;
mod writer;

pub(crate) use persist::Persist;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::frame::{Frame, Kind, Text};
use redb::{Database, ReadableTable, TableDefinition};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
/// name -> (seq, ts, latest frame, feed name or "").
const TOPICS: TableDefinition<&str, (u64, u64, &str, &str)> = TableDefinition::new("topics");
/// (name, seq) -> frame: written by earlier versions; read and trimmed only.
const HISTORY: TableDefinition<(&str, u64), &str> = TableDefinition::new("history");
/// (name, first seq) -> the frames of that seq and the ones after it.
const BATCHES: TableDefinition<(&str, u64), Vec<&str>> = TableDefinition::new("history_batches");

/// The store's file inside `[history] path`.
pub(crate) const FILE: &str = "tickerd.redb";

/// The topic carrying the store's state: one update at start and one per
/// change between committing and failing to (docs/protocol.md).
pub(crate) const STORE_TOPIC: &str = "$sys.store";

/// Why the store could not be opened or read: always names the file.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the history store {path}: {reason}")]
pub struct StoreError {
    path: PathBuf,
    reason: String,
}

/// One topic as it was last committed.
#[derive(Debug)]
pub(crate) struct StoredTopic {
    pub(crate) name: String,
    pub(crate) seq: u64,
    pub(crate) ts: u64,
    pub(crate) latest: String,
    pub(crate) feed: Option<String>,
    /// `(seq, frame)`, oldest first.
    pub(crate) history: Vec<(u64, String)>,
}

/// The open store.
pub(crate) struct Store {
    db: Database,
    path: PathBuf,
}

enum Change {
    Put {
        name: Arc<str>,
        seq: u64,
        ts: u64,
        latest: Text,
        feed: Option<Arc<str>>,
        /// Frames after the last committed seq, oldest first.
        frames: Vec<(u64, Text)>,
        /// History entries below this seq are dropped.
        keep_from: u64,
    },
    Delete(Arc<str>),
}

impl Store {
    /// Opens (or creates) the store in directory `dir`.
    ///
    /// # Errors
    /// The directory cannot be created, the file cannot be read or written, it
    /// is held by another process, it is corrupt, or it has a newer format.
    pub(crate) fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_logging(dir, true)
    }

    /// [`Store::open`] after a failed commit dropped the store: the repair
    /// that follows is expected, and is not reported as a crash at each retry.
    fn reopen(dir: &Path) -> Result<Store, StoreError> {
        Store::open_logging(dir, false)
    }

    fn open_logging(dir: &Path, crash_warning: bool) -> Result<Store, StoreError> {
        let path = dir.join(FILE);
        let fail = |reason: String| StoreError {
            path: path.clone(),
            reason,
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
        let shown = path.display().to_string();
        let db = Database::builder()
            .set_repair_callback(move |s| {
                if s.progress() == 0.0 && !crash_warning {
                    debug!(path = %shown, "Repairing the history store after a failed commit.");
                } else if s.progress() == 0.0 {
                    warn!(path = %shown, "The history store was not closed cleanly (a crash?); repairing it: the last commit in progress is dropped.");
                }
            })
            .create(&path)
            .map_err(|e| {
                fail(match e {
                    redb::DatabaseError::DatabaseAlreadyOpen => {
                        "another tickerd process has it open".into()
                    }
                    redb::DatabaseError::UpgradeRequired(v) => format!(
                        "it has file format {v}, which this tickerd does not read (written by a newer or older version)"
                    ),
                    other => format!(
                        "{other} (a corrupt or foreign file: move it away to start with an empty store)"
                    ),
                })
            })?;
        let store = Store { db, path };
        // Create the tables now: a read-only or full disk fails here, at start.
        let txn = store.db.begin_write().map_err(|e| store.error(e))?;
        txn.open_table(META).map_err(|e| store.error(e))?;
        txn.open_table(TOPICS).map_err(|e| store.error(e))?;
        txn.open_table(HISTORY).map_err(|e| store.error(e))?;
        txn.open_table(BATCHES).map_err(|e| store.error(e))?;
        txn.commit().map_err(|e| store.error(e))?;
        Ok(store)
    }

    /// The directory holding the file.
    fn dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    fn error(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    /// The stored epoch, or `epoch` stored as it when there is none yet.
    pub(crate) fn epoch_or(&self, epoch: &str) -> Result<String, StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.error(e))?;
        let found = {
            let mut meta = txn.open_table(META).map_err(|e| self.error(e))?;
            let found = meta
                .get("epoch")
                .map_err(|e| self.error(e))?
                .map(|v| v.value().to_string());
            match found {
                Some(e) => e,
                None => {
                    meta.insert("epoch", epoch).map_err(|e| self.error(e))?;
                    epoch.to_string()
                }
            }
        };
        txn.commit().map_err(|e| self.error(e))?;
        Ok(found)
    }

    /// Every stored topic with (at most `history_size` of) its history.
    pub(crate) fn load(&self, history_size: usize) -> Result<Vec<StoredTopic>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        let topics = txn.open_table(TOPICS).map_err(|e| self.error(e))?;
        let history = txn.open_table(HISTORY).map_err(|e| self.error(e))?;
        let batches = txn.open_table(BATCHES).map_err(|e| self.error(e))?;
        let mut out = Vec::new();
        for row in topics.iter().map_err(|e| self.error(e))? {
            let (k, v) = row.map_err(|e| self.error(e))?;
            let name = k.value().to_string();
            let (seq, ts, latest, feed) = v.value();
            // By seq: a store may hold rows of both tables for one topic.
            let mut ring = std::collections::BTreeMap::new();
            if history_size > 0 {
                let from = seq.saturating_sub(history_size as u64 - 1);
                let n = name.as_str();
                for h in history
                    .range((n, from)..=(n, seq))
                    .map_err(|e| self.error(e))?
                {
                    let (k, v) = h.map_err(|e| self.error(e))?;
                    ring.insert(k.value().1, v.value().to_string());
                }
                for b in batches
                    .range((n, 0)..=(n, seq))
                    .map_err(|e| self.error(e))?
                {
                    let (k, v) = b.map_err(|e| self.error(e))?;
                    let first = k.value().1;
                    for (s, f) in (first..).zip(v.value()) {
                        if (from..=seq).contains(&s) {
                            ring.insert(s, f.to_string());
                        }
                    }
                }
            }
            let ring = ring.into_iter().collect();
            out.push(StoredTopic {
                name,
                seq,
                ts,
                latest: latest.to_string(),
                feed: (!feed.is_empty()).then(|| feed.to_string()),
                history: ring,
            });
        }
        Ok(out)
    }

    /// Commits `changes` in one durable transaction, in order.
    // redb's error is large; this runs once per commit, off the publish path.
    #[allow(clippy::result_large_err)]
    fn commit(&self, changes: &[Change]) -> Result<(), redb::Error> {
        let txn = self.db.begin_write()?;
        {
            let mut topics = txn.open_table(TOPICS)?;
            let mut history = txn.open_table(HISTORY)?;
            let mut batches = txn.open_table(BATCHES)?;
            for c in changes {
                match c {
                    Change::Put {
                        name,
                        seq,
                        ts,
                        latest,
                        feed,
                        frames,
                        keep_from,
                    } => {
                        let feed = feed.as_deref().unwrap_or("");
                        topics.insert(&**name, (*seq, *ts, latest.as_str(), feed))?;
                        // The frames are consecutive seqs: one row holds them all.
                        if let Some((first, _)) = frames.first() {
                            let batch: Vec<&str> = frames.iter().map(|(_, f)| f.as_str()).collect();
                            batches.insert((&**name, *first), batch)?;
                        }
                        let old = (&**name, 0)..(&**name, *keep_from);
                        // A row is kept while any of its frames is in the ring.
                        batches.retain_in(old.clone(), |(_, first), b| {
                            first + b.len() as u64 > *keep_from
                        })?;
                        history.retain_in(old, |_, _| false)?;
                    }
                    Change::Delete(name) => {
                        topics.remove(&**name)?;
                        let all = (&**name, 0)..=(&**name, u64::MAX);
                        batches.retain_in(all.clone(), |_, _| false)?;
                        history.retain_in(all, |_, _| false)?;
                    }
                }
            }
        }
        txn.commit()?;
        Ok(())
    }
}

impl super::Hub {
    /// Opens the durable store in `dir` and makes this hub durable: adopts the
    /// stored epoch (storing this hub's when the store is new), restores every
    /// stored topic with its seq, latest update and history, and spawns the
    /// writer on `tasks` (it commits what is left when `cancel` fires). Call
    /// once, at start, before anything publishes or subscribes.
    ///
    /// # Errors
    /// The store cannot be opened or read.
    pub(crate) fn open_store(
        &self,
        dir: &Path,
        sync: crate::config::SyncPolicy,
        interval: Duration,
        tasks: &tokio_util::task::TaskTracker,
        cancel: CancellationToken,
    ) -> Result<(), StoreError> {
        let store = Store::open(dir)?;
        let epoch = store.epoch_or(&self.epoch())?;
        self.set_epoch(&epoch);
        let history_size = self.inner.history_size.load(Ordering::Relaxed);
        let stored = store.load(history_size)?;
        let count = stored.len();
        for s in stored {
            let topic = match self.topic_or_insert(&s.name) {
                Ok(t) => t,
                Err(e) => {
                    warn!(topic = %s.name, error = %e, "A stored topic is not restored.");
                    continue;
                }
            };
            let mut st = topic.lock();
            st.seq = s.seq;
            st.ts = s.ts;
            let stored = |seq: u64, text: String| {
                let ts = frame_ts(&text);
                Frame::new(
                    Kind::Update,
                    topic.id,
                    topic.name.clone(),
                    seq,
                    ts,
                    text.into(),
                )
            };
            st.set_latest(Some(stored(s.seq, s.latest)));
            st.history = (s.history.into_iter()).map(|(q, f)| stored(q, f)).collect();
            st.source.feed = s.feed.map(Into::into);
            topic.persisted.store(s.seq, Ordering::Release);
        }
        let persist = Arc::new(Persist::new(sync == crate::config::SyncPolicy::Always));
        if self.inner.persist.set(persist.clone()).is_err() {
            warn!("The history store can be opened only once.");
            return Ok(());
        }
        info!(path = %store.path.display(), topics = count, epoch = %epoch, "History store opened.");
        tasks.spawn(writer::run_writer(
            store,
            self.clone(),
            persist,
            interval,
            cancel,
        ));
        Ok(())
    }
}

/// The `ts` of a stored update frame (`{"type":"update",...,"ts":N,...}`,
/// as `protocol::encode_update` writes it); 0 if it has none. The store keeps
/// frames' text only (its format predates [`Frame`]), so a frame loaded from
/// it gets its time back from the text, once, at start; nothing on the
/// delivery path reads the text.
fn frame_ts(frame: &str) -> u64 {
    frame
        .split_once(r#","ts":"#)
        .map(|(_, rest)| {
            rest.bytes()
                .take_while(u8::is_ascii_digit)
                .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'))
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
