//! Batches from a dataset: seeded shuffling, normalisation, augmentation,
//! and the next batch prepared on another thread while this one trains.
//!
//! Everything random about a batch (the epoch's order, each image's crop and
//! flip) is drawn from a generator seeded by `(seed, epoch, batch index)`
//! alone, so a run is reproducible and can resume at any batch, whatever the
//! thread timing.

use super::Dataset;
use rand::seq::SliceRandom;
use rand::Rng as _;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use wengert_core::{Error, Float, Result, Tensor};

/// Augmentation of training images (He et al. 2016 §4.2: pad by 4, random
/// 32×32 crop, random horizontal flip).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Augment {
    /// Zero padding on each side before a random crop of the original size
    /// (0: no cropping).
    pub pad: usize,
    /// Flip horizontally with probability ½ (not for digits).
    pub flip: bool,
}

/// One batch: images `[B, 1, H, W]`, normalised, and their labels.
#[derive(Clone, Debug)]
pub struct Batch<T: Float> {
    /// The images.
    pub images: Tensor<T>,
    /// The class of each image.
    pub labels: Vec<usize>,
}

/// Produces the batches of an epoch.
///
/// The settings with a valid range (batch size, normalisation,
/// augmentation) are set through checked methods; a loader always has at
/// least one batch.
#[derive(Clone, Debug)]
pub struct Loader {
    data: Arc<Dataset>,
    batch_size: usize,
    /// Shuffle each epoch (training) or keep the order (evaluation).
    pub shuffle: bool,
    /// Seed of everything random.
    pub seed: u64,
    /// `(mean, std)` per channel.
    normalise: Vec<(f64, f64)>,
    augment: Augment,
    /// `(rank, ranks)`: this loader yields rank's share of every batch.
    shard: (usize, usize),
}

