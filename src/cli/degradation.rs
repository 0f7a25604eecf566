//! `wengert degradation`: plain and residual nets of 20 and 56 layers
//! trained on the same data with the same budget, as in Figure 6 of
//! He et al. 2016. The deeper plain net trains worse than the shallower one
//! (the degradation problem); the residual connections remove most of that
//! gap (at the default budget the deeper ResNet does not yet overtake the
//! shallower one: chapter 5 of the tutorials gives the figures).

use super::plot::{line_charts, Chart, Series};
use crate::cli::train::data_dir;
use std::path::PathBuf;
use std::process::ExitCode;
use wengert::core::{Error, Result};
use wengert::data::{Augment, Dataset, DatasetName, Loader, Split};
use wengert::nn::checkpoint::write_atomic;
use wengert::resnet::registry::Model;
use wengert::train::report::Score;
use wengert::train::run::{EpochRecord, Observer, Run, RunLog};
use wengert::train::train::{Config, Trainer};

/// The options of `wengert degradation`.
#[derive(clap::Args)]
pub struct DegradationArgs {
    /// Models to compare, comma-separated.
    #[arg(long, default_value = "plain20,plain56,resnet20,resnet56")]
    models: String,
    /// fashion-mnist (the default when Debian's dataset-fashion-mnist is installed) or mnist.
    #[arg(long, value_parser = super::by_name::<DatasetName>())]
    dataset: Option<DatasetName>,
    /// A folder of IDX files to use instead.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A budget that finishes in a few minutes on two cores: 3,000 training
    /// images, 2 epochs, 1,000 test images.
    #[arg(long)]
    quick: bool,
    /// Training images (default 10,000; 3,000 with --quick).
    #[arg(long)]
    limit: Option<usize>,
    /// Epochs (default 3; 2 with --quick).
    #[arg(long)]
    epochs: Option<usize>,
    /// Test images (default all 10,000; 1,000 with --quick).
    #[arg(long)]
    test_limit: Option<usize>,
    /// Images per batch.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Peak learning rate (warm-up, then cosine decay).
    #[arg(long, default_value_t = 0.1)]
    lr: f64,
    /// Seed of weights, shuffling and augmentation (the same for every model).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Folder for degradation.csv and degradation.png.
    #[arg(long, default_value = "runs/degradation")]
    out: PathBuf,
}

/// One model's curves.
#[derive(Default)]
struct Curve {
    name: String,
    /// `(iteration, training error % over the last 10 iterations)`.
    train: Vec<(f64, f64)>,
    /// `(iteration, test error %)` after each epoch.
    test: Vec<(f64, f64)>,
}

/// Records a [`Curve`] as the run goes: the training error of each window
/// of ten iterations (not the epoch's running mean), and the test error.
#[derive(Default)]
struct Curves {
    run: Curve,
    batches: usize,
    /// The iteration the epoch started at, steps done in it, and the images
    /// seen and misclassified in it up to the last window.
    base: usize,
    done: usize,
    seen: f64,
    wrong: f64,
}

impl Observer for Curves {
    fn epoch_start(&mut self, epoch: usize, start: usize) {
        (self.base, self.done, self.seen, self.wrong) = (epoch * self.batches, start, 0.0, 0.0);
    }

    fn step(&mut self, s: &Score, _: f64) {
        self.done += 1;
        if self.done.is_multiple_of(10) || self.done == self.batches {
            let wrong = s.images as f64 * (1.0 - s.accuracy);
            let error = 100.0 * (wrong - self.wrong) / (s.images as f64 - self.seen).max(1.0);
            self.run.train.push(((self.base + self.done) as f64, error));
            (self.seen, self.wrong) = (s.images as f64, wrong);
        }
    }

    fn epoch_end(&mut self, r: &EpochRecord, _: &RunLog) -> Result<()> {
        self.run.test.push(((r.epoch * self.batches) as f64, 100.0 * (1.0 - r.test.accuracy)));
        Ok(())
    }
}

