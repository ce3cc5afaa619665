//! Unit tests of `supervisor`.

use super::*;
use crate::config::Config;
use crate::feeds::Feed;
use crate::metrics::Metrics;
use tokio::time::Instant as TokioInstant;

fn feeds(text: &str) -> Vec<FeedConfig> {
    crate::config::Config::from_toml(text, std::path::Path::new("t.toml"))
        .unwrap()
        .feeds
}

#[test]
fn diff_compares_by_value_and_ignores_position() {
    let old = feeds(
        "[[feed]]\nname=\"a\"\nkind=\"system\"\ntopic=\"h.a\"\n[[feed]]\nname=\"b\"\nkind=\"system\"\ntopic=\"h.b\"\n[[feed]]\nname=\"c\"\nkind=\"system\"\ntopic=\"h.c\"\n",
    );
    let new = feeds(
        "\n[[feed]]\nname=\"b\"\nkind=\"system\"\ntopic=\"h.b\"\ninterval=\"5s\"\n[[feed]]\nname=\"a\"\nkind=\"system\"\ntopic=\"h.a\"\n[[feed]]\nname=\"d\"\nkind=\"system\"\ntopic=\"h.d\"\n",
    );
    let d = diff(&old, &new);
    assert_eq!(d.added, ["d"]);
    assert_eq!(d.changed, ["b"]);
    assert_eq!(d.removed, ["c"]);
    assert_eq!(diff(&new, &new), Diff::default());
}

/// A feed that records when each run starts, optionally publishes, then fails.
struct Failing {
    runs: Arc<Mutex<Vec<TokioInstant>>>,
    publish: bool,
}

impl Feed for Failing {
    async fn run(&self, ctx: FeedContext) -> anyhow::Result<()> {
        self.runs.lock().unwrap().push(TokioInstant::now());
        if self.publish {
            ctx.publish(&serde_json::json!({"ok": true}))?;
        }
        anyhow::bail!("upstream down")
    }
}

/// The start times of the first `n` runs of a `Failing` feed.
async fn runs_of(publish: bool, n: usize) -> Vec<TokioInstant> {
    let runs: Arc<Mutex<Vec<TokioInstant>>> = Arc::default();
    let mut kinds = Kinds::default();
    let r = runs.clone();
    kinds.register("failing", move |_: toml::Table| {
        Ok(Failing {
            runs: r.clone(),
            publish,
        })
    });
    let text = "[[feed]]\nname = \"f\"\nkind = \"failing\"\ntopic = \"t\"\n";
    let config = Config::parse(text, std::path::Path::new("t.toml"), None, &kinds).unwrap();
    let hub = Hub::new(0, Arc::new(Metrics::default()));
    let cancel = CancellationToken::new();
    let feeds = FeedSupervisor::new(hub, kinds, cancel.clone(), TaskTracker::new());
    feeds.apply(&config.feeds).await;
    while runs.lock().unwrap().len() < n {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cancel.cancel();
    feeds.stop_all().await;
    let runs = runs.lock().unwrap().clone();
    runs
}

/// On tokio's paused clock: a feed that keeps failing is retried after a
/// fully jittered delay inside a window that doubles from 1 s and stops at
/// 30 s; a feed whose runs publish before failing stays in the 1 s window.
#[tokio::test(start_paused = true)]
async fn retries_back_off_exponentially_with_jitter_and_reset() {
    let runs = runs_of(false, 9).await;
    for (n, pair) in runs.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        let window = backoff_window(n as u32);
        assert!(gap <= window, "retry {n}: {gap:?} > {window:?}");
        assert!(gap >= window / 20, "retry {n}: {gap:?} < {:?}", window / 20);
    }
    let last = runs[8] - runs[7];
    assert!(last <= BACKOFF_CAP && last >= BACKOFF_CAP / 20, "{last:?}");

    let runs = runs_of(true, 6).await;
    for pair in runs.windows(2) {
        assert!(
            pair[1] - pair[0] <= BACKOFF_BASE,
            "publishing resets the backoff"
        );
    }
}

