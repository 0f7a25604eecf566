//! `wengert train` and `wengert eval`: a zoo model on its data sets.

use super::existing_file;
use super::finetune::{FineTune, Normalise};
use super::memory::{eval_batch, Training};
use super::predict::{load_weights, model_metadata, saved_classes, saved_normalisation};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use wengert::core::collective::Collective;
use wengert::core::{Error, Result};
use wengert::data::{Augment, Dataset, DatasetName, Decode, LoadOptions, Loader, Split};
use wengert::resnet::registry::{Model, TrainingDefaults};
use wengert::train::parallel::{mpi_local_size, mpi_world_size, uneven_split, Parallel};
use wengert::train::report::{Confusion, Report, Score};
use wengert::train::run::{EpochRecord, Observer, Outcome, Run, RunLog, StepRecord};
use wengert::train::train::{evaluate_report, Config, Decay, OptimizerKind, Trainer, CHECKPOINT, MODEL};

/// The options of `wengert train`.
#[derive(clap::Args)]
pub struct TrainArgs {
    /// The model: a zoo network (resnetN and plainN for N = 6n+2,
    /// preact_resnetN for N = 9n+2, googlenet), or rnn, lstm, residual_rnn
    /// for sequential MNIST (images read row by row).
    #[arg(long, default_value = "resnet20", value_parser = super::by_name::<Model>())]
    model: Model,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    tune: FineTune,
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
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Clip the gradients' global norm to this (default: 1 for the
    /// recurrent models, none for the others; 0 turns it off).
    #[arg(long, allow_negative_numbers = true)]
    clip: Option<f64>,
    /// L2 weight decay (default: 5e-4 with sgd, 0 with adam).
    #[arg(long, allow_negative_numbers = true)]
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
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Start afresh in an output folder that holds an earlier run's
    /// checkpoint, replacing it (without this, such a folder is refused).
    #[arg(long)]
    overwrite: bool,
    /// Train on the first N images only (quick runs).
    #[arg(long)]
    limit: Option<usize>,
    /// Random-crop augmentation: pad by N pixels, crop back (0: off).
    /// Default: 0 for grey images (the digits are centred, so one epoch
    /// trains best without it); 4, with horizontal flips, for colour
    /// images, as He et al. train on CIFAR.
    #[arg(long)]
    pad: Option<usize>,
    /// Random resized crop: train on regions of MIN to all of each image's
    /// area (aspect ratio ¾ to 4⁄3), resized to the image size, with
    /// horizontal flips. Default: 0.08 (torchvision's) for folders of
    /// images, off for the other formats; 0 turns it off. Not with --pad.
    #[arg(long)]
    crop_scale: Option<f64>,
    /// Each channel's mean for normalisation, in the scale of the pixels
    /// (8-bit pixels divided by 255, float pixels as they are): one value,
    /// or one per channel, comma-separated. With --std. Default: the
    /// dataset's published values for mnist and fashion-mnist, else
    /// measured on the training set.
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true, requires = "std")]
    mean: Option<Vec<f64>>,
    /// Each channel's standard deviation for normalisation, as --mean.
    #[arg(long, value_delimiter = ',', requires = "mean")]
    std: Option<Vec<f64>>,
    /// Check every op's output and gradient for NaN and infinity, and stop
    /// at the first with the op's name and where it was recorded (slow).
    #[arg(long)]
    detect_anomaly: bool,
    /// A published training recipe. he2016-cifar: He et al. 2016 §4.2 for
    /// CIFAR-10 — batch 128, SGD at 0.1 with momentum 0.9 and weight decay
    /// 1e-4, divided by 10 at iterations 32k and 48k, 64k iterations in
    /// all, pad-4 crops and flips (with a warm-up of 400 iterations for
    /// depths of 110 and more, where the paper starts at 0.01).
    #[arg(long, value_parser = ["he2016-cifar"], conflicts_with_all = ["batch_size", "lr", "weight_decay", "epochs", "optimizer"])]
    recipe: Option<String>,
    /// Under mpirun: normalise batch norm over the whole batch across the
    /// ranks (as PyTorch's SyncBatchNorm), so that N ranks compute what one
    /// process computes; without it each rank normalises its own share.
    #[arg(long)]
    sync_bn: bool,
    /// Under mpirun: gradients travel in buckets of this many KiB, each
    /// summed across the ranks as soon as backward has finished it.
    #[arg(long, default_value_t = 1024)]
    bucket_kib: usize,
    /// Start even when the estimate of a step's memory (`wengert summary`
    /// prints it) is more than this machine has available: with swap to
    /// spare, or a limit the estimate does not see.
    #[arg(long)]
    ignore_memory_estimate: bool,
}

