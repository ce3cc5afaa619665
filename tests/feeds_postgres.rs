//! The `postgres` feed against a real PostgreSQL 15 (Debian's, started by the
//! test as the `postgres` user in a temp dir, password auth over TCP):
//! LISTEN/NOTIFY to topics, bad payloads, the server restarting, query mode
//! with its column types, and a wrong password.

mod support;

use std::sync::Once;

use serde_json::{json, Value};
use support::databases::Postgres;
use support::feeds::status_until;
use support::{within, Server};

/// The environment variable the feeds read the password from.
const PW_ENV: &str = "TICKERD_TEST_PG_PASSWORD";
/// One holding a wrong password.
const BAD_PW_ENV: &str = "TICKERD_TEST_PG_WRONG_PASSWORD";
const BAD_PW: &str = "not-the-password";

/// Sets the password variables once for the whole test binary (same values
/// every time, before any feed reads them).
fn set_passwords() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var(PW_ENV, Postgres::PASSWORD);
        std::env::set_var(BAD_PW_ENV, BAD_PW);
    });
}

fn config(feeds: &str) -> String {
    format!("[server]\nlisten = \"127.0.0.1:0\"\n\n{feeds}")
}

fn listen_feed(pg: &Postgres) -> String {
    config(&format!(
        r#"[[feed]]
name = "pg"
kind = "postgres"
topic = "pg.{{symbol}}"
url = "{url}"
password_env = "{PW_ENV}"
listen = ["prices", "trades"]
"#,
        url = pg.url()
    ))
}

async fn notify(client: &tokio_postgres::Client, channel: &str, payload: &str) {
    client
        .execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
        .await
        .unwrap();
}