/// Mixes seed, epoch and batch index into one generator seed (SplitMix64's
/// finaliser: nearby inputs give unrelated seeds).
fn mix(a: u64, b: u64, c: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ c.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Loader {
    /// A loader over `data`; MNIST's normalisation (mean 0.1307, std 0.3081),
    /// no augmentation, shuffling on. An empty dataset or a batch size of 0
    /// is an error: either would give an epoch of no batches.
    pub fn new(data: Dataset, batch_size: usize, seed: u64) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::argument("Loader::new", "batch_size", "must be at least 1, got 0"));
        }
        if data.is_empty() {
            return Err(Error::argument("Loader::new", "data", "the dataset has no images"));
        }
        let mnist = crate::DatasetName::Mnist.normalisation();
        Ok(Loader {
            normalise: vec![mnist; data.channels()],
            data: Arc::new(data),
            batch_size,
            shuffle: true,
            seed,
            augment: Augment::default(),
            shard: (0, 1),
        })
    }

    /// Normalises pixels scaled to `[0, 1]` as `(p − mean) / std`, the same
    /// in every channel; `mean` must be finite and `std` finite and positive.
    pub fn with_normalise(self, mean: f64, std: f64) -> Result<Self> {
        let channels = self.data.channels();
        self.with_channel_normalise(&vec![(mean, std); channels])
    }

    /// Normalises each channel with its own `(mean, std)` (as
    /// [`Dataset::channel_stats`] computes them); one pair per channel.
    pub fn with_channel_normalise(mut self, stats: &[(f64, f64)]) -> Result<Self> {
        if stats.len() != self.data.channels() {
            return Err(Error::argument(
                "Loader::with_normalise",
                "mean/std",
                format!("{} (mean, std) pairs for images of {} channels", stats.len(), self.data.channels()),
            ));
        }
        if let Some((mean, std)) = stats.iter().find(|(m, s)| !(m.is_finite() && s.is_finite() && *s > 0.0)) {
            return Err(Error::argument(
                "Loader::with_normalise",
                "mean/std",
                format!("need a finite mean and a finite positive std, got {mean} and {std}"),
            ));
        }
        self.normalise = stats.to_vec();
        Ok(self)
    }

    /// Augments training images; the padding may be at most the image's
    /// larger side.
    pub fn with_augment(mut self, augment: Augment) -> Result<Self> {
        let most = self.data.rows().max(self.data.cols());
        if augment.pad > most {
            return Err(Error::argument(
                "Loader::with_augment",
                "pad",
                format!("{} is more than the images' size {most}", augment.pad),
            ));
        }
        self.augment = augment;
        Ok(self)
    }

    /// Keeps the order of the images (evaluation) instead of shuffling them.
    pub fn in_order(mut self) -> Self {
        self.shuffle = false;
        self
    }

    /// Yields rank `rank`'s share of every batch out of `ranks`, for
    /// data-parallel training: with the same seed on every rank, each
    /// epoch's order is the same everywhere, and rank `r` takes the `r`-th
    /// of `ranks` consecutive parts of each batch (as PyTorch's
    /// `DistributedSampler` gives each rank a disjoint share). A batch of
    /// `b` images gives each rank `b / ranks` of them, the remainder going
    /// one each to the last ranks; a last batch smaller than `ranks` leaves
    /// some ranks none. Each image is cropped and flipped as it would be in
    /// the whole batch, so the ranks' shares together are exactly the
    /// unsharded batch.
    pub fn shard(mut self, rank: usize, ranks: usize) -> Result<Self> {
        if rank >= ranks {
            return Err(Error::argument(
                "Loader::shard",
                "rank",
                format!("{rank} is not below the rank count {ranks}"),
            ));
        }
        self.shard = (rank, ranks);
        Ok(self)
    }

    /// `(rank, ranks)` as [`Loader::shard`] set them; `(0, 1)` unsharded.
    pub fn sharding(&self) -> (usize, usize) {
        self.shard
    }

    /// Images per batch (of the whole batch, across ranks, when sharded).
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The `(mean, std)` each channel is normalised with.
    pub fn normalise(&self) -> &[(f64, f64)] {
        &self.normalise
    }

    /// The augmentation applied to each image.
    pub fn augment(&self) -> Augment {
        self.augment
    }

    /// The dataset.
    pub fn dataset(&self) -> &Dataset {
        &self.data
    }

    /// Batches per epoch (the last one may be smaller).
    pub fn batches(&self) -> usize {
        self.data.len().div_ceil(self.batch_size)
    }

    /// The order of the images in `epoch`.
    fn order(&self, epoch: u64) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.data.len()).collect();
        if self.shuffle {
            idx.shuffle(&mut wengert_core::rng(mix(self.seed, epoch, u64::MAX)));
        }
        idx
    }

    /// Batch `b` of `epoch`, built on the calling thread.
    pub fn batch<T: Float>(&self, epoch: u64, b: usize) -> Result<Batch<T>> {
        let order = self.order(epoch);
        self.build(&order, epoch, b)
    }

    fn build<T: Float>(&self, order: &[usize], epoch: u64, b: usize) -> Result<Batch<T>> {
        let (c, h, w) = self.data.image_shape();
        let size = c * h * w;
        let ids = &order[(b * self.batch_size).min(order.len())..((b + 1) * self.batch_size).min(order.len())];
        let (rank, ranks) = self.shard;
        let mine = ids.len() * rank / ranks..ids.len() * (rank + 1) / ranks;
        let mut rng = wengert_core::rng(mix(self.seed, epoch, b as u64));
        let p = self.augment.pad as i64;
        let mut out = Vec::with_capacity(mine.len() * size);
        for (k, &i) in ids.iter().enumerate() {
            // Every image's draws are made, so that a shard's images are
            // augmented as in the whole batch.
            let (dy, dx) =
                if p > 0 { (rng.random_range(-p..=p) as isize, rng.random_range(-p..=p) as isize) } else { (0, 0) };
            let flip = self.augment.flip && rng.random::<bool>();
            if !mine.contains(&k) {
                continue;
            }
            let img = &self.data.images()[i * size..(i + 1) * size];
            // One crop and one flip for all of an image's channels.
            for (plane, &(mean, std)) in img.chunks_exact(h * w).zip(&self.normalise) {
                for y in 0..h as isize {
                    for x in 0..w as isize {
                        let (sy, sx) = (y + dy, if flip { w as isize - 1 - x } else { x } + dx);
                        let inside = sy >= 0 && sy < h as isize && sx >= 0 && sx < w as isize;
                        let v = if inside { plane[sy as usize * w + sx as usize] } else { 0 };
                        out.push(T::of((v as f64 / 255.0 - mean) / std));
                    }
                }
            }
        }
        let ids = &ids[mine];
        Ok(Batch {
            images: Tensor::from_vec(out, [ids.len(), c, h, w])?,
            labels: ids.iter().map(|&i| self.data.labels()[i] as usize).collect(),
        })
    }

    /// The batches of `epoch` from batch `start` on, each prepared on a
    /// background thread while the previous one is in use.
    pub fn epoch<T: Float>(&self, epoch: u64, start: usize) -> impl Iterator<Item = Result<Batch<T>>> {
        let (tx, rx) = sync_channel(1);
        let me = self.clone();
        std::thread::spawn(move || {
            let order = me.order(epoch);
            for b in start..me.batches() {
                if tx.send(me.build(&order, epoch, b)).is_err() {
                    break; // the consumer stopped early
                }
            }
        });
        Prefetch { rx }
    }
}

