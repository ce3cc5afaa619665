//! `tickerd sub PATTERN...`: follow topics from a terminal (a live view, one
//! line per topic) or a script (`--json`, or whenever stdout is not a
//! terminal: one received frame per line). `--count` and `--timeout` end it.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use tickerd::client::{Client, ClientOptions, State, SubscribeOptions};
use tokio::time::{sleep_until, Instant};

use super::view::View;
use super::DEFAULT_SERVER;

/// `tickerd sub`'s arguments.
#[derive(clap::Args)]
pub(crate) struct SubArgs {
    /// Topics or patterns to follow (`stocks.*`, `host.>`, `$sys.feeds.*`).
    #[arg(required = true)]
    patterns: Vec<String>,
    /// The server's base URL (its WebSocket is `/ws` under it).
    #[arg(long, default_value = DEFAULT_SERVER)]
    server: String,
    /// The read token (`[server] token`, an `[[access]]` token or a JWT).
    #[arg(long)]
    token: Option<String>,
    /// Start after this seq in every matching topic (the retained updates
    /// after it come first, where history reaches back).
    #[arg(long)]
    since: Option<u64>,
    /// At most this many updates per second per topic (the latest always arrives).
    #[arg(long)]
    max_rate: Option<f64>,
    /// One JSON frame per line, exactly as received (the default when stdout
    /// is not a terminal).
    #[arg(long)]
    json: bool,
    /// Exit 0 after this many updates (exit 1 if `--timeout` ends it first).
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this long (`10s`, `2m`): exit 0 without `--count`, 1 with it.
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
}

/// Runs `tickerd sub`.
pub(crate) async fn run(args: SubArgs) -> ExitCode {
    let options = ClientOptions {
        token: args.token.clone(),
        ..ClientOptions::default()
    };
    let client = match Client::connect(&args.server, options).await {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let wanted = SubscribeOptions {
        since: args.since,
        max_rate: args.max_rate,
        delta: false,
    };
    let mut updates = match client.subscribe(&args.patterns, wanted).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let mut view = (!args.json && std::io::stdout().is_terminal()).then(View::new);
    let mut state = client.state();
    let deadline = args.timeout.map(|d| Instant::now() + d);
    let mut got = 0u64;
    if let Some(v) = &mut view {
        // The status line at once, before the first update is in.
        v.state(&state.borrow_and_update());
        v.flush();
    }
    let mut redraw = tokio::time::interval(View::EVERY);
    loop {
        if args.count.is_some_and(|n| got >= n) {
            return done(&mut view, ExitCode::SUCCESS);
        }
        let far = Instant::now() + Duration::from_secs(86_400);
        tokio::select! {
            event = updates.recv() => {
                let Some(event) = event else {
                    eprintln!("tickerd sub: the subscription ended");
                    return ExitCode::FAILURE;
                };
                got += 1;
                match &mut view {
                    Some(v) => v.event(&event),
                    None => {
                        let mut out = std::io::stdout().lock();
                        // A closed pipe (`| head`) ends the command quietly.
                        if writeln!(out, "{}", event.frame()).and_then(|()| out.flush()).is_err() {
                            return ExitCode::SUCCESS;
                        }
                    }
                }
            }
            Ok(()) = state.changed() => {
                let now = state.borrow_and_update().clone();
                match &mut view {
                    Some(v) => v.state(&now),
                    None if matches!(now, State::Reconnecting { .. }) => eprintln!("tickerd sub: {now}"),
                    None => {}
                }
            }
            _ = redraw.tick(), if view.is_some() => {
                if let Some(v) = &mut view {
                    v.flush();
                }
            }
            _ = sleep_until(deadline.unwrap_or(far)), if deadline.is_some() => {
                let Some(n) = args.count else { return done(&mut view, ExitCode::SUCCESS) };
                done(&mut view, ExitCode::FAILURE);
                eprintln!(
                    "tickerd sub: got {got} of the {n} updates asked for (--count) within {} (--timeout)",
                    humantime::format_duration(args.timeout.unwrap_or_default())
                );
                return ExitCode::FAILURE;
            }
        }
    }
}

/// Ends with the view showing the last of what came.
fn done(view: &mut Option<View>, code: ExitCode) -> ExitCode {
    if let Some(v) = view {
        v.flush();
    }
    code
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("tickerd sub: {e}");
    ExitCode::FAILURE
}
