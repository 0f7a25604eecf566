//! The memory a run will need, estimated from the model, the batch and the
//! image size ([`Summary::training_bytes`]) and checked against what the
//! machine has before the first step, so that a run that cannot fit says
//! so, and what would fit, instead of being killed half-way.

use wengert::core::memory::{available, human};
use wengert::core::{Error, Result};
use wengert::resnet::registry::Model;
use wengert::resnet::summary::Summary;

/// The largest evaluation batch: evaluation has no tape, so a large batch
/// only saves per-batch overhead.
pub const EVAL_BATCH: usize = 500;

/// A model at one input size, with its parameter count.
struct Footprint {
    summary: Summary,
    parameters: usize,
}

impl Footprint {
    fn new(model: &Model, image: (usize, usize, usize), classes: usize) -> Result<Footprint> {
        let (summary, parameters) = model.summary(image, classes)?;
        Ok(Footprint { summary, parameters })
    }

    fn training(&self, batch: usize) -> u64 {
        self.summary.training_bytes(batch, self.parameters)
    }

    /// The largest batch of at most `cap` images whose training step fits
    /// in `room`, or 0.
    fn largest_batch(&self, cap: usize, room: u64) -> usize {
        let (mut lo, mut hi) = (0, cap);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if self.training(mid) <= room {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }
}

/// What a training run asks of memory.
pub struct Training<'a> {
    /// The model.
    pub model: &'a Model,
    /// One image's `(C, H, W)`.
    pub image: (usize, usize, usize),
    /// The classifier's outputs.
    pub classes: usize,
    /// `--batch-size`: images per step, across every rank.
    pub batch: usize,
    /// The ranks training together, and how many of them share this machine.
    pub ranks: (usize, usize),
    /// Whether `--image-size` can change the image size (folders of images).
    pub resizable: bool,
}

impl Training<'_> {
    /// An error saying what fits when one step of this run would need more
    /// memory than this machine has for this process; `Ok` when it fits or
    /// the machine does not say.
    pub fn check(&self) -> Result<()> {
        let Some(machine) = available() else { return Ok(()) };
        let (world, here) = self.ranks;
        let room = machine / here.max(1) as u64;
        let per_rank = self.batch / world.max(1);
        let sized = Footprint::new(self.model, self.image, self.classes)?;
        let need = sized.training(per_rank);
        if need <= room {
            return Ok(());
        }
        let (c, h, w) = self.image;
        let shared = if here > 1 { format!(" shared by {here} ranks") } else { String::new() };
        let what = format!(
            "a step of {} with batch {} of {c}×{h}×{w} images needs about {}; this machine has {} available{shared}",
            self.model,
            self.batch,
            human(need),
            human(machine)
        );
        Err(Error::argument("train", "--batch-size", format!("{what}; {}", self.suggestion(&sized, room)?)))
    }

    /// What to try instead: a smaller batch at this size, else (for folders
    /// of images) the largest smaller image size, halving, where a batch fits.
    fn suggestion(&self, sized: &Footprint, room: u64) -> Result<String> {
        let (world, _) = self.ranks;
        let per_rank = self.batch / world.max(1);
        let fits = sized.largest_batch(per_rank, room);
        if fits > 0 {
            return Ok(format!("try --batch-size {}", fits * world));
        }
        let (c, mut side, _) = self.image;
        if self.resizable {
            while side > 1 {
                side /= 2;
                let smaller = Footprint::new(self.model, (c, side, side), self.classes)?;
                let fits = smaller.largest_batch(per_rank, room);
                if fits > 0 {
                    return Ok(format!("try --batch-size {} --image-size {side}", fits * world));
                }
            }
        }
        Ok("even one image does not fit: try a smaller model".into())
    }
}

/// The evaluation batch for `model` on `image`: [`EVAL_BATCH`], or fewer
/// when that many would take more than a quarter of the memory available
/// (at least 1).
pub fn eval_batch(model: &Model, image: (usize, usize, usize), classes: usize) -> Result<usize> {
    let Some(machine) = available() else { return Ok(EVAL_BATCH) };
    let sized = Footprint::new(model, image, classes)?;
    let room = machine / 4;
    let fits = (1..=EVAL_BATCH).rev().find(|&b| sized.summary.forward_bytes(b, sized.parameters) <= room);
    Ok(fits.unwrap_or(1))
}
