//! `wengert train` and `wengert eval`: a zoo model on MNIST-style data.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use wengert::core::{Error, Result};
use wengert::nn::checkpoint::{load_model, write_atomic};
use wengert::nn::optim::Adam;
use wengert::resnet::data::{Augment, Dataset, Loader, Split};
use wengert::resnet::train::{evaluate, Config, Score, Trainer};
use wengert::resnet::zoo::{build, defaults};

/// The options of `wengert train`.
#[derive(clap::Args)]
pub struct TrainArgs {
    /// Zoo model name (resnet20, plain56, preact_resnet164, …), or rnn, lstm,
    /// residual_rnn for sequential MNIST (images read row by row).
    #[arg(long, default_value = "resnet20")]
    model: String,
    #[command(flatten)]
    data: DataArgs,
    /// Epochs.
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Images per batch (64 reached 99.17% after one epoch of MNIST, 128 reached 99.08%).
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// sgd (momentum 0.9) or adam (default: sgd, and adam for the recurrent models).
    #[arg(long, value_parser = ["sgd", "adam"])]
    optimizer: Option<String>,
    /// Peak learning rate, warmed up then decayed to zero on a cosine
    /// (default: 0.1 with sgd, 0.002 with adam).
    #[arg(long)]
    lr: Option<f64>,
    /// Clip the gradients' global norm to this (default: 1 for the
    /// recurrent models, none for the others; 0 turns it off).
    #[arg(long)]
    clip: Option<f64>,
    /// L2 weight decay (default: 5e-4 with sgd, 0 with adam).
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Seed of weights, shuffling and augmentation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Output folder for the checkpoint and metrics.
    #[arg(long, default_value = "runs/latest")]
    out: PathBuf,
    /// Continue from the checkpoint in the output folder.
    #[arg(long)]
    resume: bool,
    /// Train on the first N images only (quick runs).
    #[arg(long)]
    limit: Option<usize>,
    /// Random-crop augmentation: pad by N pixels, crop back (0: off; the
    /// digits are centred, so one epoch trains best without it).
    #[arg(long, default_value_t = 0)]
    pad: usize,
}