/// Notifications on every LISTENed channel reach the topic named by their
/// payload; a payload that is not JSON is a counted error and the feed keeps
/// running and delivering.
#[tokio::test]
async fn notifications_reach_topics_and_bad_payloads_are_counted() {
    set_passwords();
    let pg = Postgres::start().await;
    let server = Server::start(&listen_feed(&pg)).await;
    let mut c = server.client().await;
    c.subscribe(&["pg.*", "$sys.feeds"]).await;
    status_until(&mut c, "pg", |s| s["state"] == "running").await;
    let db = pg.client().await;

    notify(&db, "prices", r#"{"symbol":"AAPL","price":189.5}"#).await;
    assert_eq!(c.update_of("pg.AAPL").await["data"]["price"], 189.5);
    notify(&db, "trades", r#"{"symbol":"MSFT","qty":3}"#).await;
    assert_eq!(c.update_of("pg.MSFT").await["data"]["qty"], 3);

    notify(&db, "prices", "not json").await;
    let s = status_until(&mut c, "pg", |s| s["errors"].as_u64() >= Some(1)).await;
    assert_eq!(s["state"], "running", "{s}");
    let error = s["error"].as_str().unwrap();
    assert!(
        error.contains("prices") && error.contains("not JSON"),
        "{error}"
    );
    notify(&db, "prices", r#"{"symbol":"AAPL","price":190}"#).await;
    assert_eq!(c.update_of("pg.AAPL").await["data"]["price"], 190);
}

/// When PostgreSQL restarts, the feed shows `backoff`, reconnects, LISTENs
/// again, and notifications sent after the restart arrive.
#[tokio::test]
async fn listen_reconnects_after_a_server_restart() {
    set_passwords();
    let mut pg = Postgres::start().await;
    let server = Server::start(&listen_feed(&pg)).await;
    let mut c = server.client().await;
    c.subscribe(&["pg.*", "$sys.feeds"]).await;
    status_until(&mut c, "pg", |s| s["state"] == "running").await;
    notify(&pg.client().await, "prices", r#"{"symbol":"A","n":1}"#).await;
    assert_eq!(c.update_of("pg.A").await["data"]["n"], 1);

    pg.restart().await;
    let s = status_until(&mut c, "pg", |s| s["state"] == "backoff").await;
    assert!(s["error"].as_str().unwrap().contains("127.0.0.1"), "{s}");
    status_until(&mut c, "pg", |s| s["state"] == "running").await;

    // The feed is connected; its LISTEN may still be in flight, so keep
    // notifying until one arrives (each attempt bounded, the whole bounded).
    let db = pg.client().await;
    let update = within(async {
        for n in 2.. {
            notify(&db, "prices", &json!({"symbol": "A", "n": n}).to_string()).await;
            let got = tokio::time::timeout(std::time::Duration::from_millis(500), async {
                loop {
                    let v = c.recv().await;
                    if v["topic"] == "pg.A" {
                        return v;
                    }
                }
            })
            .await;
            if let Ok(v) = got {
                return v;
            }
        }
        unreachable!()
    })
    .await;
    assert!(update["data"]["n"].as_i64().unwrap() >= 2, "{update}");
}

/// Query mode publishes one item per row, columns as fields, with the common
/// types mapped (ints, floats, numeric, text, bool, timestamptz, date, jsonb,
/// NULL), in both the default and the alternative numeric/timestamp forms.
/// A row over the 1 MiB item limit is a counted error (the small row of the
/// same query still arrives), a query of more than 10 000 rows an error of the
/// poll, and an unmappable column a clear error naming the cast that fixes it.
#[tokio::test]
async fn query_mode_publishes_rows_with_mapped_types() {
    set_passwords();
    let pg = Postgres::start().await;
    let db = pg.client().await;
    db.batch_execute(
        "CREATE TABLE quotes (sym text, price numeric(12,4), qty int, big bigint,
                              ratio double precision, live boolean,
                              at timestamptz, day date, meta jsonb, note varchar(10));
         INSERT INTO quotes VALUES
           ('AAPL', 189.5, 10, 9007199254740993, 0.25, true,
            '2024-05-01 12:00:00.123+00', '2024-05-01', '{\"src\":\"x\"}', NULL),
           ('MSFT', 410.1234, NULL, -1, NULL, false, NULL, NULL, NULL, 'hi');",
    )
    .await
    .unwrap();
    let server = Server::start(&config(&format!(
        r#"[[feed]]
name = "rows"
kind = "postgres"
topic = "q.{{sym}}"
url = "{url}"
password_env = "{PW_ENV}"
query = "SELECT * FROM quotes ORDER BY sym"
interval = "200ms"

[[feed]]
name = "exact"
kind = "postgres"
topic = "exact.{{sym}}"
url = "{url}"
password_env = "{PW_ENV}"
query = "SELECT sym, price, at FROM quotes"
interval = "200ms"
numeric = "string"
timestamps = "rfc3339"

[[feed]]
name = "huge"
kind = "postgres"
topic = "huge.{{sym}}"
url = "{url}"
password_env = "{PW_ENV}"
query = "SELECT 'big' AS sym, repeat('x', 1100000) AS blob UNION ALL SELECT 'small', 'x'"
interval = "200ms"

[[feed]]
name = "many"
kind = "postgres"
topic = "many"
url = "{url}"
password_env = "{PW_ENV}"
query = "SELECT g AS n FROM generate_series(1, 10001) AS g"

[[feed]]
name = "odd"
kind = "postgres"
topic = "odd"
url = "{url}"
password_env = "{PW_ENV}"
query = "SELECT point(1, 2) AS p"
"#,
        url = pg.url()
    )))
    .await;
    let mut c = server.client().await;
    c.subscribe(&["q.*", "exact.*", "huge.*", "$sys.feeds"])
        .await;
    let aapl = c.update_of("q.AAPL").await["data"].clone();
    assert_eq!(
        aapl,
        json!({"sym": "AAPL", "price": 189.5, "qty": 10, "big": 9007199254740993_i64,
               "ratio": 0.25, "live": true, "at": 1714564800123_i64, "day": "2024-05-01",
               "meta": {"src": "x"}, "note": null})
    );
    let msft = c.update_of("q.MSFT").await["data"].clone();
    assert_eq!(msft["qty"], Value::Null);
    assert_eq!(msft["price"], 410.1234);
    assert_eq!(msft["note"], "hi");
    let exact = c.update_of("exact.AAPL").await["data"].clone();
    assert_eq!(
        exact,
        json!({"sym": "AAPL", "price": "189.5000", "at": "2024-05-01T12:00:00.123Z"})
    );

    assert_eq!(c.update_of("huge.small").await["data"]["blob"], "x");
    let s = status_until(&mut c, "huge", |s| s["errors"].as_u64() >= Some(1)).await;
    assert_eq!(s["state"], "running", "{s}");
    assert!(
        s["error"]
            .as_str()
            .unwrap()
            .contains("exceeds max_item_bytes"),
        "{s}"
    );
    let s = status_until(&mut c, "many", |s| s["state"] == "backoff").await;
    assert!(
        s["error"]
            .as_str()
            .unwrap()
            .contains("more than 10000 rows"),
        "{s}"
    );

    let s = status_until(&mut c, "odd", |s| s["state"] == "backoff").await;
    let error = s["error"].as_str().unwrap();
    assert!(
        error.contains("`p`") && error.contains("p::text"),
        "{error}"
    );
}

/// A wrong password is shown on `$sys.feeds` as PostgreSQL's reason, without
/// the password; a missing variable says which one.
#[tokio::test]
async fn wrong_password_is_a_clear_error() {
    set_passwords();
    let pg = Postgres::start().await;
    let server = Server::start(&config(&format!(
        r#"[[feed]]
name = "badpw"
kind = "postgres"
topic = "x"
url = "{url}"
password_env = "{BAD_PW_ENV}"
listen = ["prices"]

[[feed]]
name = "nopw"
kind = "postgres"
topic = "y"
url = "{url}"
password_env = "TICKERD_TEST_PG_UNSET_VARIABLE"
query = "SELECT 1 AS one"
"#,
        url = pg.url()
    )))
    .await;
    let mut c = server.client().await;
    c.subscribe(&["$sys.feeds"]).await;
    let s = status_until(&mut c, "badpw", |s| s["state"] == "backoff").await;
    let error = s["error"].as_str().unwrap();
    assert!(error.contains("password authentication failed"), "{error}");
    assert!(!error.contains(BAD_PW), "{error}");
    let s = status_until(&mut c, "nopw", |s| s["state"] == "backoff").await;
    let error = s["error"].as_str().unwrap();
    assert!(
        error.contains("TICKERD_TEST_PG_UNSET_VARIABLE") && error.contains("not set"),
        "{error}"
    );
}
