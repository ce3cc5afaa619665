//! `[auth.jwt]` (SECURITY.md, "JSON Web Tokens") over real sockets: HS256,
//! RS256 and ES256 tokens grant what their claims say; forged, `alg: none`
//! and expired tokens are refused; expiry closes a WebSocket with 4001 unless
//! it was refreshed; static tokens keep working; keys are checked by the
//! config loader, and a key file that disappears on reload keeps the old keys.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use support::{eventually, get_json, within, write_atomic, Client, Server};

const SECRET: &str = "a-test-secret-of-at-least-thirty-two-bytes";
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/jwt");

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(topics: &[&str], exp: u64) -> Value {
    json!({"sub": "tester", "exp": exp, "topics": topics, "publish": ["desk.*"]})
}

fn hs256(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn pem_token(alg: Algorithm, file: &str, claims: &Value) -> String {
    let pem = std::fs::read(format!("{DATA}/{file}")).unwrap();
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
        _ => EncodingKey::from_ec_pem(&pem).unwrap(),
    };
    jsonwebtoken::encode(&Header::new(alg), claims, &key).unwrap()
}

/// A server whose `[auth.jwt]` reads the HS256 secret from a file and both
/// public keys; `extra` goes into `[auth.jwt]`.
async fn server(extra: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("jwt.secret"), format!("{SECRET}\n")).unwrap();
    for f in ["rsa-public.pem", "ec-public.pem"] {
        std::fs::copy(format!("{DATA}/{f}"), dir.path().join(f)).unwrap();
    }
    let config = format!(
        "[server]\ntoken = \"static-root\"\n\n[auth.jwt]\n\
         hs256_secrets = [\"file:jwt.secret\"]\n\
         public_keys = [\"rsa-public.pem\", \"ec-public.pem\"]\n{extra}"
    );
    Server::start_in(dir, &config).await
}

