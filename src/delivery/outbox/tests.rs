//! Unit tests of `outbox`.

use super::*;
use crate::delivery::pacer::Shard;
use crate::delivery::sink::{Direct, Wrote};
use crate::frame::Kind;
use std::sync::Mutex;
use std::time::Duration;

fn frame(topic: u32, seq: u64) -> Frame {
    let text = Text::from(format!("{topic}:{seq}"));
    Frame::new(Kind::Update, topic, "t".into(), seq, 0, text)
}

#[test]
fn conflates_past_cap_and_keeps_per_topic_order() {
    let ob = Arc::new(Outbox::new(2, Arc::default()));
    ob.push(frame(1, 1));
    ob.push(frame(2, 1));
    ob.push(frame(1, 2)); // over cap: conflated
    ob.push(frame(3, 1)); // over cap: conflated
    ob.push(frame(1, 3)); // replaces 1:2
    let mut out = Vec::new();
    assert_eq!(ob.take(&mut out), None);
    let got: Vec<&str> = out.iter().map(|f| f.text().as_str()).collect();
    assert_eq!(&got[..2], ["1:1", "2:1"]);
    let mut rest = got[2..].to_vec();
    rest.sort();
    assert_eq!(rest, ["1:3", "3:1"]);
}

#[test]
fn a_conflated_topic_stays_conflated_until_drained() {
    let ob = Arc::new(Outbox::new(1, Arc::default()));
    ob.push(frame(1, 1));
    ob.push(frame(1, 2)); // conflated
    let mut out = Vec::new();
    ob.take(&mut out);
    ob.push(frame(1, 3));
    ob.take(&mut out);
    let got: Vec<&str> = out.iter().map(|f| f.text().as_str()).collect();
    assert_eq!(got, ["1:1", "1:2", "1:3"]);
}

/// Replies count against the budget until released; one that would pass
/// it closes the outbox with `OverBudget`, frees what was queued and is
/// counted.
#[test]
fn replies_past_the_budget_close_the_outbox_and_free_it() {
    let metrics = Arc::new(Metrics::default());
    let ob = Arc::new(Outbox::new(4, metrics.clone()).with_budget(10));
    ob.try_push_control(Text::from("123456")).unwrap();
    ob.push(frame(1, 1));
    let taken = ob.take_all();
    let kinds: Vec<Kind> = taken.frames().map(|f| f.kind()).collect();
    assert_eq!(kinds, [Kind::Reply, Kind::Update]);
    // Taken but not yet written: still counted.
    ob.try_push_control(Text::from("1234")).unwrap();
    assert!(!ob.is_closing());
    ob.release(6);
    ob.try_push_control(Text::from("12345")).unwrap();
    assert!(!ob.is_closing(), "9 of 10 bytes");
    ob.push(frame(2, 1));
    ob.try_push_control(Text::from("xy")).unwrap();
    assert!(ob.is_closing(), "11 of 10 bytes");
    assert_eq!(metrics.closed_over_budget.load(Ordering::Relaxed), 1);
    let after = ob.take_all();
    assert_eq!(after.closing, Some(Closing::OverBudget));
    assert_eq!(after.frames().count(), 0, "queues freed at close");
}

/// A socket stand-in: records the frames it is given and answers
/// `answer` (all of it, part, or nothing).
struct Recorder {
    frames: Arc<Mutex<Vec<String>>>,
    answer: Arc<Mutex<Wrote>>,
}

impl Direct for Recorder {
    fn write_now(&self, text: &[u8]) -> Wrote {
        self.write_all_now(&mut std::iter::once(text), &mut Vec::new())
    }

    fn write_all_now(
        &self,
        frames: &mut dyn Iterator<Item = &[u8]>,
        _scratch: &mut Vec<u8>,
    ) -> Wrote {
        let answer = *self.answer.lock().unwrap();
        if answer != Wrote::Nothing {
            let batch: Vec<&str> = frames.map(|f| std::str::from_utf8(f).unwrap()).collect();
            self.frames.lock().unwrap().push(batch.join(" "));
        }
        answer
    }
}

struct Direct1 {
    ob: Arc<Outbox>,
    shard: Arc<Shard>,
    frames: Arc<Mutex<Vec<String>>>,
    answer: Arc<Mutex<Wrote>>,
}

fn direct(pace: Duration) -> Direct1 {
    let (frames, answer) = (Arc::default(), Arc::new(Mutex::new(Wrote::All)));
    let shard = Arc::new(Shard::default());
    let rec = Recorder {
        frames: Arc::clone(&frames),
        answer: Arc::clone(&answer),
    };
    let ob = Outbox::new(8, Arc::default()).with_direct(Box::new(rec), pace, shard.clone());
    Direct1 {
        ob: Arc::new(ob),
        shard,
        frames,
        answer,
    }
}

impl Direct1 {
    /// When the pacer would write this outbox.
    fn due(&self) -> Instant {
        match self.ob.lock().turn {
            Turn::Paced(at) => at,
            _ => Instant::now(),
        }
    }
}

fn woken(ob: &Outbox) -> bool {
    use futures_util::FutureExt;
    ob.wake.notified().now_or_never().is_some()
}