/// Which images: the options `wengert train` and `wengert eval` share.
#[derive(clap::Args)]
pub struct DataArgs {
    /// mnist (bundled) or fashion-mnist (Debian's dataset-fashion-mnist).
    #[arg(long, default_value = "mnist", value_parser = super::by_name::<DatasetName>())]
    dataset: DatasetName,
    /// A folder of data to use instead, in a format recognised from its
    /// files: IDX (MNIST-style), CIFAR-10 or CIFAR-100 in their binary
    /// format (the extracted folder, or the one holding it), or array files
    /// (train.safetensors and test.safetensors with u8 or f32 `images` and
    /// integer `labels`), or a folder of images (train/<class>/*.png|jpg
    /// and val/<class>/…, classes sorted by name).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// For a folder of images: resize each so that its shorter side is N
    /// and crop the centre N×N (without it, all must be of one size).
    #[arg(long)]
    image_size: Option<usize>,
    /// For a folder of images: decode every image once as the data loads
    /// and keep them in memory (once), or decode each batch's images as it
    /// is built, while the batch before trains (each-batch), for folders
    /// too large to hold decoded; auto decodes once when the decoded
    /// images take at most 2 GiB.
    #[arg(long, default_value = "auto", value_parser = ["auto", "once", "each-batch"])]
    decode: String,
}

impl DataArgs {
    /// How the folder is read, with `image_size` for image folders.
    fn options(&self, image_size: Option<usize>) -> LoadOptions {
        let decode = match self.decode.as_str() {
            "once" => Decode::Once,
            "each-batch" => Decode::EachBatch,
            _ => Decode::Auto,
        };
        let mut options = LoadOptions::default().with_decode(decode);
        options.image_size = image_size;
        options
    }
}

/// The folder of a dataset: `--data-dir`, which must be a folder, or
/// where the registry finds the named one; errors name `command`.
pub fn data_dir(command: &str, dataset: DatasetName, given: Option<&Path>) -> Result<PathBuf> {
    match given {
        Some(d) if d.is_dir() => Ok(d.to_path_buf()),
        Some(d) => Err(Error::argument(
            command,
            "--data-dir",
            match d.exists() {
                true => format!("{} is a file; give the folder that holds the data", d.display()),
                false => format!("{} does not exist", d.display()),
            },
        )),
        None => dataset.folder(),
    }
}

/// A library error reworded as one about `command`'s `option`, the
/// way the user gave the value; errors of other kinds pass unchanged.
fn as_option(command: &str, option: &str, e: Error) -> Error {
    match e {
        Error::Argument { detail, .. } => Error::argument(command, option, detail),
        Error::Io { path, detail } => Error::argument(command, option, format!("{path}: {detail}")),
        e => e,
    }
}

/// The largest `--image-size` (the image folders' limit).
const MAX_IMAGE_SIZE: usize = 16384;

/// The largest `--bucket-kib`: 1 GiB buckets, past any model's gradients.
const MAX_BUCKET_KIB: usize = 1 << 20;

