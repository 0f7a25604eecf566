//! The `wengert` command-line program.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cli;

/// Wengert: automatic differentiation for very deep residual networks.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Show, with numbers, why residual connections keep gradients alive.
    Demo {
        /// Seed for the random weights.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command.unwrap_or(Command::Demo { seed: 0 }) {
        Command::Demo { seed } => cli::demo::run(seed),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
