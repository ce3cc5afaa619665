//! Cluster mode (`[cluster]`, README "Running a cluster"): real tickerd processes
//! and a real nats-server with JetStream, all on 127.0.0.1.
//!
//! Needs `nats-server` on the PATH (`scripts/test.sh` installs Debian's).
//!
//! The tests run one at a time ([`one_at_a_time`]): each starts up to three
//! debug tickerd processes and a nats-server, and a 2-core machine running two
//! such clusters at once starves their lease renewals. Leases are long
//! ([`LEASE`]) except in the tests that wait for one to lapse
//! ([`SHORT_LEASE`]). Nodes reach NATS through a [`Link`] (a TCP proxy that
//! holds its port for the whole test) wherever NATS is restarted or starts
//! late, so no test frees a port and hopes to bind it again.

mod support;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::{eventually, get_json, spawn_tickerd, within, Client};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::watch;

const TOPIC: &str = "stocks.AAA";
/// Feed ownership lease for tests that do not wait for one to lapse: long, so
/// a starved renewal on a loaded machine never moves a feed mid-test.
const LEASE: &str = "10s";
/// The lease of the takeover tests (SIGKILL, partition), which wait for it to
/// lapse: short enough to keep them quick, long enough for a loaded machine to
/// renew in time (every quarter lease).
const SHORT_LEASE: &str = "3s";

/// Held for the whole of each test: cluster tests run one at a time.
async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// A nats-server with JetStream and its own store directory.
struct Nats {
    child: Child,
    port: u16,
    store: PathBuf,
}

impl Nats {
    /// Starts one on a port of its choosing, with its store in `dir/js`.
    async fn start(dir: &Path) -> Nats {
        Nats::start_with_store(dir.join("js")).await
    }

    /// Starts one on a port of its choosing with the store at `store`.
    async fn start_with_store(store: PathBuf) -> Nats {
        let mut child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", "-1", "-sd"])
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server is installed (scripts/test.sh installs it)");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let port = within(async {
            loop {
                let line = lines.next_line().await.unwrap().expect("nats-server runs");
                if let Some(rest) = line.split("client connections on 127.0.0.1:").nth(1) {
                    return rest.trim().parse::<u16>().unwrap();
                }
            }
        })
        .await;
        // Keep draining its log so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Nats { child, port, store }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn stop(&mut self) {
        self.child.kill().await.unwrap();
    }

    /// The same server again (same store, a new port), with `link` now
    /// leading to it: to the nodes behind the link, NATS restarted.
    async fn restart_behind(&mut self, link: &Link) {
        self.stop().await;
        *self = Nats::start_with_store(self.store.clone()).await;
        link.lead_to(self.port);
    }
}

/// One tickerd process in cluster mode.
struct Node {
    name: String,
    child: Child,
    addr: String,
}

impl Node {
    /// Starts node `name` against `nats` with `feeds` (TOML) in its config. All
    /// nodes of a test share `dir/shared` as their `feeds_dir`.
    async fn start(dir: &Path, name: &str, nats: &str, feeds: &str) -> Node {
        Node::start_with_lease(dir, name, nats, feeds, LEASE).await
    }

    /// [`Node::start`] with a feed ownership lease of `lease`.
    async fn start_with_lease(
        dir: &Path,
        name: &str,
        nats: &str,
        feeds: &str,
        lease: &str,
    ) -> Node {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\npublish_token = \"pt\"\nfeeds_dir = \"shared\"\n\
                 [history]\nsize = 500\n\
                 [cluster]\nnats = \"{nats}\"\nnode = \"unnamed\"\nlease = \"{lease}\"\n{feeds}"
            ),
        )
        .unwrap();
        // The node's name comes from the command line, as in the README.
        let args = [
            OsStr::new("-c"),
            path.as_os_str(),
            OsStr::new("--node"),
            OsStr::new(name),
        ];
        let (child, addr) = spawn_tickerd(dir, &args).await;
        Node {
            name: name.into(),
            child,
            addr,
        }
    }

    async fn client(&self) -> Client {
        Client::connect(&format!("ws://{}/ws", self.addr)).await
    }

    /// This node's `$sys.cluster` view.
    async fn view(&self) -> Value {
        let (status, frame) =
            get_json(&format!("http://{}/api/topics/$sys.cluster", self.addr)).await;
        assert_eq!(status, 200, "{frame}");
        frame["data"].clone()
    }

    /// The feeds running on this node (`/api/feeds` lists a node's own).
    async fn running_feeds(&self) -> Vec<String> {
        let (status, feeds) = get_json(&format!("http://{}/api/feeds", self.addr)).await;
        assert_eq!(status, 200, "{feeds}");
        feeds
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["feed"].as_str().unwrap().to_string())
            .collect()
    }

    async fn publish(&self, topic: &str, data: Value) -> Value {
        let res = reqwest::Client::new()
            .post(format!("http://{}/api/publish/{topic}", self.addr))
            .bearer_auth("pt")
            .body(data.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        serde_json::from_slice(&res.bytes().await.unwrap()).unwrap()
    }
}