/// The most worker threads `--threads` accepts: eight per core, far past
/// where more threads stop paying, and far short of exhausting the system.
fn max_threads() -> usize {
    8 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Sets the worker threads: `--threads`, or under mpirun the machine's
/// cores shared among the ranks it runs.
fn set_threads(threads: Option<usize>) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = threads.or(mpi_local_size().map(|ranks| (cores / ranks.max(1)).max(1)));
    if let Some(n) = threads {
        if n == 0 || n > max_threads() {
            return Err(Error::argument(
                "train",
                "--threads",
                format!("must be between 1 and {} (eight per core), got {n}", max_threads()),
            ));
        }
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

/// Checks the options that need no data before any work starts, so that a
/// typo costs a second, not an epoch. The run's settings are checked where
/// the library checks them ([`Config::check`]).
fn check_args(a: &TrainArgs) -> Result<()> {
    let bad = |arg: &str, detail: String| Err(Error::argument("train", arg, detail));
    if a.batch_size == 0 {
        return bad("--batch-size", "must be at least 1, got 0".into());
    }
    if a.bucket_kib == 0 || a.bucket_kib > MAX_BUCKET_KIB {
        return bad("--bucket-kib", format!("must be between 1 and {MAX_BUCKET_KIB} (1 GiB), got {}", a.bucket_kib));
    }
    check_image_size("train", a.data.image_size)?;
    a.tune.check()?;
    if let Some(s) = a.crop_scale.filter(|&s| !(s == 0.0 || (s > 0.0 && s <= 1.0))) {
        return bad("--crop-scale", format!("must be a fraction of the image's area in (0, 1], or 0 for off; got {s}"));
    }
    if a.crop_scale.is_some_and(|s| s > 0.0) && a.pad.is_some_and(|p| p > 0) {
        return bad("--crop-scale", "goes without --pad: the two crop the image in different ways; give one".into());
    }
    if let Some(m) = a.mean.iter().flatten().find(|m| !m.is_finite()) {
        return bad("--mean", format!("must be finite, got {m}"));
    }
    if let Some(s) = a.std.iter().flatten().find(|s| !(s.is_finite() && **s > 0.0)) {
        return bad("--std", format!("must be finite and positive, got {s}"));
    }
    if a.resume && !a.out.join(CHECKPOINT).exists() {
        return bad(
            "--resume",
            format!("{} holds no {CHECKPOINT} to continue; leave out --resume to start afresh", a.out.display()),
        );
    }
    if let Some(uneven) = mpi_world_size().and_then(|ranks| uneven_split(a.batch_size, ranks)) {
        return bad("--batch-size", uneven);
    }
    if a.limit == Some(0) {
        return bad("--limit", "must be at least 1, got 0: there would be nothing to train on".into());
    }
    if let Some(v) = a.clip.filter(|v| !(v.is_finite() && *v >= 0.0)) {
        return bad("--clip", format!("must be finite and non-negative, got {v}"));
    }
    if !a.resume && !a.overwrite && a.out.join(CHECKPOINT).exists() {
        return bad(
            "--out",
            format!(
                "{} holds the checkpoint of an earlier run: --resume continues it, --overwrite replaces it, or \
                 give another --out",
                a.out.display()
            ),
        );
    }
    writable_folder(&a.out)
}

/// He et al. 2016's CIFAR recipe: iterations in all, and where the rate falls.
const HE2016_ITERATIONS: usize = 64_000;
const HE2016_MILESTONES: [usize; 2] = [32_000, 48_000];

/// Applies `--recipe`: the recipe's settings in place of the defaults (the
/// options it sets conflict with it, so none given is overridden).
fn apply_recipe(a: &mut TrainArgs) {
    if a.recipe.as_deref() == Some("he2016-cifar") {
        a.batch_size = 128;
        a.lr = Some(0.1);
        a.weight_decay = Some(1e-4);
        a.optimizer = Some("sgd".into());
    }
}

/// The depth of a zoo model counted in basic blocks (6n+2 for CIFAR
/// ResNets); 0 for the others.
fn basic_depth(model: &Model) -> usize {
    match model {
        Model::Zoo(spec) => 2 * spec.blocks.iter().sum::<usize>() + 2,
        _ => 0,
    }
}

/// The run's settings from the options and the model's defaults, checked;
/// an error names the option (`--lr`), not the setting (`lr`).
fn config(a: &TrainArgs) -> Result<Config> {
    let defaults = a.model.training_defaults();
    let adam = a.optimizer.as_deref().map_or(defaults.adam, |o| o == "adam");
    // An --optimizer other than the model's takes that optimiser's defaults.
    let chosen = TrainingDefaults::optimizer(adam);
    let config = Config::default()
        .with_epochs(a.epochs)
        .with_lr(a.lr.unwrap_or(chosen.lr))
        .with_weight_decay(a.weight_decay.unwrap_or(chosen.weight_decay))
        .with_seed(a.seed)
        .with_optimizer(if adam { OptimizerKind::Adam } else { OptimizerKind::Sgd });
    let config = match a.recipe.as_deref() {
        // The paper warms ResNet-110 up at 0.01 for about 400 iterations.
        Some("he2016-cifar") => config
            .with_warmup(if basic_depth(&a.model) >= 110 { 400 } else { 0 })
            .with_decay(Decay::Steps { milestones: HE2016_MILESTONES.to_vec(), gamma: 0.1 }),
        _ => config,
    };
    config.check().map_err(|e| match e {
        Error::Argument { op, arg, detail } => Error::argument(op, format!("--{}", arg.replace('_', "-")), detail),
        e => e,
    })?;
    Ok(config)
}

/// An error naming `command`'s `--image-size` unless it is in range.
fn check_image_size(command: &str, size: Option<usize>) -> Result<()> {
    match size {
        Some(s) if s == 0 || s > MAX_IMAGE_SIZE => Err(Error::argument(
            command,
            "--image-size",
            format!("must be between 1 and {MAX_IMAGE_SIZE} pixels, got {s}"),
        )),
        _ => Ok(()),
    }
}

/// Creates `dir` if needed and checks that a file can be written in it.
fn writable_folder(dir: &Path) -> Result<()> {
    if dir.is_file() {
        return Err(Error::argument("train", "--out", format!("{} is a file, not a folder", dir.display())));
    }
    let io = |e: std::io::Error| Error::argument("train", "--out", format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let probe = dir.join(format!(".wengert-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(io)?;
    std::fs::remove_file(&probe).map_err(io)
}

/// Each channel's `(mean, std)`: `--mean` and `--std`, what the weights
/// of `--init-from` were trained with (said in the second value), the
/// named dataset's published values, or measured on the training set.
fn normalisation(a: &TrainArgs, train: &Dataset) -> Result<(Normalise, Option<String>)> {
    let channels = train.channels();
    if let (Some(mean), Some(std)) = (&a.mean, &a.std) {
        let per_channel = |v: &[f64], arg: &str| match v.len() {
            1 => Ok(vec![v[0]; channels]),
            n if n == channels => Ok(v.to_vec()),
            n => Err(Error::argument(
                "train",
                arg,
                format!("{n} values for images of {channels} channels: give one, or one per channel"),
            )),
        };
        let (mean, std) = (per_channel(mean, "--mean")?, per_channel(std, "--std")?);
        return Ok((mean.into_iter().zip(std).collect(), None));
    }
    if let Some((pairs, said)) = a.tune.normalisation(channels)? {
        return Ok((pairs, Some(said)));
    }
    if a.data.data_dir.is_none() {
        return Ok((vec![a.data.dataset.normalisation(); channels], None));
    }
    // A channel of one value throughout is only centred.
    let measured = train.channel_stats()?.into_iter().map(|(m, s)| (m, if s > 0.0 { s } else { 1.0 })).collect();
    Ok((measured, None))
}

/// The training and test sets, checked against each other.
fn datasets(dir: &Path, limit: Option<usize>, options: LoadOptions) -> Result<(Dataset, Dataset)> {
    let mut train = Dataset::load_with(dir, Split::Train, options)?;
    if let Some(n) = limit {
        train = train.take(n);
    }
    let test = Dataset::load_with(dir, Split::Test, options)?;
    let io = |detail: String| Error::Io { path: dir.display().to_string(), detail };
    if train.is_empty() {
        return Err(io("the training set has no images".into()));
    }
    if test.is_empty() {
        return Err(io("the test set has no images: nothing to measure accuracy on".into()));
    }
    if train.image_shape() != test.image_shape() {
        return Err(io(format!(
            "training images are {:?} (C, H, W) but test images are {:?}",
            train.image_shape(),
            test.image_shape()
        )));
    }
    Ok((train, test))
}

/// Trains, evaluating after each epoch; prints `test accuracy: XX.XX%` last.
/// Started by mpirun, trains data-parallel with the other ranks.
pub fn run(mut a: TrainArgs) -> Result<ExitCode> {
    apply_recipe(&mut a);
    check_args(&a)?;
    let config = config(&a)?;
    #[cfg(feature = "mpi")]
    if mpi_world_size().is_some() {
        use wengert::train::mpi::MpiGroup;
        let group = Arc::new(MpiGroup::init()?);
        let (rank, size) = (group.rank(), group.size());
        return match train(a, config, Some(group.clone())) {
            Ok(code) => Ok(code),
            Err(e) => {
                // The other ranks wait for this one's sums: end them all.
                eprintln!("error: rank {rank} of {size}: {e}");
                group.abort(1)
            }
        };
    }
    if let Some(ranks) = mpi_world_size().filter(|&r| r > 1) {
        return Err(Error::argument(
            "train",
            "mpirun",
            format!(
                "started as one of {ranks} ranks, but this wengert was built without MPI, so each would train \
                 alone; build it with `cargo build --release --features mpi`"
            ),
        ));
    }
    train(a, config, None)
}

/// The run itself, alone or as one rank of `group`.
fn train(a: TrainArgs, mut config: Config, group: Option<Arc<dyn Collective>>) -> Result<ExitCode> {
    set_threads(a.threads)?;
    let lead = group.as_ref().is_none_or(|g| g.rank() == 0);
    let dir = data_dir("train", a.data.dataset, a.data.data_dir.as_deref())?;
    let (train, test, said) = loaders(&a, &dir)?;
    if let Some(said) = said.filter(|_| lead) {
        out!("{said}");
    }
    if a.recipe.is_some() {
        // The recipe counts iterations: as many epochs as make 64k.
        config.epochs = HE2016_ITERATIONS.div_ceil(train.batches());
    }
    let epochs = config.epochs;
    let trainer = trainer(&a, config, &dir, &train, &test, group.as_ref())?;
    let mut run = Run::new(trainer, &train, &test).save_to(&a.out);
    if a.resume {
        run.resume()?;
        if lead {
            out!("resumed from {} at iteration {}", a.out.display(), run.trainer().iteration);
        }
    }
    let stop = run.stop_flag();
    // Ctrl-C: finish the current step, save a checkpoint, then exit.
    let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    let mut console = Console {
        bar: None,
        epochs,
        batches: train.batches(),
        model: a.model.to_string(),
        out: &a.out,
        names: test.dataset().class_names(),
        top5: None,
        confusion: None,
    };
    // Only rank 0 shows progress, and writes files.
    let observer: &mut dyn Observer = if lead { &mut console } else { &mut () };
    let outcome = run.run(observer);
    if let Some(bar) = console.bar.take() {
        bar.finish_and_clear();
    }
    if !lead {
        return outcome.map(|_| ExitCode::SUCCESS);
    }
    if let (Some(g), Some(p)) = (&group, run.trainer().parallel()) {
        let o = p.overlap();
        out!(
            "data-parallel over {} ranks: gradient sums {:.0}% hidden behind backward ({:.2} s in flight, {:.2} s waited)",
            g.size(),
            100.0 * o.hidden(),
            o.in_flight_s,
            o.waited_s
        );
    }
    finish(outcome?, run.trainer().position().0, &a.out)
}

/// The training and test loaders: the data set, normalised, and the
/// training set augmented as its kind suits; and what to say of the
/// normalisation, when it comes from the weights started from.
fn loaders(a: &TrainArgs, dir: &Path) -> Result<(Loader, Loader, Option<String>)> {
    let (train_set, test_set) =
        datasets(dir, a.limit, a.data.options(a.data.image_size)).map_err(|e| data_option_error("train", e))?;
    let classes = classes(&train_set, &test_set);
    let image = train_set.image_shape();
    if !a.ignore_memory_estimate {
        let ranks = (mpi_world_size().unwrap_or(1), mpi_local_size().unwrap_or(1));
        let resizable = Dataset::is_image_folder(dir);
        // A batch larger than the training set is the whole set.
        let batch = a.batch_size.min(train_set.len());
        Training { model: &a.model, image, classes, batch, ranks, resizable }.check()?;
    }
    let (normalise, said) = normalisation(a, &train_set)?;
    let colour = train_set.channels() > 1;
    let folder = Dataset::is_image_folder(dir);
    // Folders of images: random resized crops; CIFAR's shape and the
    // recipe: the paper's pad-4 crops; grey images: as the dataset suits.
    let crop_scale = a.crop_scale.or((folder && a.pad.is_none() && a.recipe.is_none()).then_some(0.08));
    let resized_crop = crop_scale.filter(|&s| s != 0.0).map(|s| (s, 1.0));
    let side = train_set.rows().min(train_set.cols());
    if let Some(p) = a.pad.filter(|&p| p > side) {
        return Err(Error::argument("train", "--pad", format!("{p} is more than the images' size, {side} pixels")));
    }
    let mut augment = match colour || a.recipe.is_some() {
        true => {
            Augment::default().with_pad(a.pad.unwrap_or(if resized_crop.is_some() { 0 } else { 4 })).with_flip(true)
        }
        false => {
            Augment::default().with_pad(a.pad.unwrap_or(0)).with_flip(a.data.dataset.flips() || resized_crop.is_some())
        }
    };
    augment.resized_crop = resized_crop;
    let train = Loader::new(train_set, a.batch_size, a.seed)?
        .with_channel_normalise(&normalise)
        .map_err(|e| as_option("train", "--mean/--std", e))?
        .with_augment(augment)
        .map_err(|e| as_option("train", if resized_crop.is_some() { "--crop-scale" } else { "--pad" }, e))?;
    let eval = eval_batch(&a.model, image, classes)?;
    let test = Loader::new(test_set, eval, a.seed)?.in_order().with_channel_normalise(&normalise)?;
    Ok((train, test, said))
}

/// An error from loading the data, reworded as one about the option that
/// chose what failed: `--image-size` and `--decode` for the library's
/// settings of those names; others (a damaged file) name the file already.
fn data_option_error(command: &str, e: Error) -> Error {
    match &e {
        Error::Argument { arg, .. } if arg == "image_size" => as_option(command, "--image-size", e),
        Error::Argument { arg, .. } if arg == "decode" => as_option(command, "--decode", e),
        Error::Io { detail, .. } if detail.contains("image size") => as_option(command, "--image-size", e),
        _ => e,
    }
}

/// The classifier's outputs for a training and a test set: the most
/// classes either names, and at least two.
fn classes(train: &Dataset, test: &Dataset) -> usize {
    train.classes().max(test.classes()).max(2)
}

/// The model and its trainer, with the run's settings recorded in the
/// checkpoint (what `eval` and `predict` read back), data-parallel when
/// there is a group.
fn trainer(
    a: &TrainArgs,
    config: Config,
    dir: &Path,
    train: &Loader,
    test: &Loader,
    group: Option<&Arc<dyn Collective>>,
) -> Result<Trainer<Box<dyn wengert::nn::Module<f32>>>> {
    let classes = classes(train.dataset(), test.dataset());
    let image = train.dataset().image_shape();
    let mut model = a.model.build::<f32>(image, classes, &mut wengert::core::rng(a.seed))?;
    let said = a.tune.apply(&mut *model, &a.model)?;
    if group.is_none_or(|g| g.rank() == 0) {
        said.iter().for_each(|line| out!("{line}"));
    }
    let config = config.with_groups(a.tune.groups()?);
    let mut trainer = Trainer::new(model, config, train).map_err(|e| match e {
        Error::Argument { op, arg, detail } if op == "train" => Error::argument(op, format!("--{arg}"), detail),
        e => e,
    })?;
    trainer.clip = a.clip.or(a.model.training_defaults().clip).filter(|c| *c > 0.0);
    trainer.detect_anomaly = a.detect_anomaly;
    trainer.tag("model", &a.model);
    trainer.tag("dataset", dir.display());
    trainer.tag("batch_size", a.batch_size);
    trainer.tag("pad", train.augment().pad);
    if let Some((min, _)) = train.augment().resized_crop {
        trainer.tag("crop_scale", min);
    }
    trainer.tag("classes", classes);
    for (key, value) in a.tune.tags() {
        trainer.tag(key, value);
    }
    let (c, h, w) = image;
    trainer.describe("image_shape", format!("{c},{h},{w}"));
    if !train.dataset().class_names().is_empty() {
        trainer.describe("class_names", train.dataset().class_names().join("\n"));
    }
    let normalise = train.normalise().iter().map(|(m, s)| format!("{m},{s}"));
    trainer.tag("normalise", normalise.collect::<Vec<_>>().join(";"));
    if let Some(g) = group {
        let mut parallel = Parallel::new(g.clone()).with_sync_bn(a.sync_bn);
        parallel.bucket_bytes = a.bucket_kib * 1024;
        trainer.data_parallel(parallel)?;
    }
    Ok(trainer)
}

/// What the run ended with, said on the console, and the exit code.
fn finish(outcome: Outcome, epoch: usize, out: &Path) -> Result<ExitCode> {
    match outcome {
        Outcome::Stopped { epoch_done: false, .. } => {
            out!("interrupted: checkpoint saved in {} (resume with --resume)", out.display());
            Ok(ExitCode::from(130))
        }
        Outcome::Stopped { epoch_done: true, .. } => {
            out!("interrupted after epoch {epoch}: checkpoint saved in {}", out.display());
            Ok(ExitCode::from(130))
        }
        Outcome::Finished { test } => {
            let model = out.join(MODEL);
            if model.exists() {
                out!("checkpoint: {}", model.display());
            }
            out!("test accuracy: {}", percent(&test));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What `wengert train` shows of a run: a progress bar per epoch, a line
/// per epoch, and `curves.png` redrawn after each.
struct Console<'a> {
    bar: Option<indicatif::ProgressBar>,
    epochs: usize,
    batches: usize,
    model: String,
    out: &'a Path,
    /// The test set's class names, for the confusion matrix.
    names: &'a [String],
    /// The last evaluation's top-5 accuracy, for the epoch's line.
    top5: Option<f64>,
    /// The last evaluation's confusion matrix, drawn at the epoch's end.
    confusion: Option<Confusion>,
}

impl Observer for Console<'_> {
    fn epoch_start(&mut self, epoch: usize, start: usize) {
        let bar = indicatif::ProgressBar::new(self.batches as u64);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(format!("{}/{}", epoch + 1, self.epochs));
        bar.set_position(start as u64);
        self.bar = Some(bar);
    }

    fn step(&mut self, s: &Score, rate: f64) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(format!("loss {:.4} acc {} {:.0} img/s", s.loss, percent(s), rate));
        }
    }

    fn evaluated(&mut self, report: &Report) {
        self.top5 = report.top5();
        // Drawn at the epoch's end, once the checkpoint is written: a run
        // whose checkpoint write fails leaves the folder's pictures those
        // of the checkpoint that is there.
        self.confusion = (report.confusion.classes() >= 2).then(|| report.confusion.clone());
    }

    fn epoch_end(&mut self, r: &EpochRecord, log: &RunLog) -> Result<()> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let top5 = self.top5.map_or_else(String::new, |t| format!(" (top-5 {:.2}%)", 100.0 * t));
        out!(
            "epoch {}: train loss {:.4} accuracy {}, test loss {:.4} accuracy {}{top5}, {:.0} images/s",
            r.epoch,
            r.train.loss,
            percent(&r.train),
            r.test.loss,
            percent(&r.test),
            r.images_per_s
        );
        if let Some(confusion) = self.confusion.take() {
            let title = format!("{}: test set, after the epoch", self.model);
            // A chart that cannot be drawn costs the picture, not the run.
            if let Err(e) = super::plot::confusion_png(&self.out.join("confusion.png"), &title, &confusion, self.names)
            {
                eprintln!("warning: {e}");
            }
        }
        plot_curves(&self.out.join("curves.png"), &self.model, log, self.batches)
    }
}

/// `curves.png`: training loss, and training and test error, against the iteration.
fn plot_curves(path: &Path, model: &str, log: &RunLog, batches: usize) -> Result<()> {
    use super::plot::{line_charts, Chart, Series};
    let series = |name: &str, y: fn(&StepRecord) -> f64| Series {
        name: name.into(),
        points: log.steps().iter().map(|r| (r.iteration as f64, y(r))).collect(),
    };
    let test: Vec<(f64, f64)> =
        log.epochs().iter().map(|e| ((e.epoch * batches) as f64, 100.0 * (1.0 - e.test.accuracy))).collect();
    let loss = Chart {
        title: format!("{model}: training loss (running mean over the epoch)"),
        x_label: "iteration".into(),
        y_label: "loss".into(),
        log_y: true,
        series: vec![series("train", |r| r.loss)],
        ..Default::default()
    };
    let error = Chart {
        title: format!("{model}: error"),
        x_label: "iteration".into(),
        y_label: "error (%)".into(),
        log_y: true,
        series: vec![
            series("train (running mean)", |r| r.error_percent),
            Series { name: "test (end of epoch)".into(), points: test },
        ],
        ..Default::default()
    };
    line_charts(path, &[loss, error])
}

/// `wengert eval --checkpoint FILE`: test accuracy of a saved model.
pub fn eval(model: &Model, checkpoint: &Path, data: &DataArgs) -> Result<ExitCode> {
    let dataset = data.dataset;
    existing_file("eval", "--checkpoint", checkpoint)?;
    check_image_size("eval", data.image_size)?;
    let dir = data_dir("eval", dataset, data.data_dir.as_deref())?;
    let meta = model_metadata(model, checkpoint)?;
    // A folder of images is resized as the model's training images were.
    let saved_size = meta.get("image_shape").and_then(|s| s.rsplit(',').next()?.parse().ok());
    let image_size = data.image_size.or(saved_size.filter(|_| Dataset::is_image_folder(&dir)));
    let test =
        Dataset::load_with(&dir, Split::Test, data.options(image_size)).map_err(|e| data_option_error("eval", e))?;
    let classes = saved_classes(&meta, checkpoint)?.unwrap_or(10);
    let normalise = saved_normalisation(&meta, checkpoint)?.unwrap_or(vec![dataset.normalisation(); test.channels()]);
    fits_model(checkpoint, &dir, &test, classes, normalise.len())?;
    let eval = eval_batch(model, test.image_shape(), classes)?;
    let test = Loader::new(test, eval, 0)
        .map_err(|e| Error::Io { path: dir.display().to_string(), detail: format!("test set: {e}") })?
        .in_order()
        .with_channel_normalise(&normalise)?;
    let mut net = model.build::<f32>(test.dataset().image_shape(), classes, &mut wengert::core::rng(0))?;
    load_weights(&mut net, model, checkpoint)?;
    let report = evaluate_report(&mut net, &test)?;
    // Each class's accuracy, by name where the data names them.
    let names = test.dataset().class_names();
    let saved: Vec<String> = meta.get("class_names").map_or_else(Vec::new, |n| n.lines().map(String::from).collect());
    let names = if names.is_empty() { &saved[..] } else { names };
    out!("class      accuracy  images");
    for (k, acc) in report.confusion.per_class_accuracy().iter().enumerate() {
        let images: u64 = (0..report.confusion.classes()).map(|p| report.confusion.count(k, p)).sum();
        let name = names.get(k).cloned().unwrap_or_else(|| k.to_string());
        match acc {
            Some(a) => out!("{name:<10} {:>7.2}%  {images:>6}", 100.0 * a),
            None => out!("{name:<10}        -  {images:>6}"),
        }
    }
    if let Some(t) = report.top5() {
        out!("top-5 accuracy: {:.2}%", 100.0 * t);
    }
    let s = report.score;
    out!("test loss: {:.4}", s.loss);
    out!("test accuracy: {}", percent(&s));
    Ok(ExitCode::SUCCESS)
}

/// An error naming `--data-dir` unless the test set `test` in `dir` is
/// data the model in `checkpoint` can be scored on: images of the
/// channels it was trained on (`channels`, as many as its normalisation
/// has), and no label past its `classes`.
fn fits_model(checkpoint: &Path, dir: &Path, test: &Dataset, classes: usize, channels: usize) -> Result<()> {
    let (here, model) = (dir.display(), checkpoint.display());
    let plural = |n: usize| if n == 1 { "channel" } else { "channels" };
    if test.channels() != channels {
        let c = test.channels();
        return Err(Error::argument(
            "eval",
            "--data-dir",
            format!(
                "the images in {here} have {c} {}, but the model in {model} was trained on images of {channels} {}",
                plural(c),
                plural(channels)
            ),
        ));
    }
    if test.classes() > classes {
        return Err(Error::argument(
            "eval",
            "--data-dir",
            format!(
                "the test set in {here} has {} classes (labels up to {}), but the model in {model} tells {classes} apart",
                test.classes(),
                test.classes() - 1
            ),
        ));
    }
    Ok(())
}
