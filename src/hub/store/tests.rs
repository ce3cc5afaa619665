//! Unit tests of `store`.

use super::*;
use crate::hub::Hub;
use redb::ReadableTableMetadata;
use serde_json::json;

/// Commits what `persist` holds, as the writer does.
fn commit(store: &Store, persist: &Persist) {
    let (changes, _, _) = persist.take();
    store.commit(&changes).unwrap();
}

/// What is stored is trimmed to the history ring (the first commit and
/// the ones after it), a deletion removes a topic and its history, and the
/// epoch is kept: a reopened store gives back exactly the ring.
#[test]
fn commits_keep_the_ring_and_deletions_and_the_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::new(3, Arc::default());
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.epoch_or("e1").unwrap(), "e1");
    let persist = Arc::new(Persist::new(false));
    assert!(hub.inner.persist.set(persist.clone()).is_ok());
    for i in 1..=5 {
        hub.publish("a.b", &json!(i)).unwrap();
    }
    hub.publish("a.gone", &json!(0)).unwrap();
    commit(&store, &persist);
    for i in 6..=8 {
        hub.publish("a.b", &json!(i)).unwrap();
    }
    assert!(hub.delete_topic("a.gone"));
    commit(&store, &persist);
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.epoch_or("e2").unwrap(), "e1", "the first epoch stays");
    let topics = store.load(3).unwrap();
    assert_eq!(topics.len(), 1, "{topics:?}");
    let t = &topics[0];
    assert_eq!((t.name.as_str(), t.seq), ("a.b", 8));
    let seqs: Vec<u64> = t.history.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, [6, 7, 8]);
    assert_eq!(t.latest, t.history[2].1);
    let txn = store.db.begin_read().unwrap();
    let batches = txn.open_table(BATCHES).unwrap();
    let stored: usize = batches
        .iter()
        .unwrap()
        .map(|b| b.unwrap().1.value().len())
        .sum();
    assert_eq!(stored, 3, "older entries are deleted, not only skipped");
}

/// A store written by an earlier version (one `history` row per update) is
/// read back whole, merged with the rows written since, and trimmed by the
/// next commit.
#[test]
fn history_rows_of_earlier_versions_are_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let txn = store.db.begin_write().unwrap();
    {
        let mut topics = txn.open_table(TOPICS).unwrap();
        let mut history = txn.open_table(HISTORY).unwrap();
        topics.insert("a.b", (2, 0, "f2", "")).unwrap();
        history.insert(("a.b", 1), "f1").unwrap();
        history.insert(("a.b", 2), "f2").unwrap();
    }
    txn.commit().unwrap();
    let t = &store.load(3).unwrap()[0];
    assert_eq!(t.history, [(1, "f1".into()), (2, "f2".into())]);

    let hub = Hub::new(3, Arc::default());
    let persist = Arc::new(Persist::new(false));
    assert!(hub.inner.persist.set(persist.clone()).is_ok());
    for i in 1..=5 {
        hub.publish("a.b", &json!(i)).unwrap();
    }
    commit(&store, &persist);
    let t = &store.load(3).unwrap()[0];
    let seqs: Vec<u64> = t.history.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, [3, 4, 5]);
    let txn = store.db.begin_read().unwrap();
    assert_eq!(txn.open_table(HISTORY).unwrap().len().unwrap(), 0);
}

/// A failed commit loses nothing: what `take` gave is put back ahead of what
/// was marked since, in order, and the next take writes every frame after the
/// last committed seq once (a topic marked again meanwhile is not doubled).
#[test]
fn a_failed_commit_is_put_back_whole_and_in_order() {
    let hub = Hub::new(10, Arc::default());
    let persist = Arc::new(Persist::new(false));
    assert!(hub.inner.persist.set(persist.clone()).is_ok());
    hub.publish("a.x", &json!(1)).unwrap();
    hub.publish("a.y", &json!(1)).unwrap();
    let (changes, undo, _) = persist.take();
    assert_eq!(changes.len(), 2);
    // Meanwhile: a.x changes again, a.y is deleted.
    hub.publish("a.x", &json!(2)).unwrap();
    assert!(hub.delete_topic("a.y"));
    persist.put_back(undo);
    let (changes, _, _) = persist.take();
    let seen: Vec<String> = changes
        .iter()
        .map(|c| match c {
            Change::Put { name, frames, .. } => {
                let seqs: Vec<u64> = frames.iter().map(|(s, _)| *s).collect();
                format!("put {name} {seqs:?}")
            }
            Change::Delete(name) => format!("delete {name}"),
        })
        .collect();
    assert_eq!(seen, ["put a.x [1, 2]", "delete a.y"]);
}
