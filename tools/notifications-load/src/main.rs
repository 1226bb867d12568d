//! `notifications-load`: a load generator for the queue consumer (`bins/queue-consumer`).
//!
//! `prepare` provisions a fresh database with N tenants (an agent each) and writes the plan.
//! `reset` deletes the test queue and everything named after it, so a run starts empty. `run`
//! opens the plan's conversations through `conversation.created` notifications (warm-up), then
//! publishes `message.received` notifications to RabbitMQ at a set rate and times each one
//! from its publish to its `message:new` event on the Redis channel: the issue's "applied and
//! fanned out" path, end to end.

#![allow(clippy::print_stdout)] // a command-line tool: its report goes to stdout

mod prepare;
mod procfs;
mod publish;
mod run;
mod subscribe;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Load generator for the queue consumer: agent.notifications to RabbitMQ, events timed on Redis"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Provision a fresh load database (N tenants, an agent each) and write the plan.
    Prepare(prepare::Args),
    /// Delete the queue, its dead-letter and wait queues and its dead-letter exchange.
    Reset(publish::ResetArgs),
    /// Open the conversations, publish message.received notifications and report.
    Run(run::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let current_thread = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    match cli.command {
        Command::Prepare(args) => current_thread()?.block_on(prepare::prepare(args)),
        Command::Reset(args) => current_thread()?.block_on(publish::reset(args)),
        Command::Run(args) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads.max(1))
            .enable_all()
            .build()?
            .block_on(run::run(args)),
    }
}
