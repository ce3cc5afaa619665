//! `tickerd-bench`: the fan-out benchmark of tickerd against its peers.
//!
//! - `gen` runs one scenario: an upstream WebSocket server emitting timestamped
//!   messages, the server under test (a child process, pinned by its command
//!   line), and N clients that subscribe and measure; prints one JSON line (one per phase with `--phases`).
//! - `tutorial` is the Rust peer: the usual tokio-tungstenite + broadcast design.
//! - `table` turns the JSON lines of a run into the markdown table.
//!
//! `bench/run.sh` drives all three.

mod clients;
mod frames;
mod gen;
mod sys;
mod table;
mod tutorial;
mod upstream;

use clap::Parser;

#[derive(Parser)]
#[command(about = "tickerd fan-out benchmark")]
enum Cli {
    /// Run one scenario against one server and print its JSON line(s).
    Gen(Box<gen::Args>),
    /// Serve as the tutorial-style Rust peer.
    Tutorial(tutorial::Args),
    /// Print the markdown table of a results file (JSON lines).
    Table(table::Args),
}

fn main() {
    match Cli::parse() {
        Cli::Gen(a) => gen::run(*a),
        Cli::Tutorial(a) => tutorial::run(a),
        Cli::Table(a) => table::run(a),
    }
}