/// Which images: the options `wengert train` and `wengert eval` share.
#[derive(clap::Args)]
pub struct DataArgs {
    /// mnist (bundled) or fashion-mnist (Debian's dataset-fashion-mnist).
    #[arg(long, default_value = "mnist")]
    dataset: String,
    /// A folder of IDX files to use instead.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Where Debian's `dataset-fashion-mnist` puts its files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The folder of a dataset: `--data-dir`, or the bundled MNIST, or Debian's
/// Fashion-MNIST package.
pub fn data_dir(dataset: &str, given: Option<&Path>) -> Result<PathBuf> {
    if let Some(d) = given {
        return Ok(d.to_path_buf());
    }
    match dataset {
        "mnist" => {
            let local = PathBuf::from("data/mnist");
            Ok(if local.is_dir() { local } else { Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist") })
        }
        "fashion-mnist" => {
            let d = PathBuf::from(FASHION_MNIST_DIR);
            if d.is_dir() {
                Ok(d)
            } else {
                Err(Error::Io {
                    path: d.display().to_string(),
                    detail: "not found: install it with 'apt-get install dataset-fashion-mnist' or pass --data-dir"
                        .into(),
                })
            }
        }
        other => {
            Err(Error::argument("train", "--dataset", format!("unknown dataset '{other}'; use mnist or fashion-mnist")))
        }
    }
}

/// MNIST-style normalisation: (mean, std) of the pixels in [0, 1].
pub fn normalisation(dataset: &str) -> (f64, f64) {
    if dataset == "fashion-mnist" {
        (0.2860, 0.3530)
    } else {
        (0.1307, 0.3081)
    }
}

fn set_threads(threads: Option<usize>) -> Result<()> {
    if let Some(n) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| Error::argument("train", "--threads", e.to_string()))?;
    }
    Ok(())
}

fn percent(s: &Score) -> String {
    format!("{:.2}%", 100.0 * s.accuracy)
}

/// Trains, evaluating after each epoch; prints `test accuracy: XX.XX%` last.
pub fn run(a: TrainArgs) -> Result<ExitCode> {
    set_threads(a.threads)?;
    let dataset = a.data.dataset.as_str();
    let dir = data_dir(dataset, a.data.data_dir.as_deref())?;
    let mut train_set = Dataset::load(&dir, Split::Train)?;
    if let Some(n) = a.limit {
        train_set = train_set.take(n);
    }
    let test_set = Dataset::load(&dir, Split::Test)?;
    let mut train = Loader::new(train_set, a.batch_size, a.seed);
    train.normalise = normalisation(dataset);
    train.augment = Augment { pad: a.pad, flip: dataset == "fashion-mnist" };
    let mut test = Loader::new(test_set, 500, a.seed);
    test.shuffle = false;
    test.normalise = train.normalise;
    let image = train.dataset().image_shape();
    let model = build::<f32>(&a.model, image, 10, &mut wengert::core::rng(a.seed))?;
    let recurrent = matches!(a.model.as_str(), "rnn" | "lstm" | "residual_rnn");
    let adam = a.optimizer.as_deref().map_or(recurrent, |o| o == "adam");
    let lr = a.lr.unwrap_or(if adam { 0.002 } else { 0.1 });
    let weight_decay = a.weight_decay.unwrap_or(if adam { 0.0 } else { 5e-4 });
    let config = Config { epochs: a.epochs, lr, momentum: 0.9, weight_decay, warmup: 100, seed: a.seed };
    let mut trainer = Trainer::new(model, config, train.batches());
    if adam {
        trainer.set_optimizer(Box::new(Adam::new(weight_decay)));
    }
    trainer.clip = a.clip.or(recurrent.then_some(1.0)).filter(|c| *c > 0.0);
    if a.resume {
        trainer.resume(&a.out)?;
        out!("resumed from {} at iteration {}", a.out.display(), trainer.iteration);
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // Ctrl-C: finish the current step, save a checkpoint, then exit.
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    }
    let csv = a.out.join("metrics.csv");
    let mut rows = vec!["epoch,train_loss,train_accuracy,test_loss,test_accuracy,images_per_s".to_string()];
    if a.resume {
        if let Ok(old) = std::fs::read_to_string(&csv) {
            rows = old.lines().map(String::from).collect();
        }
    }
    let steps_csv = a.out.join("steps.csv");
    let mut steps: Vec<[f64; 3]> = Vec::new();
    if a.resume {
        if let Ok(old) = std::fs::read_to_string(&steps_csv) {
            steps = old.lines().skip(1).filter_map(|l| parse_row(l).and_then(|v| v.try_into().ok())).collect();
        }
    }
    let mut last_test = None;
    while trainer.position().0 < a.epochs {
        let (epoch, start) = trainer.position();
        let bar = indicatif::ProgressBar::new(train.batches() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}")
                .map_err(|e| Error::argument("train", "progress", e.to_string()))?
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, a.epochs));
        bar.set_position(start as u64);
        let mut ips = 0.0;
        let mut interrupted = false;
        let mut done = epoch * train.batches() + start;
        steps.retain(|r| r[0] <= done as f64);
        let score = {
            let stop = stop.clone();
            let result = trainer.epoch(&train, |s, rate| {
                ips = rate;
                done += 1;
                if done % 10 == 0 {
                    steps.push([done as f64, s.loss, 100.0 * (1.0 - s.accuracy)]);
                }
                bar.inc(1);
                bar.set_message(format!("loss {:.4} acc {} {:.0} img/s", s.loss, percent(s), rate));
                if stop.load(Ordering::SeqCst) {
                    interrupted = true;
                }
            });
            bar.finish_and_clear();
            result?
        };
        if interrupted || stop.load(Ordering::SeqCst) {
            trainer.save(&a.out)?;
            out!("interrupted: checkpoint saved in {} (resume with --resume)", a.out.display());
            return Ok(ExitCode::from(130));
        }
        let t = trainer.evaluate(&test)?;
        out!(
            "epoch {}: train loss {:.4} accuracy {}, test loss {:.4} accuracy {}, {ips:.0} images/s",
            epoch + 1,
            score.loss,
            percent(&score),
            t.loss,
            percent(&t)
        );
        rows.push(format!(
            "{},{:.6},{:.6},{:.6},{:.6},{ips:.1}",
            epoch + 1,
            score.loss,
            score.accuracy,
            t.loss,
            t.accuracy
        ));
        trainer.save(&a.out)?;
        write_atomic(&csv, (rows.join("\n") + "\n").as_bytes())?;
        let lines: Vec<String> = steps.iter().map(|r| format!("{},{:.6},{:.4}", r[0], r[1], r[2])).collect();
        write_atomic(
            &steps_csv,
            format!("iteration,train_loss,train_error_percent\n{}\n", lines.join("\n")).as_bytes(),
        )?;
        plot_curves(&a.out.join("curves.png"), &a.model, &steps, &rows, train.batches())?;
        last_test = Some(t);
    }
    let t = match last_test {
        Some(t) => t,
        None => trainer.evaluate(&test)?,
    };
    out!("checkpoint: {}", a.out.join("model.safetensors").display());
    out!("test accuracy: {}", percent(&t));
    Ok(ExitCode::SUCCESS)
}