/// Nodes `a` and `b` without feeds, and a client of each subscribed to `pattern`.
async fn two_nodes_watching(
    dir: &Path,
    nats: &Nats,
    pattern: &str,
) -> (Node, Node, Client, Client) {
    let a = Node::start(dir, "a", &nats.url(), "").await;
    let b = Node::start(dir, "b", &nats.url(), "").await;
    let mut on_a = a.client().await;
    let mut on_b = b.client().await;
    on_a.subscribe(&[pattern]).await;
    on_b.subscribe(&[pattern]).await;
    (a, b, on_a, on_b)
}

fn synthetic(interval: &str) -> String {
    format!(
        "[[feed]]\nname = \"stocks\"\nkind = \"synthetic\"\ntopic = \"stocks.{{symbol}}\"\n\
         symbols = [\"AAA\"]\ninterval = \"{interval}\"\n"
    )
}

/// Waits until every node sees all of `nodes` and one owner for `stocks`;
/// returns that owner's name.
async fn settled(nodes: &[&Node]) -> String {
    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    within(async {
        loop {
            if let Some(owner) = agreed_owner(nodes, &names).await {
                return owner;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// The owner of `stocks` if every node is connected, sees all of `names` and
/// names the same owner.
async fn agreed_owner(nodes: &[&Node], names: &[&str]) -> Option<String> {
    let mut owners = Vec::new();
    for n in nodes {
        let v = n.view().await;
        let seen: Vec<&str> = v["nodes"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if v["connected"] != true || names.iter().any(|m| !seen.contains(m)) {
            return None;
        }
        owners.push(v["feeds"]["stocks"].as_str()?.to_string());
    }
    let first = owners.first()?.clone();
    owners.iter().all(|o| *o == first).then_some(first)
}

/// Reads updates of `topic` until one has seq >= `until`; returns them all.
async fn updates_until(c: &mut Client, topic: &str, until: u64) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let u = c.update_of(topic).await;
        let seq = u["seq"].as_u64().unwrap();
        seen.push(u);
        if seq >= until {
            return seen;
        }
    }
}

/// Reads frames until one satisfies `pred`, keeping the seqs of `TOPIC`'s
/// updates read on the way in `kept`.
async fn until_keeping(c: &mut Client, kept: &mut Vec<u64>, pred: impl Fn(&Value) -> bool) {
    c.recv_until(|v| {
        if v["type"] == "update" && v["topic"] == TOPIC {
            kept.push(v["seq"].as_u64().unwrap());
        }
        pred(v)
    })
    .await;
}

fn seqs(updates: &[Value]) -> Vec<u64> {
    updates.iter().map(|u| u["seq"].as_u64().unwrap()).collect()
}

/// Asserts `s` goes up by exactly one each step: no duplicate, no gap.
fn assert_contiguous(s: &[u64], what: &str) {
    for w in s.windows(2) {
        assert_eq!(
            w[1],
            w[0] + 1,
            "{what}: seqs jump from {} to {} in {s:?}",
            w[0],
            w[1]
        );
    }
}

/// A feed runs on exactly one of three nodes, and a client of every node gets
/// the same frames (same seq, ts and data) from it; epochs agree.
#[tokio::test]
async fn one_owner_and_the_same_frames_on_every_node() {
    let _serial = one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path()).await;
    let feeds = synthetic("100ms");
    let a = Node::start(dir.path(), "a", &nats.url(), &feeds).await;
    let b = Node::start(dir.path(), "b", &nats.url(), &feeds).await;
    let c = Node::start(dir.path(), "c", &nats.url(), &feeds).await;
    let owner = settled(&[&a, &b, &c]).await;
    // The owner starts the feed once it holds the lease; the others never do.
    let want = vec![(owner.clone(), "stocks".to_string())];
    eventually("the feed runs on its owner alone", || async {
        let mut running = Vec::new();
        for n in [&a, &b, &c] {
            running.extend(
                n.running_feeds()
                    .await
                    .into_iter()
                    .map(|f| (n.name.clone(), f)),
            );
        }
        running == want
    })
    .await;
    eventually("a's metrics count the cluster", || async {
        let (_, metrics) = get_json(&format!("http://{}/metrics", a.addr)).await;
        let metrics = metrics.as_str().unwrap_or_default().to_string();
        ["tickerd_cluster_connected 1", "tickerd_cluster_nodes 3"]
            .iter()
            .all(|line| metrics.lines().any(|l| l == *line))
    })
    .await;
    // A node that does not run the feed still shows its status, with its owner.
    let other = [&a, &b, &c].into_iter().find(|n| n.name != owner).unwrap();
    let mut watcher = other.client().await;
    watcher.subscribe(&["$sys.feeds"]).await;
    watcher
        .recv_until(|v| v["data"]["feed"] == "stocks" && v["data"]["node"] == owner.as_str())
        .await;

    let mut clients = Vec::new();
    for n in [&a, &b, &c] {
        let mut cl = n.client().await;
        cl.subscribe(&[TOPIC]).await;
        clients.push(cl);
    }
    let epochs: Vec<&Value> = clients.iter().map(|c| &c.hello["epoch"]).collect();
    assert!(epochs.iter().all(|e| *e == epochs[0]), "{epochs:?}");
    let start = clients[0].update_of(TOPIC).await["seq"].as_u64().unwrap();
    let mut by_node = Vec::new();
    for cl in &mut clients {
        let got = updates_until(cl, TOPIC, start + 15).await;
        let frames: BTreeMap<u64, Value> = got
            .into_iter()
            .filter(|u| u.get("snapshot").is_none())
            .map(|u| (u["seq"].as_u64().unwrap(), u))
            .collect();
        by_node.push(frames);
    }
    let common: Vec<u64> = by_node[0]
        .keys()
        .filter(|s| by_node.iter().all(|m| m.contains_key(s)))
        .copied()
        .collect();
    assert!(
        common.len() >= 10,
        "live updates seen on every node: {common:?}"
    );
    for seq in common {
        let frames: Vec<&Value> = by_node.iter().map(|m| &m[&seq]).collect();
        assert!(
            frames.iter().all(|f| *f == frames[0]),
            "seq {seq} differs between nodes: {frames:?}"
        );
    }
}

/// SIGKILL the feed's owner: another node takes the feed over, clients of the
/// survivors see its seq go on with no duplicate and no gap, and a client of the
/// dead node resumes on a survivor with `since` and replays what it missed.
#[tokio::test]
async fn sigkill_owner_takeover_and_resume_elsewhere() {
    let _serial = one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path()).await;
    let feeds = synthetic("100ms");
    let (d, url) = (dir.path(), nats.url());
    let mut nodes = vec![
        Node::start_with_lease(d, "a", &url, &feeds, SHORT_LEASE).await,
        Node::start_with_lease(d, "b", &url, &feeds, SHORT_LEASE).await,
        Node::start_with_lease(d, "c", &url, &feeds, SHORT_LEASE).await,
    ];
    let owner = settled(&nodes.iter().collect::<Vec<_>>()).await;
    let idx = nodes.iter().position(|n| n.name == owner).unwrap();
    let mut dead = nodes.remove(idx);
    let mut victim = dead.client().await;
    victim.subscribe(&[TOPIC]).await;
    let mut survivors = Vec::new();
    for n in &nodes {
        let mut cl = n.client().await;
        cl.subscribe(&[TOPIC]).await;
        survivors.push(cl);
    }
    let last_on_dead = victim.update_of(TOPIC).await["seq"].as_u64().unwrap();
    let epoch = victim.hello["epoch"].clone();

    dead.child.start_kill().unwrap();
    dead.child.wait().await.unwrap();
    let takeover = within(async {
        loop {
            let v = nodes[0].view().await;
            match v["feeds"]["stocks"].as_str() {
                Some(o) if o != owner => return o.to_string(),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await;
    assert!(nodes.iter().any(|n| n.name == takeover), "{takeover}");

    for (cl, n) in survivors.iter_mut().zip(&nodes) {
        let got = updates_until(cl, TOPIC, last_on_dead + 30).await;
        let s: Vec<u64> = seqs(&got[1..]); // the first is the snapshot
        assert_contiguous(&s, &format!("client of {}", n.name));
    }

    // The dead node's client comes back on a survivor and resumes.
    let mut back = nodes[0].client().await;
    assert_eq!(back.hello["epoch"], epoch, "the epoch is cluster-wide");
    back.send(json!({"op": "subscribe", "topics": [TOPIC], "since": {TOPIC: last_on_dead}, "epoch": epoch}))
        .await;
    let replay = updates_until(&mut back, TOPIC, last_on_dead + 30).await;
    let s = seqs(&replay);
    assert_eq!(
        s[0],
        last_on_dead + 1,
        "replay starts right after the last seen"
    );
    assert_contiguous(&s, "resumed client");
    assert!(replay.iter().all(|u| u.get("snapshot").is_none()));
}

/// Two nodes publishing to one topic at once never hand out one seq twice:
/// every update is delivered once, seqs 1..=N without a gap, in the same order
/// on both nodes.
#[tokio::test]
async fn concurrent_publishers_share_one_sequence() {
    let _serial = one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path()).await;
    let (a, b, mut on_a, mut on_b) = two_nodes_watching(dir.path(), &nats, "race.*").await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let mut tasks = Vec::new();
    for (node, tag) in [(a.clone(), "a"), (b.clone(), "b")] {
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..40 {
                let r = node.publish("race.x", json!({"from": tag, "i": i})).await;
                seqs.push(r["seq"].as_u64().unwrap());
            }
            seqs
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    acked.sort_unstable();
    assert_eq!(
        acked,
        (1..=80).collect::<Vec<u64>>(),
        "each publish got its own seq"
    );
    let got_a = updates_until(&mut on_a, "race.x", 80).await;
    let got_b = updates_until(&mut on_b, "race.x", 80).await;
    assert_eq!(seqs(&got_a), (1..=80).collect::<Vec<u64>>());
    assert_eq!(
        got_a, got_b,
        "both nodes deliver the same frames in the same order"
    );
}

/// NATS restarts (same port and store): nodes reconnect on their own, say so on
/// `$sys.cluster`, and a client that stayed connected sees the topic go on
/// without a gap.
#[tokio::test]
async fn nodes_recover_when_nats_restarts() {
    let _serial = one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let mut nats = Nats::start(dir.path()).await;
    let link = Link::start(nats.port).await;
    let feeds = synthetic("100ms");
    let a = Node::start(dir.path(), "a", &link.url(), &feeds).await;
    let b = Node::start(dir.path(), "b", &link.url(), &feeds).await;
    settled(&[&a, &b]).await;
    let mut c = b.client().await;
    c.subscribe(&[TOPIC, "$sys.cluster"]).await;
    let before = c.update_of(TOPIC).await["seq"].as_u64().unwrap();

    let mut s = vec![before];
    nats.stop().await;
    until_keeping(&mut c, &mut s, |v| {
        v["topic"] == "$sys.cluster" && v["data"]["connected"] == false
    })
    .await;
    nats.restart_behind(&link).await;
    until_keeping(&mut c, &mut s, |v| {
        v["topic"] == "$sys.cluster" && v["data"]["connected"] == true
    })
    .await;
    let after = updates_until(&mut c, TOPIC, before + 20).await;
    s.extend(seqs(&after));
    assert_contiguous(&s, "client across the NATS restart");
}

/// A node started while NATS is down serves HTTP at once, reports
/// `connected: false`, runs no feed, and says on `/healthz` (503, with a reason)
/// that it waits for the cluster epoch; a WebSocket upgrade waits a bounded
/// time for it, then answers 503 with `Retry-After`. Once NATS comes up the node
/// joins, `/healthz` answers `200 ok`, and clients get the cluster's epoch and
/// the feed's updates.
#[tokio::test]
async fn node_starts_without_nats_and_joins_later() {
    let _serial = one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    // The node's NATS address leads nowhere yet: a port bound without
    // listening refuses every connection.
    let nowhere = tokio::net::TcpSocket::new_v4().unwrap();
    nowhere.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let link = Link::start(nowhere.local_addr().unwrap().port()).await;
    let a = Node::start(dir.path(), "a", &link.url(), &synthetic("100ms")).await;
    let v = a.view().await;
    assert_eq!(v["connected"], false, "{v}");
    assert!(a.running_feeds().await.is_empty());
    let health = format!("http://{}/healthz", a.addr);
    let (status, body) = get_json(&health).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "starting", "{body}");
    assert!(
        body["reason"].as_str().unwrap().contains("cluster epoch"),
        "{body}"
    );
    let refused = within(tokio_tungstenite::connect_async(format!(
        "ws://{}/ws",
        a.addr
    )))
    .await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), 503);
            assert!(r.headers().contains_key("retry-after"), "{r:?}");
        }
        other => panic!("expected 503 while the epoch is unknown, got {other:?}"),
    }

    let nats = Nats::start(dir.path()).await;
    link.lead_to(nats.port);
    eventually("/healthz says ok", || async {
        get_json(&health).await == (200, Value::String("ok".into()))
    })
    .await;
    let mut c = a.client().await;
    c.subscribe(&[TOPIC]).await;
    c.update_of(TOPIC).await;
    assert_eq!(c.hello["epoch"], a.view().await["epoch"]);
    assert_eq!(a.running_feeds().await, vec!["stocks".to_string()]);
}

/// Clients that connect in a node's first moments, before it has heard from
/// NATS, get the cluster's epoch in `hello` like every later client of every
/// node, so their resume works anywhere.
#[tokio::test]
async fn clients_of_a_starting_node_get_the_cluster_epoch() {
    let _serial = one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path()).await;
    let mut nodes = Vec::new();
    let mut epochs = Vec::new();
    for name in ["a", "b"] {
        let n = Node::start(dir.path(), name, &nats.url(), "").await;
        // At once: the node printed its address a moment ago.
        epochs.push((
            format!("first client of {name}"),
            n.client().await.hello["epoch"].clone(),
        ));
        nodes.push(n);
    }
    eventually("both nodes show one epoch", || async {
        let (va, vb) = (nodes[0].view().await, nodes[1].view().await);
        va["connected"] == true && va["epoch"] == vb["epoch"]
    })
    .await;
    for n in &nodes {
        epochs.push((
            format!("later client of {}", n.name),
            n.client().await.hello["epoch"].clone(),
        ));
    }
    let cluster = nodes[0].view().await["epoch"].clone();
    for (who, epoch) in &epochs {
        assert_eq!(*epoch, cluster, "{who}: {epochs:?}");
    }
}

