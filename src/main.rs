//! The `wengert` command-line program.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// `println!` for the program's output: when the reader of stdout goes away
/// (`wengert summary resnet152 | head`), the program ends quietly, as
/// command-line tools do, instead of panicking on the failed write.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                eprintln!("error: writing to stdout: {e}");
            }
            std::process::exit(if e.kind() == std::io::ErrorKind::BrokenPipe { 0 } else { 1 });
        }
    }};
}

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
        /// Only measure the peak memory of training steps of a zoo model
        /// (resnet56 and resnet50: the peer workloads).
        #[arg(long, conflicts_with = "profile")]
        mem: Option<String>,
        /// Profile training steps of a zoo model (resnet56 and resnet50 at
        /// the peer workloads' batch): per op, the forward and backward
        /// time and calls per step, the share of the step, GFLOPS where the
        /// op counts its work, and page faults per step; a row per
        /// convolution layer, with the algorithm each of its products runs;
        /// and the convolutions' GFLOPS against the machine's FP32 peak,
        /// measured.
        #[arg(long)]
        profile: Option<String>,
        /// With --mem or --profile: images per step (default 8 for models
        /// other than resnet56/resnet50).
        #[arg(long)]
        batch: Option<usize>,
        /// With --mem or --profile: recompute each block's branch during
        /// backward (gradient checkpointing).
        #[arg(long)]
        recompute: bool,
        /// With --profile: the steps profiled, after two warm-up steps.
        #[arg(long, default_value_t = 5, requires = "profile")]
        steps: usize,
    },
    /// Gradient at the first layer relative to the last, for plain and
    /// residual nets of growing depth, at initialisation (table and PNG).
    Gradflow {
        /// Depths (convolutions) to measure, comma-separated, even.
        #[arg(long, default_value = "8,16,32,64,128,256,512,1024")]
        depths: String,
        /// Folder for gradflow.csv and gradflow.png.
        #[arg(long, default_value = "runs/gradflow")]
        out: PathBuf,
        /// Seed of the weights and the batch.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Measure recurrences through time instead: ‖∂L/∂h(1)‖ / ‖∂L/∂h(T)‖
        /// for the vanilla RNN, the LSTM and the residual recurrence.
        #[arg(long)]
        rnn: bool,
        /// With --rnn: sequence lengths, comma-separated.
        #[arg(long, default_value = "10,30,100,300,1000")]
        steps: String,
    },
    /// Train plain-20, plain-56, ResNet-20 and ResNet-56 with one budget and
    /// plot their error (He et al. 2016, Figure 6).
    Degradation(cli::degradation::DegradationArgs),
    /// Train a zoo model (ResNet-20 on the bundled MNIST by default).
    Train(Box<cli::train::TrainArgs>),
    /// Logits of a model in evaluation mode for the tensor `input` of a safetensors file.
    Predict {
        /// Model name (a zoo ResNet, googlenet, or a recurrent classifier).
        #[arg(long, value_parser = cli::by_name::<wengert::resnet::registry::Model>())]
        model: wengert::resnet::registry::Model,
        /// Weights (safetensors, torchvision-style names; PyTorch exports load as they are).
        #[arg(long)]
        weights: PathBuf,
        /// A safetensors file holding the f32 tensor `input` (NCHW).
        #[arg(long, required_unless_present = "image", requires = "output")]
        input: Option<PathBuf>,
        /// Where to write the tensor `logits`.
        #[arg(long, requires = "input")]
        output: Option<PathBuf>,
        /// Image files (PNG, JPEG) to classify instead: prints each one's
        /// five likeliest classes, named as the training folder named them.
        /// The model file must be one `wengert train` wrote.
        #[arg(long, num_args = 1.., conflicts_with = "input")]
        image: Vec<PathBuf>,
        /// Number of classes (default: the family's, 10 or 1000).
        #[arg(long)]
        classes: Option<usize>,
    },
    /// Write a model and its weights as ONNX (opset 17), for other runtimes.
    Export(cli::export::ExportArgs),
    /// Test accuracy of a saved model.
    Eval {
        /// The model.safetensors file.
        #[arg(long)]
        checkpoint: PathBuf,
        /// The model the checkpoint holds (any name `train --model` takes).
        #[arg(long, default_value = "resnet20", value_parser = cli::by_name::<wengert::resnet::registry::Model>())]
        model: wengert::resnet::registry::Model,
        #[command(flatten)]
        data: cli::train::DataArgs,
    },
    /// Print a model's layers, parameter count and multiply-adds.
    Summary {
        /// A model name: resnet20 … resnet1202, plain20 …, resnet18 … resnet152,
        /// preact_resnet164, preact_resnet1001, googlenet, rnn, lstm, residual_rnn.
        #[arg(required_unless_present = "list", value_parser = cli::by_name::<wengert::resnet::registry::Model>())]
        model: Option<wengert::resnet::registry::Model>,
        /// List the models, one a line, and exit.
        #[arg(long)]
        list: bool,
        /// Input size C,H,W (default 3,32,32 for CIFAR models, 3,224,224 for
        /// ImageNet ones and GoogLeNet, 1,28,28 for the recurrent ones).
        #[arg(long)]
        input: Option<String>,
        /// Number of classes (default 10 or 1000).
        #[arg(long)]
        classes: Option<usize>,
        /// GoogLeNet with its auxiliary classifiers.
        #[arg(long)]
        aux: bool,
        /// Images per training step, for the memory estimate.
        #[arg(long, default_value_t = 64)]
        batch_size: usize,
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
        Command::Train(args) => cli::train::run(*args),
        Command::Degradation(args) => cli::degradation::run(args),
        Command::Gradflow { depths, out, seed, rnn: false, .. } => {
            cli::gradflow::parse_list("--depths", &depths).and_then(|d| cli::gradflow::run(&d, &out, seed))
        }
        Command::Gradflow { out, seed, rnn: true, steps, .. } => {
            cli::gradflow::parse_list("--steps", &steps).and_then(|t| cli::gradflow::run_recurrent(&t, &out, seed))
        }
        Command::Predict { model, weights, input: Some(input), output: Some(output), classes, .. } => {
            cli::predict::predict(&model, &weights, &input, &output, classes)
        }
        Command::Predict { model, weights, image, .. } => cli::predict::predict_images(&model, &weights, &image),
        Command::Export(args) => cli::export::run(&args),
        Command::Eval { checkpoint, model, data } => cli::train::eval(&model, &checkpoint, &data),
        Command::Summary { list: true, .. } => cli::summary::list(),
        Command::Summary { model: Some(model), input, classes, aux, batch_size, .. } => {
            cli::summary::run(model, input.as_deref(), classes, aux, batch_size)
        }
        Command::Summary { model: None, .. } => unreachable!("clap requires a model unless --list is given"),
        Command::Bench { list, only, mem, profile, batch, recompute, steps } => {
            if (batch.is_some() || recompute) && mem.is_none() && profile.is_none() {
                eprintln!("error: --batch and --recompute go with --mem or --profile");
                return ExitCode::from(2);
            }
            cli::bench::run(cli::bench::BenchRequest {
                list,
                only: only.as_deref(),
                mem: mem.as_deref(),
                profile: profile.as_deref(),
                batch,
                recompute,
                steps,
            })
        }
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
