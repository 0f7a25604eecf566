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
    /// Run the benchmark workloads and print one JSON line per result.
    Bench {
        /// List the workload names instead of running them.
        #[arg(long)]
        list: bool,
        /// Comma-separated workloads to run (default: all).
        #[arg(long)]
        only: Option<String>,
    },
    /// Print a model's layers, parameter count and multiply-adds.
    Summary {
        /// A zoo name: resnet20 … resnet1202, plain20 …, resnet18 … resnet152.
        model: String,
        /// Input size C,H,W (default 3,32,32 for CIFAR models, 3,224,224 for ImageNet ones).
        #[arg(long)]
        input: Option<String>,
        /// Number of classes (default 10 or 1000).
        #[arg(long)]
        classes: Option<usize>,
    },
    /// Check every op against the reference cases (*.json) in DIR.
    Conformance {
        /// Folder of case files.
        dir: std::path::PathBuf,
        /// Precision to run the cases in.
        #[arg(long, default_value = "f64", value_parser = ["f32", "f64"])]
        dtype: String,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command.unwrap_or(Command::Demo { seed: 0 }) {
        Command::Demo { seed } => cli::demo::run(seed),
        Command::Summary { model, input, classes } => cli::summary::run(&model, input.as_deref(), classes),
        Command::Bench { list, only } => cli::bench::run(list, only.as_deref()),
        Command::Conformance { dir, dtype } => cli::conformance::run(&dir, &dtype),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