struct Prefetch<T: Float> {
    rx: Receiver<Result<Batch<T>>>,
}

impl<T: Float> Iterator for Prefetch<T> {
    type Item = Result<Batch<T>>;
    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n: usize) -> Dataset {
        Dataset::new((0..n * 4).map(|i| (i % 256) as u8).collect(), (0..n).map(|i| (i % 10) as u8).collect(), 2, 2)
            .unwrap()
    }

    #[test]
    fn epochs_are_seeded_and_prefetching_changes_nothing() {
        let l = Loader::new(toy(25), 10, 3).unwrap();
        assert_eq!(l.batches(), 3);
        let a: Vec<Batch<f32>> = l.epoch(0, 0).collect::<Result<_>>().unwrap();
        let b: Vec<Batch<f32>> = (0..3).map(|i| l.batch(0, i).unwrap()).collect();
        assert_eq!(a.iter().map(|x| &x.labels).collect::<Vec<_>>(), b.iter().map(|x| &x.labels).collect::<Vec<_>>());
        assert_eq!(a[2].labels.len(), 5);
        let next: Vec<usize> = l.batch::<f32>(1, 0).unwrap().labels;
        assert_ne!(next, a[0].labels, "a new epoch reshuffles");
        let mut all: Vec<usize> = a.iter().flat_map(|x| x.labels.clone()).collect();
        all.sort();
        assert_eq!(all.len(), 25);
        // Resuming at batch 1 gives the same batches 1 and 2.
        let resumed: Vec<Batch<f32>> = l.epoch(0, 1).collect::<Result<_>>().unwrap();
        assert_eq!(resumed[0].images, a[1].images);
    }

    #[test]
    fn shards_together_are_the_whole_batch_augmentation_included() {
        let whole = Loader::new(toy(23), 8, 5).unwrap().with_augment(Augment { pad: 1, flip: true }).unwrap();
        for ranks in [1, 2, 3] {
            let shards: Vec<Loader> = (0..ranks).map(|r| whole.clone().shard(r, ranks).unwrap()).collect();
            for b in 0..whole.batches() {
                let all: Batch<f64> = whole.batch(1, b).unwrap();
                let parts: Vec<Batch<f64>> = shards.iter().map(|s| s.batch(1, b).unwrap()).collect();
                let labels: Vec<usize> = parts.iter().flat_map(|p| p.labels.clone()).collect();
                let pixels: Vec<f64> = parts.iter().flat_map(|p| p.images.data().to_vec()).collect();
                assert_eq!(labels, all.labels);
                assert_eq!(pixels, all.images.data());
                let sizes: Vec<usize> = parts.iter().map(|p| p.labels.len()).collect();
                assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "{sizes:?}");
            }
        }
        assert!(whole.shard(2, 2).is_err());
    }

    #[test]
    fn crops_shift_and_pad_with_black() {
        let l = Loader::new(Dataset::new(vec![255; 16], vec![1], 4, 4).unwrap(), 1, 0)
            .unwrap()
            .with_normalise(0.0, 1.0)
            .unwrap()
            .with_augment(Augment { pad: 2, flip: false })
            .unwrap();
        let mut saw_border = false;
        for e in 0..20 {
            let x: Batch<f64> = l.batch(e, 0).unwrap();
            assert!(x.images.data().iter().all(|&v| v == 0.0 || v == 1.0));
            saw_border |= x.images.data().contains(&0.0);
        }
        assert!(saw_border);
    }

    #[test]
    fn colour_images_normalise_each_channel_and_crop_them_together() {
        // One 2×2 image of two channels: 0 and 255 in the first, all 51 in the second.
        let d = Dataset::with_channels(vec![0, 255, 0, 255, 51, 51, 51, 51], vec![0], 2, 2, 2).unwrap();
        let stats = d.channel_stats();
        assert_eq!(stats[0], (0.5, 0.5));
        assert!((stats[1].0 - 0.2).abs() < 1e-12 && stats[1].1 < 1e-9);
        let l = Loader::new(d, 1, 0).unwrap().with_channel_normalise(&[(0.5, 0.5), (0.2, 0.1)]).unwrap();
        let b: Batch<f64> = l.batch(0, 0).unwrap();
        assert_eq!(b.images.dims(), &[1, 2, 2, 2]);
        let want = [-1.0, 1.0, -1.0, 1.0, 0.0, 0.0, 0.0, 0.0];
        assert!(b.images.data().iter().zip(want).all(|(a, w)| (a - w).abs() < 1e-12), "{:?}", b.images.data());
        assert!(Loader::new(toy(2), 1, 0).unwrap().with_channel_normalise(&[(0.0, 1.0); 2]).is_err());
        // A flip mirrors both channels alike.
        let d = Dataset::with_channels(vec![1, 2, 3, 4], vec![0], 2, 1, 2).unwrap();
        let l = Loader::new(d, 1, 0).unwrap().with_normalise(0.0, 1.0).unwrap();
        let l = l.with_augment(Augment { pad: 0, flip: true }).unwrap();
        for e in 0..8 {
            let v: Vec<f64> = l.batch::<f64>(e, 0).unwrap().images.data().iter().map(|x| x * 255.0).collect();
            assert!(v == [1.0, 2.0, 3.0, 4.0] || v == [2.0, 1.0, 4.0, 3.0], "{v:?}");
        }
    }

    #[test]
    fn settings_outside_their_range_are_errors() {
        let e = Loader::new(toy(3), 0, 0).unwrap_err().to_string();
        assert_eq!(e, "Loader::new: batch_size: must be at least 1, got 0");
        assert!(Loader::new(toy(0), 4, 0).unwrap_err().to_string().contains("no images"));
        let l = Loader::new(toy(3), 2, 0).unwrap();
        assert!(l.clone().with_normalise(0.1, 0.0).is_err());
        assert!(l.clone().with_normalise(f64::NAN, 1.0).is_err());
        assert!(l.with_augment(Augment { pad: usize::MAX, flip: false }).is_err());
        assert!(Dataset::new(vec![0; 4], vec![1, 2], 2, 2).is_err());
        assert!(Dataset::new(vec![], vec![], 0, 0).is_err());
    }
}