/// A parked, quiet connection's frame is written by the publisher; one
/// within the pace is queued for the pacer, which writes what gathered
/// in one write; the writer is woken for neither. While the writer is
/// not parked, frames queue for it.
#[test]
fn quiet_frames_go_direct_and_paced_ones_to_the_pacer() {
    let d = direct(Duration::from_secs(60));
    d.ob.push(frame(1, 1));
    assert!(d.frames.lock().unwrap().is_empty(), "not parked: queued");
    assert!(woken(&d.ob));
    assert_eq!(d.ob.take_all().frames().count(), 1);

    d.ob.park();
    d.ob.push(frame(1, 2));
    assert_eq!(*d.frames.lock().unwrap(), ["1:2"]);
    assert!(!d.ob.has_work());
    d.ob.push(frame(1, 3));
    d.ob.push(frame(2, 1));
    assert_eq!(d.frames.lock().unwrap().len(), 1, "within the pace: queued");
    assert_eq!(d.shard.scheduled(), 1, "scheduled once");
    assert!(!woken(&d.ob), "the writer sleeps on");
    d.ob.write_paced(d.due(), &mut Vec::new());
    assert_eq!(*d.frames.lock().unwrap(), ["1:2", "1:3 2:1"]);
    assert!(!d.ob.has_work());
    assert!(!woken(&d.ob));
}

/// A frame due for the pacer is not overtaken by a later one written
/// directly, however late the pacer is.
#[tokio::test(start_paused = true)]
async fn a_late_pacer_is_not_overtaken() {
    let d = direct(Duration::from_millis(25));
    d.ob.park();
    d.ob.push(frame(1, 1));
    d.ob.push(frame(1, 2));
    tokio::time::advance(Duration::from_millis(60)).await;
    d.ob.push(frame(1, 3));
    assert_eq!(*d.frames.lock().unwrap(), ["1:1"]);
    d.ob.write_paced(d.due(), &mut Vec::new());
    assert_eq!(*d.frames.lock().unwrap(), ["1:1", "1:2 1:3"]);
}

/// A reply, a full socket or a partial write wake the writer, which
/// then takes over; the pacer leaves frames the writer took to it.
#[test]
fn what_the_direct_path_cannot_write_wakes_the_writer() {
    let d = direct(Duration::from_secs(60));
    d.ob.park();
    d.ob.push(frame(1, 1));
    d.ob.push(frame(1, 2)); // scheduled
    d.ob.try_push_control(Text::from("ack")).unwrap();
    assert!(woken(&d.ob), "a reply wakes the writer");
    let taken = d.ob.take_all();
    let got: Vec<String> = taken.frames().map(|f| f.text().to_string()).collect();
    assert_eq!(got, ["ack", "1:2"]);
    d.ob.push(frame(1, 3)); // behind what the writer took
    d.ob.write_paced(d.due(), &mut Vec::new());
    assert_eq!(*d.frames.lock().unwrap(), ["1:1"], "the writer's turn");
    assert_eq!(d.ob.take_all().frames().count(), 1);

    let d = direct(Duration::ZERO);
    *d.answer.lock().unwrap() = Wrote::Nothing;
    d.ob.park();
    d.ob.push(frame(1, 1));
    assert!(woken(&d.ob), "a full socket: the writer waits for room");
    assert_eq!(d.ob.take_all().frames().count(), 1);

    *d.answer.lock().unwrap() = Wrote::Part;
    d.ob.park();
    d.ob.push(frame(1, 2));
    assert!(
        woken(&d.ob) && d.ob.has_work(),
        "the writer finishes the frame"
    );
    d.ob.push(frame(1, 3));
    assert_eq!(
        d.frames.lock().unwrap().len(),
        1,
        "nothing direct meanwhile"
    );
    assert_eq!(d.ob.take_all().frames().count(), 1);
    assert!(!d.ob.has_work());
}

/// `stopped` is a level, not an event: it waits while nothing says stop, and
/// returns for a stop or an over-budget close that came before or while it
/// waits. A plain close (the peer closed) does not stop a write.
#[tokio::test]
async fn stopped_waits_for_a_stop_or_the_budget_and_sees_one_from_before() {
    let pending = |ob: &Arc<Outbox>| {
        let ob = ob.clone();
        tokio::spawn(async move { ob.stopped().await })
    };
    let within = |t| tokio::time::timeout(Duration::from_secs(30), t);

    let ob = Arc::new(Outbox::new(8, Arc::default()));
    let waiting = pending(&ob);
    ob.close(Closing::Quiet);
    tokio::task::yield_now().await;
    assert!(
        !waiting.is_finished(),
        "a plain close does not stop a write"
    );
    ob.stop(Closing::Code(1001, "bye"));
    within(waiting).await.unwrap().unwrap();
    assert_eq!(ob.closing(), Some(Closing::Quiet), "the first reason stays");
    within(pending(&ob))
        .await
        .expect("a stop from before is seen")
        .unwrap();

    let ob = Arc::new(Outbox::new(8, Arc::default()).with_budget(4));
    let waiting = pending(&ob);
    assert!(ob.try_push_control("too long".into()).is_ok());
    within(waiting).await.unwrap().unwrap();
    assert_eq!(ob.closing(), Some(Closing::OverBudget));
}
