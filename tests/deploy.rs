//! tickerd behind the real nginx, Caddy and HAProxy, each started in a temp
//! directory on loopback with the exact config of docs/deploy.md (only its
//! ports and paths changed), and tickerd with that page's config: a WebSocket
//! subscribe and an SSE stream through the proxy, both idle for longer than
//! the proxy's read timeout and kept open by tickerd's heartbeat alone; the
//! per-address cap counting the address the proxy forwards (two clients
//! behind one proxy are two addresses); the same header sent directly by a
//! peer that is not a trusted proxy ignored.
//!
//! The clients bind distinct loopback sources (127.0.0.2, 127.0.0.3, ...),
//! so each is a different address to the proxy, which forwards it.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use support::markdown::{fenced_block, substitute};
use support::sse::Sse;
use support::{eventually, within, Client, Server, Ws};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::MaybeTlsStream;

const DOC: &str = "docs/deploy.md";

/// A proxy process, killed when dropped, and its temp directory.
struct Proxy {
    _child: tokio::process::Child,
    dir: tempfile::TempDir,
    port: u16,
}

/// A loopback port free now (the proxy binds it right after).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The number of seconds in the line of `block` that starts with `key`
/// (`proxy_read_timeout 15s;` → 15).
fn seconds_of(block: &str, key: &str) -> u64 {
    let line = block
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no `{key}` in:\n{block}"));
    let value = line[key.len()..].split('#').next().unwrap();
    let value = value.trim().trim_end_matches(';');
    let value = value.trim_matches('"').trim_end_matches('s');
    value
        .parse()
        .unwrap_or_else(|_| panic!("`{line}`: not seconds"))
}

/// The proxies of docs/deploy.md.
#[derive(Clone, Copy)]
enum Kind {
    Nginx,
    Caddy,
    Haproxy,
}

impl Kind {
    /// The doc's block, the key of its idle timeout for streams, and the
    /// program with its arguments for a config at `conf` in `dir`.
    fn block(self) -> (String, &'static str) {
        match self {
            Kind::Nginx => (
                fenced_block(DOC, "nginx", "upstream tickerd"),
                "proxy_read_timeout",
            ),
            Kind::Caddy => (
                fenced_block(DOC, "caddyfile", "reverse_proxy"),
                "read_timeout",
            ),
            Kind::Haproxy => (
                fenced_block(DOC, "haproxy", "backend tickerd"),
                "timeout tunnel",
            ),
        }
    }

    /// Starts the proxy in front of `upstream` and waits until it forwards.
    async fn start(self, upstream: SocketAddr) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let port = free_port();
        let up = upstream.to_string();
        let (block, _) = self.block();
        let (program, conf, args): (&str, String, Vec<String>) = match self {
            Kind::Nginx => {
                let listen = format!("listen 127.0.0.1:{port};");
                let server = format!("server {up};");
                let block = substitute(
                    &block,
                    &[("listen 80;", &listen), ("server 127.0.0.1:8080;", &server)],
                );
                // nginx's own frame around a conf.d file: paths in the temp
                // dir; one process (no master), so killing it leaves no worker.
                let conf = format!(
                    "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
                     events {{}}\nhttp {{\naccess_log off;\nclient_body_temp_path {d}/body;\n\
                     proxy_temp_path {d}/proxy;\nfastcgi_temp_path {d}/fastcgi;\n\
                     uwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n{block}}}\n"
                );
                let args = ["-e", &format!("{d}/error.log"), "-p", &d, "-c"];
                ("nginx", conf, args.map(String::from).to_vec())
            }
            Kind::Caddy => {
                let site = format!("http://127.0.0.1:{port}");
                let admin = format!("127.0.0.1:{}", free_port());
                let conf = substitute(
                    &block,
                    &[
                        ("127.0.0.1:2019", &admin),
                        ("ticker.example.com", &site),
                        ("127.0.0.1:8080", &up),
                    ],
                );
                let args = ["run", "--adapter", "caddyfile", "--config"];
                ("caddy", conf, args.map(String::from).to_vec())
            }
            Kind::Haproxy => {
                let bind = format!("bind 127.0.0.1:{port}");
                let conf = substitute(&block, &[("bind :80", &bind), ("127.0.0.1:8080", &up)]);
                ("haproxy", conf, vec!["-db".into(), "-f".into()])
            }
        };
        let conf_path = dir.path().join("proxy.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let log = std::fs::File::create(dir.path().join("proxy.log")).unwrap();
        let child = tokio::process::Command::new(program)
            .args(&args)
            .arg(&conf_path)
            .current_dir(dir.path())
            // Caddy keeps its state under these; never the user's own.
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e} (scripts/test.sh installs it)"));
        let proxy = Proxy {
            _child: child,
            dir,
            port,
        };
        let url = format!("http://127.0.0.1:{port}/healthz");
        let what = format!("{program} forwards /healthz");
        let log = proxy.dir.path().join("proxy.log");
        eventually(&what, || async {
            let ok = matches!(reqwest::get(&url).await, Ok(r) if r.status() == 200);
            if !ok && log_says_failed(&log) {
                panic!(
                    "{program} failed:\n{}",
                    std::fs::read_to_string(&log).unwrap()
                );
            }
            ok
        })
        .await;
        proxy
    }
}

/// Did the proxy's log report a fatal error (it will never forward)?
fn log_says_failed(log: &Path) -> bool {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.contains("[emerg]") || text.contains("[ALERT]") || text.contains("Error: ")
}

/// A TCP connection to `to` from the loopback address `127.0.0.{source}`.
async fn connect_from(source: u8, to: SocketAddr) -> tokio::net::TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(Ipv4Addr::new(127, 0, 0, source).into(), 0))
        .unwrap();
    within(socket.connect(to)).await.unwrap()
}

