//! TLS in the binary (`[server.tls]`, docs/deploy.md's config as written): a test CA made with the
//! real `openssl`, a real Python `websockets` client over `wss://` that trusts
//! only that CA, a certificate renewed on disk while a client stays connected,
//! and a key that is not the certificate's refused with a clear message, at
//! start and on reload.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use serde_json::{json, Value};
use support::{eventually, python, within, write_atomic, Server};
use tickerd::Ticker;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

/// A test certificate authority in a temp directory, made with `openssl`.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=tickerd test CA",
            ],
        );
        Pki { dir }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A server certificate for 127.0.0.1 and localhost with serial `serial`
    /// (hex), signed by the CA: `(cert PEM, key PEM)`.
    fn issue(&self, name: &str, serial: &str) -> (Vec<u8>, Vec<u8>) {
        let d = self.dir.path();
        let (key, csr, cert) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                "/CN=localhost",
            ],
        );
        std::fs::write(
            d.join("san.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                &format!("0x{serial}"),
                "-days",
                "2",
                "-extfile",
                "san.ext",
                "-out",
                &cert,
            ],
        );
        (
            std::fs::read(d.join(cert)).unwrap(),
            std::fs::read(d.join(key)).unwrap(),
        )
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The server config: docs/deploy.md's "TLS in the binary" block as written,
/// on a free loopback port, with the pair at `tls/cert.pem` and `tls/key.pem`.
fn config() -> String {
    let block = support::markdown::fenced_block("docs/deploy.md", "toml", "[server.tls]");
    support::markdown::substitute(
        &block,
        &[
            ("0.0.0.0:443", "127.0.0.1:0"),
            (
                "/etc/letsencrypt/live/ticker.example.com/fullchain.pem",
                "tls/cert.pem",
            ),
            (
                "/etc/letsencrypt/live/ticker.example.com/privkey.pem",
                "tls/key.pem",
            ),
        ],
    )
}

/// A server directory holding `pair` where [`config`] expects it.
fn server_dir(pair: &(Vec<u8>, Vec<u8>)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tls")).unwrap();
    std::fs::write(dir.path().join("tls/cert.pem"), &pair.0).unwrap();
    std::fs::write(dir.path().join("tls/key.pem"), &pair.1).unwrap();
    dir
}

/// A `websockets` client over `wss://` that trusts only `argv[2]` (the CA):
/// prints the served certificate's serial (`{"serial": "1001"}`), subscribes
/// to `argv[3]`, then prints every frame it receives, one per line. After an
/// update with `"n": 2` it sends a Ping and prints `{"pong": true}` once
/// answered, then closes with 1000 and prints the code the closing handshake
/// ended with (`{"close_code": 1000}`; 1006 had no Close come back).
const WSS_CLIENT: &str = r#"
import asyncio, json, ssl, sys
import websockets

async def main():
    url, ca, topic = sys.argv[1:4]
    ctx = ssl.create_default_context(cafile=ca)
    async with websockets.connect(url, ssl=ctx) as ws:
        cert = ws.transport.get_extra_info("ssl_object").getpeercert()
        print(json.dumps({"serial": cert["serialNumber"]}), flush=True)
        await ws.send(json.dumps({"op": "subscribe", "topics": [topic], "id": "s"}))
        async for frame in ws:
            print(frame, flush=True)
            if json.loads(frame).get("data") == {"n": 2}:
                await asyncio.wait_for(await ws.ping(), 20)
                print(json.dumps({"pong": True}), flush=True)
                await asyncio.wait_for(ws.close(1000), 20)
                print(json.dumps({"close_code": ws.close_code}), flush=True)
                return

asyncio.run(main())
"#;

/// A running [`WSS_CLIENT`] and its output lines.
struct PyClient {
    _child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl PyClient {
    fn start(url: &str, ca: &Path, topic: &str) -> PyClient {
        let mut cmd: tokio::process::Command =
            python::script(WSS_CLIENT, &[url, ca.to_str().unwrap(), topic]).into();
        let mut child = cmd
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        PyClient {
            _child: child,
            lines,
        }
    }

    /// The next line that satisfies `pred`, as JSON.
    async fn line_until(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        within(async {
            loop {
                let line = self
                    .lines
                    .next_line()
                    .await
                    .unwrap()
                    .expect("client running");
                let v: Value = serde_json::from_str(&line).unwrap();
                if pred(&v) {
                    return v;
                }
            }
        })
        .await
    }

    async fn serial(&mut self) -> String {
        let v = self.line_until(|v| v.get("serial").is_some()).await;
        v["serial"].as_str().unwrap().to_string()
    }
}

/// The certificate (DER) a new TLS connection to `addr` is served, checked
/// against `ca` alone, and the protocol ALPN agreed on.
async fn served(addr: std::net::SocketAddr, ca: &Path) -> (Vec<u8>, Option<Vec<u8>>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::IpAddress(addr.ip().into());
    let tls = within(tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp))
        .await
        .expect("handshake with a certificate the CA signed");
    let conn = tls.get_ref().1;
    (
        conn.peer_certificates().unwrap()[0].to_vec(),
        conn.alpn_protocol().map(<[u8]>::to_vec),
    )
}

/// The DER of the first certificate in `pem`.
fn der(pem: &[u8]) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem)
        .unwrap()
        .to_vec()
}