/// The window doubles from 1 s to the 30 s cap; delays stay inside it.
#[test]
fn state_names_match_their_wire_form() {
    use FeedState::*;
    for state in [Starting, Running, Backoff, Failed, Stopped] {
        assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
    }
}

#[test]
fn backoff_doubles_from_one_second_to_a_cap() {
    assert_eq!(backoff_window(0), Duration::from_secs(1));
    assert_eq!(backoff_window(1), Duration::from_secs(2));
    assert_eq!(backoff_window(4), Duration::from_secs(16));
    assert_eq!(backoff_window(5), Duration::from_secs(30));
    assert_eq!(backoff_window(u32::MAX), Duration::from_secs(30));
    for n in 0..8 {
        assert!(backoff_delay(n) <= backoff_window(n));
    }
}

/// A feed that says it is running, then idles until stopped.
struct Idle;

impl Feed for Idle {
    async fn run(&self, ctx: FeedContext) -> anyhow::Result<()> {
        ctx.mark_running();
        ctx.cancelled().await;
        Ok(())
    }
}

/// Over 95 s with nothing happening, a stopped feed's status is published
/// once (one update per state change), while an idle running feed's status is
/// re-sent every 30 s (what other cluster nodes that missed it rely on).
#[tokio::test(start_paused = true)]
async fn an_unchanged_stopped_status_is_not_re_sent() {
    let mut kinds = Kinds::default();
    kinds.register("idle", |_: toml::Table| Ok(Idle));
    let text = "[[feed]]\nname = \"off\"\nkind = \"system\"\ntopic = \"off\"\nenabled = false\n\
                [[feed]]\nname = \"idle\"\nkind = \"idle\"\ntopic = \"idle\"\n";
    let config = Config::parse(text, std::path::Path::new("t.toml"), None, &kinds).unwrap();
    let hub = Hub::new(0, Arc::new(Metrics::default()));
    let mut statuses = hub.subscribe([crate::feeds::FEEDS_TOPIC]).unwrap();
    let cancel = CancellationToken::new();
    let feeds = FeedSupervisor::new(hub, kinds, cancel.clone(), TaskTracker::new());
    feeds.apply(&config.feeds).await;
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    let end = TokioInstant::now() + Duration::from_secs(95);
    while let Ok(Some(u)) = tokio::time::timeout_at(end, statuses.recv()).await {
        let feed = u.data()["feed"].as_str().unwrap().to_string();
        let state = u.data()["state"].as_str().unwrap().to_string();
        seen.entry(feed).or_default().push(state);
    }
    cancel.cancel();
    feeds.stop_all().await;
    assert_eq!(seen["off"], ["stopped"], "{seen:?}");
    let idle = &seen["idle"];
    let running = idle.iter().filter(|s| *s == "running").count();
    assert!(
        running >= 4,
        "running once, then again at 30, 60, 90 s: {seen:?}"
    );
}

/// A removed feed produces none of its topics, an added one all; a changed
/// template gives up what only the old one could fill, while a topic neither
/// can fill (published by name) and a feed whose template stayed are not judged.
#[test]
fn still_produces_compares_old_and_new_templates() {
    let old = feeds("[[feed]]\nname=\"a\"\nkind=\"system\"\ntopic=\"index.{host}\"\n");
    let new = feeds("[[feed]]\nname=\"a\"\nkind=\"system\"\ntopic=\"idx2.{host}\"\n");
    let other =
        feeds("[[feed]]\nname=\"a\"\nkind=\"system\"\ntopic=\"index.{host}\"\ninterval=\"5s\"\n");
    let (o, n) = (Some(&old[0]), Some(&new[0]));
    assert_eq!(still_produces(o, None, "index.x"), Produced::No);
    assert_eq!(still_produces(None, n, "index.x"), Produced::Yes);
    assert_eq!(still_produces(o, n, "index.x"), Produced::No);
    assert_eq!(still_produces(o, n, "idx2.x"), Produced::Yes);
    assert_eq!(still_produces(o, n, "by.name"), Produced::Unknown);
    assert_eq!(
        still_produces(o, Some(&other[0]), "index.x"),
        Produced::Unknown
    );
}
