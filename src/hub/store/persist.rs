//! The hub's side of the durable store: which topics and deletions wait for
//! the next commit, the flush requests of `sync = "always"`, and the store's
//! health as the writer last saw it (for `$sys.store` and `/healthz`).
//!
//! Nothing here touches the disk. A publish only marks its topic (an atomic
//! flag, and a short mutex the first time per commit); the writer takes what
//! is pending, and puts it back, in front and in order, when a commit fails:
//! a failed commit loses nothing the hub still holds.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::sync::{watch, Notify};

use super::{Change, STORE_TOPIC};
use crate::hub::Topic;
use crate::sync::MutexExt;

pub(super) enum Op {
    Dirty(Arc<Topic>),
    Delete(Arc<str>),
}

/// What a taken op needs to be put back after a failed commit.
pub(super) enum Undo {
    /// The topic and the seq committed before this attempt.
    Dirty(Arc<Topic>, u64),
    Delete(Arc<str>),
}

#[derive(Default)]
struct Pending {
    ops: Vec<Op>,
    /// Flush requests so far ([`Persist::flushed`]).
    requested: u64,
}

/// Why the store does not commit, and since when (ms since the epoch).
#[derive(Clone, Debug)]
pub(super) struct Degraded {
    pub(super) error: String,
    pub(super) since: u64,
}

/// The hub's side of the store: what is waiting to be committed.
pub(crate) struct Persist {
    pending: Mutex<Pending>,
    pub(super) wake: Notify,
    /// The last flush request covered by a finished commit, and whether that
    /// commit succeeded.
    pub(super) done: watch::Sender<(u64, bool)>,
    always: bool,
    /// `Some` while commits fail (the writer sets it).
    degraded: Mutex<Option<Degraded>>,
}

impl Persist {
    /// `always`: commit as soon as something is marked.
    pub(crate) fn new(always: bool) -> Self {
        Persist {
            pending: Mutex::default(),
            wake: Notify::new(),
            done: watch::Sender::new((0, true)),
            always,
            degraded: Mutex::new(None),
        }
    }

    /// `sync = "always"`?
    pub(crate) fn always(&self) -> bool {
        self.always
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock_or_recover()
    }

    /// A publish changed `topic`: queue it for the next commit (once).
    /// `$sys.store` is not stored: it describes this process's store, and a
    /// restored copy would describe a past one.
    pub(crate) fn mark(&self, topic: &Arc<Topic>) {
        if &*topic.name == STORE_TOPIC {
            return;
        }
        if !topic.dirty.swap(true, Ordering::AcqRel) {
            self.pending().ops.push(Op::Dirty(topic.clone()));
            if self.always {
                self.wake.notify_one();
            }
        }
    }

    /// `name` was deleted: drop it from the store at the next commit.
    pub(crate) fn delete(&self, name: Arc<str>) {
        self.pending().ops.push(Op::Delete(name));
        self.wake.notify_one();
    }

    /// Waits until everything published before this call is committed; `false`
    /// when that commit failed, the store is degraded, or the writer stopped.
    pub(crate) async fn flushed(&self) -> bool {
        let ticket = {
            let mut p = self.pending();
            p.requested += 1;
            p.requested
        };
        self.wake.notify_one();
        let mut done = self.done.subscribe();
        let ok = done.wait_for(|d| d.0 >= ticket).await.map(|d| d.1);
        ok.unwrap_or(false)
    }

    /// Answers every flush request so far "not stored" without committing
    /// (the store is degraded and its next retry is not due).
    pub(super) fn refuse_flushes(&self) {
        let requested = self.pending().requested;
        self.done.send_replace((requested, false));
    }

    /// How many topics and deletions wait for a commit.
    pub(super) fn pending_count(&self) -> usize {
        self.pending().ops.len()
    }

    /// Why the store does not commit, while it does not.
    pub(super) fn degraded(&self) -> Option<Degraded> {
        self.degraded.lock_or_recover().clone()
    }

    pub(super) fn set_degraded(&self, d: Option<Degraded>) {
        *self.degraded.lock_or_recover() = d;
    }

    /// Takes what is pending: the changes to commit, what undoes taking them
    /// ([`Persist::put_back`]), and the last flush request they cover.
    pub(super) fn take(&self) -> (Vec<Change>, Vec<Undo>, u64) {
        let (ops, requested) = {
            let mut p = self.pending();
            (std::mem::take(&mut p.ops), p.requested)
        };
        let mut changes = Vec::with_capacity(ops.len());
        let mut undo = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                Op::Delete(name) => {
                    changes.push(Change::Delete(name.clone()));
                    undo.push(Undo::Delete(name));
                }
                Op::Dirty(t) => {
                    let st = t.lock();
                    t.dirty.store(false, Ordering::Release);
                    if t.deleted.load(Ordering::Acquire) {
                        continue;
                    }
                    let after = t.persisted.swap(st.seq, Ordering::AcqRel);
                    let frames = st
                        .history
                        .iter()
                        .filter(|f| f.seq() > after)
                        .map(|f| (f.seq(), f.text().clone()))
                        .collect();
                    changes.push(Change::Put {
                        name: t.name.clone(),
                        seq: st.seq,
                        ts: st.ts,
                        latest: st
                            .latest
                            .as_ref()
                            .map(|f| f.text().clone())
                            .unwrap_or_default(),
                        feed: st.source.feed.clone(),
                        frames,
                        keep_from: st.history.front().map_or(st.seq + 1, |f| f.seq()),
                    });
                    drop(st);
                    undo.push(Undo::Dirty(t, after));
                }
            }
        }
        (changes, undo, requested)
    }

    /// A commit of what [`Persist::take`] gave failed: queue it again, ahead
    /// of what was marked since and in its order (a deletion stays before a
    /// later re-creation of the same name). A topic is written again from
    /// what its history ring holds then, after the seq committed before.
    pub(super) fn put_back(&self, undo: Vec<Undo>) {
        let mut again = Vec::with_capacity(undo.len());
        for u in undo {
            match u {
                Undo::Delete(name) => again.push(Op::Delete(name)),
                Undo::Dirty(t, after) => {
                    t.persisted.store(after, Ordering::Release);
                    // Marked again since the take: it is queued already.
                    if !t.dirty.swap(true, Ordering::AcqRel) {
                        again.push(Op::Dirty(t));
                    }
                }
            }
        }
        let mut p = self.pending();
        again.append(&mut p.ops);
        p.ops = again;
    }
}