/// Trains each model in turn; prints a table, writes the CSV and the plot.
pub fn run(a: DegradationArgs) -> Result<ExitCode> {
    let fashion = DatasetName::FashionMnist.folder().is_ok();
    let dataset = a.dataset.unwrap_or(if fashion { DatasetName::FashionMnist } else { DatasetName::Mnist });
    let dir = data_dir("degradation", dataset, a.data_dir.as_deref())?;
    let (limit, epochs, test_limit) = if a.quick {
        (a.limit.unwrap_or(3_000), a.epochs.unwrap_or(2), a.test_limit.unwrap_or(1_000))
    } else {
        (a.limit.unwrap_or(10_000), a.epochs.unwrap_or(3), a.test_limit.unwrap_or(10_000))
    };
    let (mean, std) = dataset.normalisation();
    let train = Loader::new(Dataset::load(&dir, Split::Train)?.take(limit), a.batch_size, a.seed)?
        .with_normalise(mean, std)?
        .with_augment(Augment::default().with_flip(dataset.flips()))?;
    let test = Loader::new(Dataset::load(&dir, Split::Test)?.take(test_limit), 500, a.seed)?
        .in_order()
        .with_normalise(mean, std)?;
    std::fs::create_dir_all(&a.out)
        .map_err(|e| Error::Io { path: a.out.display().to_string(), detail: e.to_string() })?;
    out!(
        "{dataset}: {limit} training images, {epochs} epochs of {} iterations, batch {}, lr {}; {test_limit} test images",
        train.batches(),
        a.batch_size,
        a.lr
    );
    let mut runs = Vec::new();
    for name in a.models.split(',').map(str::trim) {
        let model = name.parse::<Model>()?.build::<f32>((1, 28, 28), 10, &mut wengert::core::rng(a.seed))?;
        let config = Config::default().with_epochs(epochs).with_lr(a.lr).with_seed(a.seed);
        let trainer = Trainer::new(model, config, &train)?;
        let mut curves = Curves {
            run: Curve { name: name.into(), ..Curve::default() },
            batches: train.batches(),
            ..Curves::default()
        };
        let t0 = std::time::Instant::now();
        Run::new(trainer, &train, &test).run(&mut curves)?;
        let run = curves.run;
        let last = run.train.iter().rev().take(5).map(|p| p.1).sum::<f64>() / run.train.len().clamp(1, 5) as f64;
        out!(
            "{name:>10}: training error {last:6.2}% (last 50 iterations), test error {:6.2}%, {:.0} s",
            run.test.last().map_or(f64::NAN, |p| p.1),
            t0.elapsed().as_secs_f64()
        );
        runs.push(run);
    }
    let mut csv = vec!["model,kind,iteration,error_percent".to_string()];
    for r in &runs {
        csv.extend(r.train.iter().map(|(i, e)| format!("{},train,{i},{e:.4}", r.name)));
        csv.extend(r.test.iter().map(|(i, e)| format!("{},test,{i},{e:.4}", r.name)));
    }
    write_atomic(&a.out.join("degradation.csv"), (csv.join("\n") + "\n").as_bytes())?;
    let chart = |title: &str, pick: fn(&Curve) -> &Vec<(f64, f64)>| Chart {
        title: format!("{title} ({dataset})"),
        x_label: "iteration".into(),
        y_label: "error (%)".into(),
        log_y: true,
        series: runs.iter().map(|r| Series { name: r.name.clone(), points: pick(r).clone() }).collect(),
        ..Default::default()
    };
    let png = a.out.join("degradation.png");
    line_charts(
        &png,
        &[chart("training error, 10-iteration windows", |r| &r.train), chart("test error", |r| &r.test)],
    )?;
    out!("wrote {} and {}", a.out.join("degradation.csv").display(), png.display());
    Ok(ExitCode::SUCCESS)
}
