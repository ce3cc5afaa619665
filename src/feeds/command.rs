//! `command`: runs a program (argv, never a shell) and publishes its stdout.
//!
//! - `interval` mode runs it once per `interval` through the shared
//!   [`poll`](super::poll) loop; its whole stdout is one document and a run that
//!   outlives `timeout` is killed.
//! - `stream` mode keeps it running; each stdout line is one document. When it
//!   exits the run ends with `Err`, and the supervisor restarts it with backoff.
//!
//! Every child starts in its own process group ([`ProcessGroup`]), so whatever it
//! forks is killed with it: on timeout, stop and cancellation the whole group gets
//! SIGKILL. Where we can await, we then reap the child (`stop`); where a future
//! is merely dropped (a timed-out or cancelled poll), `Drop` kills the group and
//! tokio's `kill_on_drop` reaps the child in the background. Never a zombie, never
//! an orphan. stderr goes to the log, one line per event.
//!
//! Reads are capped at the feed's `max_item_bytes`: an interval run's whole
//! output (past it the run is killed and the poll fails), each stream line and
//! each stderr line (past it the line is skipped up to its newline: an error
//! of the feed for stdout, a log line for stderr).

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufRead, BufReader};
use tokio::process::{Child, Command};

use super::limit::{read_capped, CappedLines};
use super::options::{self, secs, Bad, KindOptions};
use super::registry::{self, BuiltinKind};
use super::{poll::poll, Feed, FeedContext, Pipeline};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How long an exited stream's last lines may take to read.
const DRAIN_LIMIT: Duration = Duration::from_secs(1);

/// A program run on a timer or kept running.
#[derive(Debug, Clone)]
pub(super) struct CommandFeed {
    options: CommandOptions,
    pipeline: Pipeline,
}

impl CommandFeed {
    /// A command described by `options`.
    pub(super) fn new(options: CommandOptions) -> Self {
        CommandFeed {
            pipeline: Pipeline::new(options.extract.as_deref(), options.format),
            options,
        }
    }

    /// One interval-mode run: its whole stdout, or why it failed.
    async fn run_once(&self, ctx: &FeedContext) -> anyhow::Result<String> {
        let mut group = ProcessGroup::spawn(&self.options, ctx)?;
        let stdout = group.child.stdout.take().context("stdout is piped")?;
        // Past the cap the command is killed (by `group`'s drop) and the poll
        // fails: its output is never held whole.
        let out = read_capped(stdout, ctx.max_item_bytes())
            .await
            .context("reading stdout")?
            .with_context(|| format!("the output of {}", self.program()))?;
        let status = group
            .child
            .wait()
            .await
            .context("waiting for the command")?;
        // Anything it left behind in its group goes with it.
        group.kill();
        if !status.success() {
            anyhow::bail!("{} exited with {status}", self.program());
        }
        String::from_utf8(out).context("stdout is not UTF-8")
    }

    /// Stream mode: one item per line until the program exits or we stop.
    async fn stream(&self, ctx: &FeedContext) -> anyhow::Result<()> {
        let mut group = ProcessGroup::spawn(&self.options, ctx)?;
        let stdout = group.child.stdout.take().context("stdout is piped")?;
        let mut lines = CappedLines::new(BufReader::new(stdout), ctx.max_item_bytes());
        ctx.mark_running();
        let status = loop {
            tokio::select! {
                line = lines.next_line() => match line {
                    Ok(Some(Ok(line))) => self.line(ctx, &line),
                    Ok(Some(Err(too_large))) => {
                        ctx.item_error(format!("a line of {}: {too_large}", self.program()));
                    }
                    Ok(None) => break group.child.wait().await.context("waiting for the command")?,
                    Err(e) => {
                        group.stop().await;
                        return Err(e).context("reading stdout");
                    }
                },
                // It exited while something it forked may still hold stdout open.
                status = group.child.wait() => {
                    break status.context("waiting for the command")?;
                }
                _ = ctx.cancelled() => {
                    group.stop().await;
                    return Ok(());
                }
            }
        };
        // Kill what it left behind, then publish what it wrote before exiting
        // (bounded: a process that escaped the group could hold stdout forever).
        group.kill();
        let drain = async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(line) = line {
                    self.line(ctx, &line);
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_LIMIT, drain).await;
        anyhow::bail!("{} exited with {status}", self.program())
    }