/// A TCP proxy between nodes and NATS, on a port it holds for the whole test.
/// The test can cut and heal it (a real partition of the nodes behind it), and
/// lead it to another NATS port (a NATS restart, or NATS starting late).
struct Link {
    port: u16,
    up: watch::Sender<bool>,
    target: watch::Sender<u16>,
}

impl Link {
    async fn start(nats_port: u16) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (up, rx) = watch::channel(true);
        let (target, to) = watch::channel(nats_port);
        tokio::spawn(async move {
            loop {
                let (mut inbound, _) = listener.accept().await.unwrap();
                if !*rx.borrow() {
                    continue; // cut: drop the connection at once
                }
                let mut cut = rx.clone();
                let nats_port = *to.borrow();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", nats_port)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.wait_for(|up| !up) => {}
                    }
                });
            }
        });
        Link { port, up, target }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// New connections go to NATS on `port` from now on.
    fn lead_to(&self, port: u16) {
        self.target.send_replace(port);
    }
}

/// A node cut off from NATS stops its feed; another node takes it over; the cut
/// node's clients keep their connection, see `connected: false`, and when the
/// link heals they get every update they missed, without a gap.
#[tokio::test]
async fn partitioned_node_hands_its_feed_over_and_catches_up() {
    let _serial = one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path()).await;
    let link = Link::start(nats.port).await;
    let feeds = synthetic("100ms");
    let a = Node::start_with_lease(dir.path(), "a", &link.url(), &feeds, SHORT_LEASE).await;
    assert_eq!(settled(&[&a]).await, "a", "the first node takes the feed");
    let b = Node::start_with_lease(dir.path(), "b", &nats.url(), &feeds, SHORT_LEASE).await;
    assert_eq!(settled(&[&a, &b]).await, "a");
    let mut c = a.client().await;
    c.subscribe(&[TOPIC, "$sys.cluster"]).await;
    let before = c.update_of(TOPIC).await["seq"].as_u64().unwrap();

    let mut s = vec![before];
    link.up.send_replace(false);
    until_keeping(&mut c, &mut s, |v| {
        v["topic"] == "$sys.cluster" && v["data"]["connected"] == false
    })
    .await;
    eventually("b takes the feed over", || async {
        b.view().await["feeds"]["stocks"] == "b"
    })
    .await;
    assert!(a.running_feeds().await.is_empty(), "a stopped its copy");

    link.up.send_replace(true);
    let after = updates_until(&mut c, TOPIC, before + 40).await;
    s.extend(seqs(&after));
    assert_contiguous(&s, "client of the partitioned node");
    assert_eq!(b.running_feeds().await, vec!["stocks".to_string()]);
}

