//! `tickerd pub TOPIC [JSON]`: publish one value, or one JSON value per stdin
//! line (batched through `POST /api/publish`), with the publish token; each
//! result printed, a refusal's reason on stderr and the exit status 1.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;
use tickerd::client::Publisher;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::DEFAULT_SERVER;

/// The most stdin lines sent in one request.
const BATCH: usize = 500;
/// How long a batch waits for another stdin line before it is sent: a slow
/// producer's lines go out as they come, a fast one's together.
const LINGER: Duration = Duration::from_millis(20);

/// `tickerd pub`'s arguments.
#[derive(clap::Args)]
pub(crate) struct PubArgs {
    /// The topic to publish to.
    topic: String,
    /// The value, one JSON document (`42`, `'{"price": 1.5}'`); without it,
    /// one value per stdin line.
    json: Option<String>,
    /// The server's base URL.
    #[arg(long, default_value = DEFAULT_SERVER)]
    server: String,
    /// The publish token (`[server] publish_token`); default: $TICKERD_TOKEN.
    #[arg(long)]
    token: Option<String>,
}

/// Runs `tickerd pub`.
pub(crate) async fn run(args: PubArgs) -> ExitCode {
    let token = args
        .token
        .clone()
        .or_else(|| std::env::var("TICKERD_TOKEN").ok());
    let publisher = match Publisher::new(&args.server, token) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let Some(text) = &args.json else {
        return from_stdin(&publisher, &args.topic).await;
    };
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return fail(not_json("the value", &e)),
    };
    match publisher.publish(&args.topic, &value).await {
        Ok(done) => {
            println!("{}", serde_json::to_string(&done).expect("serializes"));
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// One value per stdin line, in batches; blank lines are skipped.
async fn from_stdin(publisher: &Publisher, topic: &str) -> ExitCode {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut ok = true;
    let mut batch = Vec::new();
    let mut n = 0usize;
    loop {
        let next = if batch.is_empty() {
            Ok(lines.next_line().await)
        } else {
            tokio::time::timeout(LINGER, lines.next_line()).await
        };
        let line = match next {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => break,
            Ok(Err(e)) => {
                eprintln!("tickerd pub: cannot read stdin: {e}");
                ok = false;
                break;
            }
            Err(_) => {
                // No line within LINGER: send what waits.
                ok &= send(publisher, &mut batch).await.unwrap_or(false);
                continue;
            }
        };
        n += 1;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(&line) {
            Ok(v) => batch.push((topic.to_string(), v)),
            Err(e) => {
                eprintln!("tickerd pub: {}", not_json(&format!("stdin line {n}"), &e));
                ok = false;
            }
        }
        if batch.len() >= BATCH {
            match send(publisher, &mut batch).await {
                Some(sent) => ok &= sent,
                None => return ExitCode::FAILURE,
            }
        }
    }
    match send(publisher, &mut batch).await {
        Some(sent) if ok && sent => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

/// Publishes and empties `batch`, printing each result: `Some(all published)`,
/// or `None` when the server refused the whole request (said on stderr).
async fn send(publisher: &Publisher, batch: &mut Vec<(String, Value)>) -> Option<bool> {
    if batch.is_empty() {
        return Some(true);
    }
    let items = std::mem::take(batch);
    match publisher.publish_many(&items).await {
        Ok(results) => {
            let mut all = true;
            for ((topic, _), result) in items.iter().zip(results) {
                match result {
                    Ok(done) => println!("{}", serde_json::to_string(&done).expect("serializes")),
                    Err(reason) => {
                        eprintln!("tickerd pub: {topic}: refused: {reason}");
                        all = false;
                    }
                }
            }
            Some(all)
        }
        Err(e) => {
            eprintln!("tickerd pub: {e}");
            None
        }
    }
}

/// The words for input that is not one JSON value.
fn not_json(what: &str, e: &serde_json::Error) -> String {
    format!(
        "{what} is not JSON ({e}); give one JSON value, e.g. 42, \"text\" or '{{\"price\": 1.5}}'"
    )
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("tickerd pub: {e}");
    ExitCode::FAILURE
}