/// Whether the model is a sequence classifier, whose input size is fixed.
fn model_reads_rows(model: &str) -> bool {
    matches!(model, "rnn" | "lstm" | "residual_rnn")
}

/// The numbers of one CSV row (`None` for the header).
fn parse_row(line: &str) -> Option<Vec<f64>> {
    line.split(',').map(|v| v.parse().ok()).collect()
}

/// `curves.png`: training loss, and training and test error, against the iteration.
fn plot_curves(path: &Path, model: &str, steps: &[[f64; 3]], epochs: &[String], batches: usize) -> Result<()> {
    use wengert::plot::{line_charts, Chart, Series};
    let series =
        |name: &str, col: usize| Series { name: name.into(), points: steps.iter().map(|r| (r[0], r[col])).collect() };
    let test: Vec<(f64, f64)> =
        epochs.iter().filter_map(|l| parse_row(l)).map(|r| (r[0] * batches as f64, 100.0 * (1.0 - r[4]))).collect();
    let loss = Chart {
        title: format!("{model}: training loss (running mean over the epoch)"),
        x_label: "iteration".into(),
        y_label: "loss".into(),
        log_y: true,
        series: vec![series("train", 1)],
        ..Default::default()
    };
    let error = Chart {
        title: format!("{model}: error"),
        x_label: "iteration".into(),
        y_label: "error (%)".into(),
        log_y: true,
        series: vec![series("train (running mean)", 2), Series { name: "test (end of epoch)".into(), points: test }],
        ..Default::default()
    };
    line_charts(path, &[loss, error])
}

/// `wengert eval --checkpoint FILE`: test accuracy of a saved model.
pub fn eval(model: &str, checkpoint: &Path, data: &DataArgs) -> Result<ExitCode> {
    let dataset = data.dataset.as_str();
    let dir = data_dir(dataset, data.data_dir.as_deref())?;
    let mut test = Loader::new(Dataset::load(&dir, Split::Test)?, 500, 0);
    test.shuffle = false;
    test.normalise = normalisation(dataset);
    let mut net = build::<f32>(model, test.dataset().image_shape(), 10, &mut wengert::core::rng(0))?;
    load_model(&mut net, checkpoint, true)?;
    let s = evaluate(&mut net, &test)?;
    out!("test loss: {:.4}", s.loss);
    out!("test accuracy: {}", percent(&s));
    Ok(ExitCode::SUCCESS)
}

/// `wengert predict`: the logits of a zoo model in evaluation mode for the
/// f32 tensor `input` (NCHW) of a safetensors file, written as `logits`.
pub fn predict(model: &str, weights: &Path, input: &Path, output: &Path, classes: Option<usize>) -> Result<ExitCode> {
    use std::collections::BTreeMap;
    use wengert::nn::checkpoint::{read_tensors, write_tensors};
    use wengert::nn::{Module, Step};
    let mut tensors = read_tensors::<f32>(input)?;
    let x = tensors
        .remove("input")
        .ok_or_else(|| Error::Io { path: input.display().to_string(), detail: "no tensor named 'input'".into() })?;
    if x.rank() != 4 {
        return Err(Error::shape("predict", format!("input is {}; need [N, C, H, W]", x.shape())));
    }
    let ((_, h, w), default_classes) = defaults(model)?;
    let classes = classes.unwrap_or(default_classes);
    let d = x.dims();
    if model_reads_rows(model) && (d[2], d[3]) != (h, w) {
        return Err(Error::shape("predict", format!("{model} reads {h}×{w} images; the input is {}", x.shape())));
    }
    let mut net = build::<f32>(model, (d[1], d[2], d[3]), classes, &mut wengert::core::rng(0))?;
    load_model(&mut net, weights, true)?;
    let tape = wengert::core::Tape::new();
    let logits = tape.no_grad(|| net.forward(&mut Step::eval(&tape), tape.constant(x)))?.value()?;
    write_tensors(&BTreeMap::from([("logits".to_string(), logits)]), output)?;
    out!("wrote logits to {}", output.display());
    Ok(ExitCode::SUCCESS)
}