/// Hot reload across the cluster: a feed file added to the nodes' shared
/// `feeds_dir` starts on exactly one node and reaches clients of both; an edit
/// restarts it with the new config; deleting the file stops it everywhere.
#[tokio::test]
async fn reload_adds_changes_and_removes_a_feed_cluster_wide() {
    let _serial = one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path()).await;
    let (a, b, mut on_a, mut on_b) = two_nodes_watching(dir.path(), &nats, "stocks.*").await;

    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    support::write_atomic(&shared.join("stocks.toml"), synthetic("100ms"));
    let owner = settled(&[&a, &b]).await;
    assert_eq!(on_a.update_of(TOPIC).await, on_b.update_of(TOPIC).await);
    eventually("the feed runs on one node", || async {
        let mut running = a.running_feeds().await;
        running.extend(b.running_feeds().await);
        running == ["stocks"]
    })
    .await;
    assert!([&a, &b].iter().any(|n| n.name == owner), "owner {owner}");

    support::write_atomic(
        &shared.join("stocks.toml"),
        synthetic("100ms").replace("AAA", "BBB"),
    );
    on_a.update_of("stocks.BBB").await;
    on_b.update_of("stocks.BBB").await;

    std::fs::remove_file(shared.join("stocks.toml")).unwrap();
    eventually("the feed stops on every node", || async {
        a.running_feeds().await.is_empty()
            && b.running_feeds().await.is_empty()
            && a.view().await["feeds"]
                .as_object()
                .is_some_and(|f| f.is_empty())
    })
    .await;
}

/// NATS comes back without its store (the stream is gone): the nodes make a new
/// stream with a new epoch and close their clients with 1012 (reconnect), so no
/// client mistakes the restarted seqs for repeats; a reconnecting client gets
/// the new epoch and fresh updates.
#[tokio::test]
async fn a_lost_stream_means_a_new_epoch_and_a_reconnect() {
    let _serial = one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let mut nats = Nats::start(dir.path()).await;
    let link = Link::start(nats.port).await;
    let a = Node::start(dir.path(), "a", &link.url(), &synthetic("100ms")).await;
    settled(&[&a]).await;
    let mut c = a.client().await;
    c.subscribe(&[TOPIC]).await;
    c.update_of(TOPIC).await;
    let old_epoch = c.hello["epoch"].clone();

    nats.stop().await;
    std::fs::remove_dir_all(&nats.store).unwrap();
    nats.restart_behind(&link).await;
    assert_eq!(c.closed().await, Some(1012));

    let mut again = a.client().await;
    assert_ne!(again.hello["epoch"], old_epoch);
    again.subscribe(&[TOPIC]).await;
    let u = again.update_of(TOPIC).await;
    assert!(u["seq"].as_u64().unwrap() < 50, "seqs started over: {u}");
}