    /// Publishes one stream line; a bad one is that item's error.
    fn line(&self, ctx: &FeedContext, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        if let Err(e) = ctx.publish_document(&self.pipeline, line) {
            ctx.item_error(format!("{e:#}"));
        }
    }

    fn program(&self) -> &str {
        self.options
            .command
            .first()
            .map_or("command", String::as_str)
    }
}

impl Feed for CommandFeed {
    async fn run(&self, ctx: FeedContext) -> anyhow::Result<()> {
        let o = &self.options;
        match o.mode {
            CommandMode::Interval => {
                poll(&ctx, &self.pipeline, o.interval, o.timeout, || {
                    self.run_once(&ctx)
                })
                .await
            }
            CommandMode::Stream => self.stream(&ctx).await,
        }
    }
}

/// A child in a process group of its own; dropping it kills the group.
struct ProcessGroup {
    child: Child,
    /// The group's id (the child's pid) until the group has been killed.
    pgid: Option<Pid>,
}

impl ProcessGroup {
    /// Spawns the command with stdin closed, stdout piped and stderr logged.
    fn spawn(options: &CommandOptions, ctx: &FeedContext) -> anyhow::Result<Self> {
        let (program, args) = options
            .command
            .split_first()
            .context("`command` is empty")?;
        let mut child = Command::new(program)
            .args(args)
            .envs(&options.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {program:?}"))?;
        let pgid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw);
        if let Some(stderr) = child.stderr.take() {
            let lines = CappedLines::new(BufReader::new(stderr), ctx.max_item_bytes());
            tokio::spawn(log_stderr(lines, ctx.name().to_string()));
        }
        Ok(ProcessGroup { child, pgid })
    }

    /// SIGKILLs the whole group (once).
    fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // ESRCH: the group is already gone, which is what we want.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }

    /// Kills the group and reaps the child.
    async fn stop(&mut self) {
        self.kill();
        let _ = self.child.wait().await;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Copies a child's stderr into the log, line by line, until it closes.
async fn log_stderr(mut lines: CappedLines<impl AsyncBufRead + Unpin>, feed: String) {
    while let Ok(Some(line)) = lines.next_line().await {
        match line {
            Ok(line) => tracing::warn!(feed = %feed, stderr = %line, "Command wrote to stderr."),
            Err(e) => {
                tracing::warn!(feed = %feed, error = %e, "Command wrote an overlong stderr line; skipped.")
            }
        }
    }
}

/// `kind = "command"`.
pub(crate) const KIND: BuiltinKind = BuiltinKind {
    name: "command",
    check: registry::check::<CommandOptions>,
    build: |c| Ok(Arc::new(CommandFeed::new(registry::options(c)?))),
};

/// How a `command` feed runs its program.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CommandMode {
    /// Run it every `interval`; its whole stdout is one document.
    #[default]
    Interval,
    /// Keep it running; each stdout line is one document.
    Stream,
}

/// `command`: runs a program (argv, no shell).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommandOptions {
    /// Program and arguments.
    pub(crate) command: Vec<String>,
    /// `interval` (default) or `stream`.
    #[serde(default)]
    pub(crate) mode: CommandMode,
    /// Time between runs, in `interval` mode.
    #[serde(default = "secs::<5>", with = "humantime_serde")]
    pub(crate) interval: Duration,
    /// Longest one run may take, in `interval` mode; it is killed after that.
    #[serde(default = "secs::<10>", with = "humantime_serde")]
    pub(crate) timeout: Duration,
    /// JSON Pointer (RFC 6901) into the document.
    pub(crate) extract: Option<String>,
    /// How stdout is read.
    #[serde(default)]
    pub(crate) format: options::Format,
    /// Extra environment variables.
    #[serde(default)]
    pub(crate) env: BTreeMap<String, String>,
}

impl KindOptions for CommandOptions {
    fn check(&self, bad: Bad<'_>) {
        if self.command.first().is_none_or(|p| p.is_empty()) {
            bad(
                "command",
                "`command` must be a non-empty list: [program, args...]".into(),
            );
        }
        options::interval(&self.interval, "interval", bad);
        options::interval(&self.timeout, "timeout", bad);
        options::extract(&self.extract, bad);
    }
}