async fn status_of(s: &Server, token: &str) -> u16 {
    let r = reqwest::Client::new()
        .get(s.http("/api/topics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

/// Tokens of each algorithm grant their `topics`; forged, `alg: none`,
/// expired and malformed ones are 401; the static token still works.
#[tokio::test]
async fn valid_tokens_grant_their_claims_and_bad_ones_are_refused() {
    let s = server("").await;
    let good = claims(&["a.>"], now() + 300);
    for token in [
        hs256(&good, SECRET),
        pem_token(Algorithm::RS256, "rsa-private.pem", &good),
        pem_token(Algorithm::ES256, "ec-private.pem", &good),
    ] {
        assert_eq!(status_of(&s, &token).await, 200);
        let mut c = Client::connect(&format!("{}?token={token}", s.ws_url())).await;
        c.subscribe(&["a.*"]).await;
        c.send(json!({"op": "subscribe", "topics": ["b.x"], "id": 2}))
            .await;
        assert_eq!(c.recv().await["code"], "forbidden");
    }
    assert_eq!(status_of(&s, "static-root").await, 200);
    let forged = hs256(&good, "another-secret-of-at-least-thirty-two-bytes");
    let expired = hs256(&claims(&["a.>"], now() - 120), SECRET);
    let no_exp = hs256(&json!({"topics": [">"]}), SECRET);
    let bad_pattern = hs256(&claims(&["a..b"], now() + 300), SECRET);
    // alg "none": an unsigned token claiming everything.
    let b64 = |v: Value| {
        use std::fmt::Write;
        let raw = v.to_string();
        let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in raw.as_bytes().chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                let _ = out.write_char(table[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    };
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(claims(&[">"], now() + 300))
    );
    // The RS256 key does not verify an HS256 token signed with its PEM text.
    let pem = std::fs::read(format!("{DATA}/rsa-public.pem")).unwrap();
    let confused = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &good,
        &EncodingKey::from_secret(&pem),
    )
    .unwrap();
    for (what, token) in [
        ("forged", forged),
        ("expired", expired),
        ("without exp", no_exp),
        ("a bad pattern", bad_pattern),
        ("alg none", none),
        ("key confusion", confused),
        ("not a JWT", "x.y.z".to_string()),
    ] {
        assert_eq!(status_of(&s, &token).await, 401, "{what}");
    }
}

/// `exp` closes a WebSocket with 4001 ("token expired") once it passes
/// (leeway 0 here); an SSE stream ends then too.
#[tokio::test]
async fn expiry_closes_the_connection_with_4001() {
    let s = server("leeway = \"0s\"\n").await;
    let token = hs256(&claims(&["a.>"], now() + 2), SECRET);
    let mut c = Client::connect(&format!("{}?token={token}", s.ws_url())).await;
    c.subscribe(&["a.*"]).await;
    assert_eq!(c.closed().await, Some(4001));
    let r = reqwest::Client::new()
        .get(s.http("/sse?topics=a.*"))
        .bearer_auth(hs256(&claims(&["a.>"], now() + 2), SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = within(r.text()).await.expect("the stream ends");
    assert!(body.contains("\"type\":\"hello\""), "{body}");
}

/// A `refresh` with a new valid token before `exp` keeps the connection
/// open past it; an invalid one is `unauthorized`, one that does not cover
/// the held patterns `forbidden`; unknown fields are named.
#[tokio::test]
async fn refresh_extends_the_connection() {
    let s = server("leeway = \"0s\"\n").await;
    let first_exp = now() + 3;
    let token = hs256(&claims(&["a.>"], first_exp), SECRET);
    let mut c = Client::connect(&format!("{}?token={token}", s.ws_url())).await;
    c.subscribe(&["a.*"]).await;
    c.send(json!({"op": "refresh", "token": "nope", "id": 1}))
        .await;
    assert_eq!(c.recv().await["code"], "unauthorized");
    let narrow = hs256(&claims(&["b.>"], now() + 300), SECRET);
    c.send(json!({"op": "refresh", "token": narrow, "id": 2}))
        .await;
    let e = c.recv().await;
    assert_eq!(e["code"], "forbidden", "{e}");
    assert!(e["message"].as_str().unwrap().contains("a.*"), "{e}");
    c.send(json!({"op": "refresh", "tokn": "x", "id": 3})).await;
    let e = c.recv().await;
    assert!(e["message"].as_str().unwrap().contains("`tokn`"), "{e}");
    let fresh = hs256(&claims(&["a.>"], now() + 300), SECRET);
    c.send(json!({"op": "refresh", "token": fresh, "id": 4}))
        .await;
    let ack = c.recv().await;
    assert_eq!(
        (ack["type"].as_str(), ack["op"].as_str()),
        (Some("ack"), Some("refresh")),
        "{ack}"
    );
    // Still answered after the first token's exp has passed.
    let mut n = 0;
    while now() <= first_exp + 1 {
        n += 1;
        c.send(json!({"op": "ping", "id": n})).await;
        let pong = c.recv_until(|v| v["type"] != "update").await;
        assert_eq!(pong["type"], "pong");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.send(json!({"op": "ping", "id": "last"})).await;
    assert_eq!(c.recv().await["type"], "pong");
}

/// The body of the 401 that `GET path` with `token` as bearer gets.
async fn refusal_of(s: &Server, path: &str, token: &str) -> String {
    let r = reqwest::Client::new()
        .get(s.http(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "{path}");
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    body["error"].as_str().unwrap().to_string()
}

/// A JWT our key signed but that has expired, or has no `exp`, is told so in
/// the same words on `/ws`, `/sse` and `/api` (and by `refresh`): when it
/// expired and the server's time, or that `exp` is missing. A forged token,
/// expired or not, learns nothing about its claims.
#[tokio::test]
async fn refusals_say_why_a_signed_token_is_refused() {
    let s = server("leeway = \"5s\"\n").await;
    let exp = now() - 120;
    let expired = hs256(&claims(&["a.>"], exp), SECRET);
    let at = |secs: u64| humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs));
    for path in ["/api/topics", "/sse?topics=a.*", "/ws"] {
        let msg = refusal_of(&s, path, &expired).await;
        let want = format!("the token expired at {} (now ", at(exp));
        assert!(msg.starts_with(&want), "{path}: {msg}");
        assert!(
            msg.contains(", leeway 5s); get a fresh one"),
            "{path}: {msg}"
        );
        let no_exp = hs256(&json!({"topics": [">"]}), SECRET);
        let msg = refusal_of(&s, path, &no_exp).await;
        assert!(
            msg.starts_with("the token has no exp claim"),
            "{path}: {msg}"
        );
        let forged = hs256(
            &claims(&["a.>"], exp),
            "another-secret-of-at-least-thirty-two-bytes",
        );
        let msg = refusal_of(&s, path, &forged).await;
        assert!(msg.starts_with("the token is not valid"), "{path}: {msg}");
        assert!(!msg.contains("expire"), "{path}: {msg}");
    }
    let fresh = hs256(&claims(&["a.>"], now() + 300), SECRET);
    let mut c = Client::connect(&format!("{}?token={fresh}", s.ws_url())).await;
    c.send(json!({"op": "refresh", "token": expired, "id": 1}))
        .await;
    let e = c.recv_until(|v| v["type"] == "error").await;
    assert_eq!(e["code"], "unauthorized", "{e}");
    let msg = e["message"].as_str().unwrap();
    assert!(msg.starts_with("the token expired at "), "{e}");
}

/// `refresh` takes only a JWT: a static token (`server.token` or an
/// `[[access]]` token), which has no `exp`, is refused `unauthorized` with a
/// message saying refresh takes a JWT, and the connection still closes with
/// 4001 at its JWT's `exp` (before, the static token replaced the grant and
/// the connection never expired).
#[tokio::test]
async fn refresh_refuses_static_tokens() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("jwt.secret"), SECRET).unwrap();
    let config = "[server]\ntoken = \"static-root\"\n\n\
                  [[access]]\ntoken = \"static-viewer\"\npatterns = [\"a.>\"]\n\n\
                  [auth.jwt]\nhs256_secrets = [\"file:jwt.secret\"]\nleeway = \"0s\"\n";
    let s = Server::start_in(dir, config).await;
    let token = hs256(&claims(&["a.>"], now() + 3), SECRET);
    let mut c = Client::connect(&format!("{}?token={token}", s.ws_url())).await;
    c.subscribe(&["a.*"]).await;
    for (id, static_token) in [(1, "static-root"), (2, "static-viewer")] {
        c.send(json!({"op": "refresh", "token": static_token, "id": id}))
            .await;
        let e = c.recv().await;
        assert_eq!(
            (e["code"].as_str(), e["id"].as_i64()),
            (Some("unauthorized"), Some(id)),
            "{e}"
        );
        let message = e["message"].as_str().unwrap();
        assert!(
            message.contains("JWT") && message.contains("[auth.jwt]"),
            "{e}"
        );
    }
    assert_eq!(c.closed().await, Some(4001), "the JWT's exp still ends it");
}

/// Each `[auth.jwt]` key is checked when the config is loaded, with the
/// file:line style of every config error.
/// Loads `text` as `dir/c.toml` (key files are relative to it).
fn load_in(dir: &std::path::Path, text: &str) -> Result<tickerd::Config, tickerd::ConfigErrors> {
    let path = dir.join("c.toml");
    std::fs::write(&path, text).unwrap();
    tickerd::Config::load(&path)
}

#[test]
fn bad_keys_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("short.key"), "short").unwrap();
    std::fs::write(dir.path().join("junk.pem"), "not a key").unwrap();
    let text = "[auth.jwt]\n\
                hs256_secrets = [\"env:TICKERD_TEST_UNSET_VARIABLE\", \"file:short.key\", \"plain\"]\n\
                public_keys = [\"missing.pem\", \"junk.pem\"]\n\
                leeway = \"soon\"\n";
    let e: Vec<String> = load_in(dir.path(), text)
        .unwrap_err()
        .0
        .iter()
        .map(|e| e.to_string())
        .collect();
    let has = |want: &str| {
        assert!(
            e.iter().any(|x| x.contains(want)),
            "no `{want}` in:\n{}",
            e.join("\n")
        );
    };
    has("c.toml:4: [auth.jwt] leeway: ");
    let e2: Vec<String> = load_in(dir.path(), &text.replace("leeway = \"soon\"\n", ""))
        .unwrap_err()
        .0
        .iter()
        .map(|e| e.to_string())
        .collect();
    let has2 = |want: &str| {
        assert!(
            e2.iter().any(|x| x.contains(want)),
            "no `{want}` in:\n{}",
            e2.join("\n")
        );
    };
    has2("c.toml:2: [auth.jwt] hs256_secrets: \"env:TICKERD_TEST_UNSET_VARIABLE\" environment variable TICKERD_TEST_UNSET_VARIABLE is not set");
    has2("\"file:short.key\" is 5 bytes; an HS256 secret needs at least 32");
    has2("\"plain\" is neither \"env:NAME\" nor \"file:PATH\"");
    has2("c.toml:3: [auth.jwt] public_keys: cannot read \"missing.pem\"");
    has2("\"junk.pem\" is not an RSA or EC (P-256) public key in PEM");
    let empty = load_in(dir.path(), "[auth.jwt]\n").unwrap_err();
    assert!(
        empty.0[0]
            .to_string()
            .contains("needs hs256_secrets or public_keys"),
        "{empty:?}"
    );
}

/// A key file that disappears is a reload error on `$sys.config` (the file
/// named); the keys in force stay, so tokens they verify still work.
#[tokio::test]
async fn a_key_file_gone_on_reload_keeps_the_old_keys() {
    let s = server("").await;
    let token = pem_token(
        Algorithm::RS256,
        "rsa-private.pem",
        &claims(&["a.>"], now() + 300),
    );
    assert_eq!(status_of(&s, &token).await, 200);
    std::fs::remove_file(s.dir.path().join("rsa-public.pem")).unwrap();
    let text = std::fs::read_to_string(&s.config_path).unwrap();
    write_atomic(&s.config_path, format!("{text}\n# touched\n"));
    eventually("the reload error is reported", || async {
        let (_, v) = get_json(&format!(
            "{}?token=static-root",
            s.http("/api/topics/$sys.config")
        ))
        .await;
        v["data"]["ok"] == false
            && v["data"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("rsa-public.pem"))
    })
    .await;
    assert_eq!(status_of(&s, &token).await, 200, "the old keys are kept");
}

fn kid_token(alg: Algorithm, file: &str, kid: Option<&str>, claims: &Value) -> String {
    let pem = std::fs::read(format!("{DATA}/{file}")).unwrap();
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
        _ => EncodingKey::from_ec_pem(&pem).unwrap(),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// A `.json` entry of `public_keys` is a JWKS: its RSA and EC P-256 keys
/// verify RS256 and ES256 tokens; a token's `kid` picks the key (a `kid` of
/// another key, or one no key has, is 401).
#[tokio::test]
async fn a_jwks_file_verifies_tokens_by_kid() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(format!("{DATA}/jwks.json"), dir.path().join("jwks.json")).unwrap();
    let s = Server::start_in(
        dir,
        "[server]\ntoken = \"static-root\"\n\n[auth.jwt]\npublic_keys = [\"jwks.json\"]\n",
    )
    .await;
    let good = claims(&["a.>"], now() + 300);
    let rsa = |kid| kid_token(Algorithm::RS256, "rsa-private.pem", kid, &good);
    let ec = |kid| kid_token(Algorithm::ES256, "ec-private.pem", kid, &good);
    for (what, token, want) in [
        ("RS256, kid rsa-1", rsa(Some("rsa-1")), 200),
        ("ES256, kid ec-1", ec(Some("ec-1")), 200),
        ("RS256, no kid", rsa(None), 200),
        ("ES256, no kid", ec(None), 200),
        ("RS256, the EC key's kid", rsa(Some("ec-1")), 401),
        ("RS256, an unknown kid", rsa(Some("rsa-2")), 401),
        ("ES256, an unknown kid", ec(Some("nope")), 401),
        ("HS256", hs256(&good, SECRET), 401),
    ] {
        assert_eq!(status_of(&s, &token).await, want, "{what}");
    }
    let token = rsa(Some("rsa-1"));
    let mut c = Client::connect(&format!("{}?token={token}", s.ws_url())).await;
    c.subscribe(&["a.*"]).await;
}

/// A malformed JWKS is a config error at the `public_keys` line, naming the
/// file and the key at fault.
#[test]
fn bad_jwks_files_are_config_errors() {
    let good: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{DATA}/jwks.json")).unwrap())
            .unwrap();
    let mut p384 = good.clone();
    p384["keys"][1]["crv"] = json!("P-384");
    let mut no_y = good.clone();
    no_y["keys"][1].as_object_mut().unwrap().remove("y");
    let mut enc = good.clone();
    enc["keys"][0]["use"] = json!("enc");
    let mut wrong_alg = good.clone();
    wrong_alg["keys"][0]["alg"] = json!("ES256");
    let mut twice = good.clone();
    twice["keys"][1]["kid"] = json!("rsa-1");
    let mut short_x = good.clone();
    short_x["keys"][1]["x"] = json!("AAAA");
    let cases = [
        ("not JSON", "{keys".to_string(), "is not a JWKS"),
        ("no keys", "{\"k\": []}".to_string(), "no \"keys\" list"),
        ("empty", "{\"keys\": []}".to_string(), "has no keys"),
        (
            "a secret",
            json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}).to_string(),
            "key 0 is neither an RSA nor an EC (P-256) public key",
        ),
        (
            "P-384",
            p384.to_string(),
            "key 1 (kid \"ec-1\") is on curve",
        ),
        (
            "no y",
            no_y.to_string(),
            "key 1 (kid \"ec-1\") is not a JWK",
        ),
        (
            "use enc",
            enc.to_string(),
            "key 0 (kid \"rsa-1\") is not for signatures",
        ),
        (
            "alg",
            wrong_alg.to_string(),
            "key 0 (kid \"rsa-1\") has alg ES256",
        ),
        ("kid twice", twice.to_string(), "the kid is used twice"),
        (
            "short x",
            short_x.to_string(),
            "x and y must each be 32 bytes",
        ),
    ];
    for (what, text, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keys.json"), text).unwrap();
        let errors: Vec<String> = load_in(
            dir.path(),
            "[auth.jwt]\nleeway = \"5s\"\npublic_keys = [\"keys.json\"]\n",
        )
        .unwrap_err()
        .0
        .iter()
        .map(|e| e.to_string())
        .collect();
        assert!(
            errors.iter().any(
                |e| e.contains("/c.toml:3: [auth.jwt] public_keys: \"keys.json\" ")
                    && e.contains(want)
            ),
            "{what}: no `{want}` in:\n{}",
            errors.join("\n")
        );
    }
}
