//! A program that follows topics of a running tickerd with `tickerd::client`:
//! it prints each update (snapshots first) and the connection's state, and
//! keeps going across server restarts, resuming where it left off.
//!
//! ```sh
//! cargo run --example subscribe -- http://127.0.0.1:8080 'stocks.*' 'host.>'
//! ```
//!
//! Arguments: the server's URL, then patterns (default `>`: every topic).
//! `TICKERD_TOKEN` is sent as the read token when set.

use futures_util::StreamExt;
use tickerd::client::{Client, ClientOptions, Event, SubscribeOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let mut patterns: Vec<String> = args.collect();
    if patterns.is_empty() {
        patterns.push(">".into());
    }
    let options = ClientOptions {
        token: std::env::var("TICKERD_TOKEN").ok(),
        ..ClientOptions::default()
    };
    let client = Client::connect(&url, options).await?;
    let mut state = client.state();
    eprintln!("connection: {}", *state.borrow());
    tokio::spawn(async move {
        while state.changed().await.is_ok() {
            eprintln!("connection: {}", *state.borrow_and_update());
        }
    });
    let mut updates = client
        .subscribe(&patterns, SubscribeOptions::default())
        .await?;
    while let Some(event) = updates.next().await {
        match event {
            Event::Update(u) => {
                let kind = if u.snapshot { " (snapshot)" } else { "" };
                println!("{} #{} {}{kind}", u.topic, u.seq, u.data);
            }
            Event::Gone { topic } => println!("{topic} gone"),
        }
    }
    Ok(())
}
