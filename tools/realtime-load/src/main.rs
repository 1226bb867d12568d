//! `realtime-load`: a load generator for the realtime service.
//!
//! `prepare` provisions a database with one tenant, N agents and a few supervisors and writes
//! the plan (who may connect, the database URLs) to a JSON file. `run` opens Socket.IO
//! connections for those agents, publishes events to Redis at a set number of deliveries per
//! second with contiguous `seq`s, and measures each delivery's latency from publish to receipt
//! on one clock (this process's). See `docs/realtime-performance.md`.

#![allow(clippy::print_stdout)] // a command-line tool: its report goes to stdout

mod prepare;
mod procfs;
mod run;
mod stats;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Load generator for the realtime service: N Socket.IO connections, events at a set rate, delivery latency"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Provision the load database (one tenant, N agents, a few supervisors) and write the plan.
    Prepare(prepare::Args),
    /// Connect sockets, publish events at the given rates and report latency and memory.
    Run(run::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Prepare(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(prepare::prepare(args)),
        Command::Run(args) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads.max(1))
            .enable_all()
            .build()?
            .block_on(run::run(args)),
    }
}