/// A Python client over `wss://`, trusting only the test CA, subscribes and
/// gets updates; ALPN agrees on `http/1.1` (HTTP/2 is not offered). The
/// certificate renewed on disk (new serial, new key) is served to new
/// connections without a restart, while the client connected before keeps
/// its connection and receives what is published after the swap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_client_and_certificate_rotation_while_connected() {
    let pki = Pki::new();
    let old = pki.issue("old", "1001");
    let new = pki.issue("new", "2002");
    let s = Server::start_in(server_dir(&old), &config()).await;
    let url = format!("wss://127.0.0.1:{}/ws", s.addr.port());

    let (cert, alpn) = served(s.addr, &pki.ca()).await;
    assert_eq!(cert, der(&old.0));
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));

    let mut a = PyClient::start(&url, &pki.ca(), "t");
    assert_eq!(a.serial().await, "1001");
    a.line_until(|v| v["type"] == "ack").await;
    s.ticker.hub().publish("t", &json!({"n": 1})).unwrap();
    let u = a.line_until(|v| v["type"] == "update").await;
    assert_eq!(u["data"]["n"], 1, "{u}");

    // Renewal: the key, then the certificate, each saved by rename.
    let tls = s.dir.path().join("tls");
    support::watching(&s, &tls.join("cert.pem")).await;
    write_atomic(&tls.join("key.pem"), &new.1);
    write_atomic(&tls.join("cert.pem"), &new.0);
    eventually("new connections get the renewed certificate", || async {
        served(s.addr, &pki.ca()).await.0 == der(&new.0)
    })
    .await;
    let mut b = PyClient::start(&url, &pki.ca(), "t");
    assert_eq!(b.serial().await, "2002");
    b.line_until(|v| v["type"] == "ack").await;

    s.ticker.hub().publish("t", &json!({"n": 2})).unwrap();
    let u = a.line_until(|v| v["type"] == "update").await;
    assert_eq!(u["data"]["n"], 2, "the client of the old certificate: {u}");
    let u = b
        .line_until(|v| v["type"] == "update" && v["data"]["n"] == 2)
        .await;
    assert_eq!(u["data"]["n"], 2, "{u}");

    // Over TLS too (not the TCP socket itself), a Ping is answered and a
    // Close is echoed.
    for c in [&mut a, &mut b] {
        c.line_until(|v| v.get("pong").is_some()).await;
        let closed = c.line_until(|v| v.get("close_code").is_some()).await;
        assert_eq!(closed["close_code"], 1000, "{closed}");
    }
}

/// A key that is not the certificate's is refused with what is wrong, where
/// (file and line of `key`) and what would be right: at start the ticker
/// does not start; on reload the running pair stays served and the refusal
/// is published on `$sys.config`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_is_not_the_certificates_is_refused() {
    let pki = Pki::new();
    let good = pki.issue("good", "3003");
    let other = pki.issue("other", "4004");

    let dir = server_dir(&(good.0.clone(), other.1.clone()));
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config()).unwrap();
    let err = Ticker::builder()
        .config_path(&path)
        .start()
        .await
        .expect_err("a mismatched pair does not start")
        .to_string();
    let line = 1 + config().lines().position(|l| l == "[server.tls]").unwrap();
    for needle in [
        format!("config.toml:{line}: [server.tls] key: ").as_str(),
        "tls/key.pem is not the private key of the certificate in",
        "give the key the certificate was issued for",
    ] {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }

    let s = Server::start_in(server_dir(&good), &config()).await;
    support::watching(&s, &s.dir.path().join("tls/key.pem")).await;
    let before = s.ticker.hub().latest("$sys.config").unwrap().seq();
    write_atomic(&s.dir.path().join("tls/key.pem"), &other.1);
    eventually("the reload is refused", || async {
        let u = s.ticker.hub().latest("$sys.config").unwrap();
        u.seq() > before && u.data_as::<Value>().unwrap()["ok"] == false
    })
    .await;
    let refusal: Value = s.ticker.hub().latest_as("$sys.config").unwrap().unwrap();
    let text = refusal["error"].as_str().unwrap();
    assert!(
        text.contains("is not the private key of the certificate"),
        "{text}"
    );
    assert_eq!(served(s.addr, &pki.ca()).await.0, der(&good.0));
}

/// The `tickerd` binary with the TLS config serves it and prints its
/// address as an `https://` URL (what a person starting it is told to open).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_tls_and_prints_an_https_url() {
    let pki = Pki::new();
    let pair = pki.issue("bin", "5005");
    let dir = server_dir(&pair);
    std::fs::write(dir.path().join("config.toml"), config()).unwrap();
    let args = [std::ffi::OsStr::new("-c"), "config.toml".as_ref()];
    let (_child, url) = support::spawn_tickerd_url(dir.path(), &args, Stdio::null()).await;
    let addr = url
        .strip_prefix("https://")
        .unwrap_or_else(|| panic!("not an https:// URL: {url}"))
        .trim_end_matches('/');
    let (cert, _) = served(addr.parse().unwrap(), &pki.ca()).await;
    assert_eq!(cert, der(&pair.0));
}

/// A certificate file without a certificate, and a key file without a key,
/// are each named with their path and what the file should hold.
#[test]
fn files_without_a_certificate_or_a_key_are_named() {
    let pki = Pki::new();
    let pair = pki.issue("plain", "7007");
    let check = |cert: &[u8], key: &[u8]| {
        let dir = server_dir(&(cert.to_vec(), key.to_vec()));
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config()).unwrap();
        tickerd::Config::load(&path)
            .expect_err("an unusable pair")
            .to_string()
    };
    let err = check(b"not a certificate\n", &pair.1);
    assert!(
        err.contains(
            "tls/cert.pem holds no certificate (expected PEM `-----BEGIN CERTIFICATE-----` blocks"
        ),
        "{err}"
    );
    let err = check(&pair.0, &pair.0);
    assert!(
        err.contains("tls/key.pem holds no private key (")
            && err.contains("expected a PEM `-----BEGIN PRIVATE KEY-----`"),
        "{err}"
    );
}