/// A WebSocket to `to`'s `/ws` from `127.0.0.{source}` with `headers`: its
/// `hello` read, or the HTTP status it was refused with.
async fn ws_from(
    source: u8,
    to: SocketAddr,
    headers: &[(&'static str, &str)],
) -> Result<Client, u16> {
    use tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{to}/ws").into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(*k, v.parse().unwrap());
    }
    let tcp = MaybeTlsStream::Plain(connect_from(source, to).await);
    match within(tokio_tungstenite::client_async(req, tcp)).await {
        Ok((ws, _)) => {
            let mut c = Client {
                ws,
                hello: serde_json::Value::Null,
            };
            c.hello = c.recv().await;
            Ok(c)
        }
        Err(tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("WebSocket to {to}: {e}"),
    }
}

/// Reads `ws` until `until`, answering its Pings; fails if it closes.
async fn idle_ws(ws: &mut Ws, until: tokio::time::Instant) -> usize {
    let mut pings = 0;
    while let Ok(next) = tokio::time::timeout_at(until, ws.next()).await {
        match next {
            Some(Ok(Message::Ping(_))) => pings += 1,
            Some(Ok(Message::Close(f))) => panic!("the WebSocket was closed while idle: {f:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("the WebSocket failed while idle: {e}"),
            None => panic!("the WebSocket ended while idle"),
        }
    }
    pings
}

/// Reads the stream until `until`; fails if it ends. Returns the heartbeat
/// comments seen.
async fn idle_sse(sse: &mut Sse, until: tokio::time::Instant) -> usize {
    let mut pings = 0;
    while let Ok(event) = tokio::time::timeout_at(until, sse.next()).await {
        if matches!(event, support::sse::Event::Comment(_)) {
            pings += 1;
        }
    }
    pings
}

/// The whole check through one proxy (see the file's doc).
async fn through(kind: Kind) {
    let tickerd = fenced_block(DOC, "toml", "trusted_proxies");
    let config = substitute(&tickerd, &[("127.0.0.1:8080", "127.0.0.1:0")])
        + "\n[limits]\nmax_connections_per_ip = 1\n";
    let s = Server::start(&config).await;
    let heartbeat = seconds_of(&tickerd, "heartbeat =");
    let (block, timeout_key) = kind.block();
    let timeout = seconds_of(&block, timeout_key);
    assert!(
        heartbeat * 2 < timeout,
        "the doc's heartbeat ({heartbeat}s) must be well within the proxy's timeout ({timeout}s)"
    );
    let proxy = kind.start(s.addr).await;
    let front = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), proxy.port);

    // A WebSocket and an SSE stream through the proxy, from two addresses.
    let mut ws = ws_from(2, front, &[])
        .await
        .expect("first WebSocket of 127.0.0.2");
    ws.subscribe(&["t"]).await;
    let http = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)))
        .build()
        .unwrap();
    let mut sse = Sse::open_with(&http, &format!("http://{front}/sse?topics=t"), &[])
        .await
        .expect("the SSE stream of 127.0.0.3");
    while sse.frame().await.1["type"] != "ack" {}
    let opened = tokio::time::Instant::now();

    // The cap (1 per address) counts the forwarded client, not the proxy.
    let third = ws_from(4, front, &[]).await;
    assert!(
        third.is_ok(),
        "127.0.0.4 is a third address: {:?}",
        third.err()
    );
    assert_eq!(
        ws_from(2, front, &[]).await.err(),
        Some(503),
        "a second WebSocket of 127.0.0.2 through the proxy is past its cap"
    );
    // Sent directly by a peer that is not a trusted proxy, the header is
    // not believed: both connections are 127.0.0.5's.
    let forged = [("x-forwarded-for", "203.0.113.1")];
    let first = ws_from(5, s.addr, &forged).await;
    assert!(first.is_ok(), "{:?}", first.err());
    let forged = [("x-forwarded-for", "203.0.113.2")];
    assert_eq!(ws_from(5, s.addr, &forged).await.err(), Some(503));

    // Idle past the proxy's timeout: only tickerd's heartbeat crosses.
    let until = opened + Duration::from_secs(timeout + 2);
    let (ws_pings, sse_pings) = tokio::join!(idle_ws(&mut ws.ws, until), idle_sse(&mut sse, until));
    assert!(
        ws_pings >= 2 && sse_pings >= 2,
        "pings: ws {ws_pings}, sse {sse_pings}"
    );
    s.ticker
        .hub()
        .publish("t", &json!({"after": timeout}))
        .unwrap();
    let u = ws.update_of("t").await;
    assert_eq!(u["data"]["after"], timeout, "{u}");
    let u = loop {
        let (_, f) = sse.frame().await;
        if f["type"] == "update" {
            break f;
        }
    };
    assert_eq!(u["data"]["after"], timeout, "{u}");
}

/// docs/deploy.md's nginx config: WebSocket and SSE through it, streams that
/// outlive `proxy_read_timeout` on heartbeats alone, the forwarded address
/// counted by the per-address cap, a forged header from a direct peer ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_as_documented() {
    through(Kind::Nginx).await;
}

/// docs/deploy.md's Caddyfile: the same checks as for nginx, the idle
/// timeout being the transport's `read_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_as_documented() {
    through(Kind::Caddy).await;
}

/// docs/deploy.md's HAProxy config: the same checks as for nginx, the idle
/// timeout being `timeout tunnel` (WebSocket) and `timeout server` (SSE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_as_documented() {
    through(Kind::Haproxy).await;
}
