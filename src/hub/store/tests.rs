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
    let history = txn.open_table(HISTORY).unwrap();
    assert_eq!(
        history.len().unwrap(),
        3,
        "older entries are deleted, not only skipped"
    );
}
