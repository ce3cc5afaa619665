//! The `tickerd` command: parse arguments, load the config, serve, and shut down
//! gracefully on SIGINT/SIGTERM (SIGHUP reloads); or run a client command
//! (`sub`, `pub`: `src/cli/`). Everything else is the library.

#[cfg(feature = "client")]
mod cli;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tickerd::{Config, Ticker};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

/// Turn any data source into a live, pushed, browser-ready ticker.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Config file (default: ./config.toml if it exists, else the built-in demo).
    #[arg(short, long, global = true)]
    config: Option<PathBuf>,
    /// Address to listen on, an IP address and port such as 127.0.0.1:8080
    /// (overrides server.listen).
    #[arg(long, value_parser = tickerd::config::parse_listen)]
    listen: Option<SocketAddr>,
    /// Serve the web assets from this directory instead of the embedded copy.
    #[arg(long)]
    web_dir: Option<PathBuf>,
    /// This node's name in a cluster (overrides cluster.node; needs [cluster]).
    #[arg(long, value_parser = node_name)]
    node: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the config (and every file of its feeds directory), then exit.
    Check,
    /// Follow topics of a running server: a live view on a terminal, one JSON
    /// frame per line otherwise (or with --json).
    #[cfg(feature = "client")]
    Sub(cli::SubArgs),
    /// Publish a JSON value to a topic of a running server (without JSON: one
    /// value per stdin line).
    #[cfg(feature = "client")]
    Pub(cli::PubArgs),
}

/// A cluster node name: `[a-z0-9_-]+`.
fn node_name(s: &str) -> Result<String, String> {
    tickerd::config::is_name(s)
        .then(|| s.to_string())
        .ok_or_else(|| "a node name is [a-z0-9_-]+".to_string())
}

/// Where the config comes from: a file, or the built-in default.
fn config_source(cli: &Cli) -> Option<PathBuf> {
    cli.config.clone().or_else(|| {
        Path::new("config.toml")
            .is_file()
            .then(|| PathBuf::from("config.toml"))
    })
}

fn main() -> ExitCode {
    #[cfg_attr(not(feature = "client"), allow(unused_mut))]
    let mut cli = Cli::parse();
    #[cfg(feature = "client")]
    match cli.command.take() {
        Some(Command::Sub(args)) => return client_command(cli::sub(args)),
        Some(Command::Pub(args)) => return client_command(cli::publish(args)),
        other => cli.command = other,
    }
    // async_nats reports each failed connection attempt at INFO without the
    // URL; the cluster logs those itself (with the URL, rate-limited).
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,async_nats=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let path = config_source(&cli);
    if let Some(Command::Check) = cli.command {
        return check(path.as_deref());
    }
    let runtime = tokio::runtime::Runtime::new().expect("cannot start the Tokio runtime");
    runtime.block_on(run(cli, path))
}

/// Runs a client command (`sub`, `pub`) on a runtime of its own, without the
/// server's logging.
#[cfg(feature = "client")]
fn client_command(command: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    tokio::runtime::Runtime::new()
        .expect("cannot start the Tokio runtime")
        .block_on(command)
}

/// `tickerd check`: every error and warning, then a one-line verdict.
fn check(path: Option<&Path>) -> ExitCode {
    let result = match path {
        Some(p) => Config::load(p),
        None => Ok(Config::builtin()),
    };
    let name = path.map_or_else(|| "<built-in>".to_string(), |p| p.display().to_string());
    match result {
        Ok(c) => {
            for w in &c.warnings {
                println!("warning: {w}");
            }
            let disabled = c.feeds.iter().filter(|f| !f.enabled).count();
            println!(
                "{name}: ok ({} feeds, {disabled} disabled, {} dashboards)",
                c.feeds.len(),
                c.dashboards.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                println!("{e}");
            }
            println!("{name}: {} error(s)", errors.0.len());
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, path: Option<PathBuf>) -> ExitCode {
    raise_open_file_limit();
    let (listen, web_dir, node) = (cli.listen, cli.web_dir.clone(), cli.node.clone());
    let builder = match &path {
        Some(p) => Ticker::builder().config_path(p),
        None => Ticker::builder().config(Config::builtin()),
    }
    .adjust(move |c| {
        if let Some(listen) = listen {
            c.server.listen = listen;
        }
        if let Some(dir) = &web_dir {
            c.server.web_dir = Some(dir.clone());
        }
        if let (Some(node), Some(cluster)) = (&node, &mut c.cluster) {
            cluster.node = node.clone();
        }
    });
    // Bound before any feed starts: a port in use must not run programs first.
    let (ticker, listener) = match builder.start_listening().await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tickerd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = ticker.config().await;
    if cli.node.is_some() && config.cluster.is_none() {
        warn!("--node has no effect: the config has no [cluster] section.");
    }
    // Installed before the address is printed: whoever reads it may signal at
    // once, and an uninstalled SIGHUP would kill the process.
    let handlers = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    );
    let addr = listener.local_addr().map_or(config.server.listen, |a| a);
    let scheme = if config.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    println!(
        "tickerd {} — dashboard at {scheme}://{addr}/",
        env!("CARGO_PKG_VERSION")
    );
    info!(%addr, config = %path.as_deref().map_or("<built-in>".into(), |p| p.display().to_string()), "Listening.");
    tokio::spawn(signals(handlers, ticker.clone(), path.is_some()));
    if path.is_some() {
        let t = ticker.clone();
        tokio::spawn(async move { t.watch().await });
    }
    if let Err(e) = ticker.serve(listener).await {
        eprintln!("tickerd: server failed: {e}");
        return ExitCode::FAILURE;
    }
    info!("Stopped.");
    ExitCode::SUCCESS
}

/// SIGINT, SIGTERM and SIGHUP streams, as installed.
type Handlers = (
    std::io::Result<tokio::signal::unix::Signal>,
    std::io::Result<tokio::signal::unix::Signal>,
    std::io::Result<tokio::signal::unix::Signal>,
);

/// SIGINT/SIGTERM shut down; SIGHUP reloads the config (when there is a file).
async fn signals(handlers: Handlers, ticker: Ticker, from_file: bool) {
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = handlers else {
        warn!("Cannot install signal handlers.");
        return;
    };
    loop {
        tokio::select! {
            _ = int.recv() => break,
            _ = term.recv() => break,
            _ = hup.recv() => {
                if !from_file {
                    warn!("SIGHUP: running the built-in default config; there is no config file to reload (start with -c PATH).");
                    continue;
                }
                info!("SIGHUP: reloading the config.");
                let _ = ticker.reload().await;
                continue;
            }
        }
    }
    info!("Shutting down.");
    ticker.shutdown();
    // A second signal, or a stuck task, must not keep the process alive forever.
    tokio::time::sleep(Duration::from_secs(5)).await;
    warn!("Shutdown took too long; exiting.");
    std::process::exit(0);
}

/// Raises the open-file soft limit to the hard limit: each client is a socket.
fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => info!(from = soft, to = hard, "Raised the open-file limit."),
            Err(e) => warn!(error = %e, soft, "Cannot raise the open-file limit."),
        },
        Ok((soft, _)) => info!(limit = soft, "Open-file limit."),
        Err(e) => warn!(error = %e, "Cannot read the open-file limit."),
    }
}
