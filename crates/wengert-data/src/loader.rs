//! Batches from a dataset: seeded shuffling, normalisation, augmentation,
//! and the next batch prepared on another thread while this one trains.
//!
//! Everything random about a batch (the epoch's order, each image's crop and
//! flip) is drawn from a generator seeded by `(seed, epoch, batch index)`
//! alone, so a run is reproducible and can resume at any batch, whatever the
//! thread timing.

use super::{image_file, Dataset, Pixels};
use rand::seq::SliceRandom;
use rand::Rng as _;
use rayon::prelude::*;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use wengert_core::{Error, Float, Result, Tensor};

/// Augmentation of training images: the paper's CIFAR augmentation (He et
/// al. 2016 §4.2: pad by 4, random 32×32 crop, random horizontal flip), or
/// the random resized crop of ImageNet training (Szegedy et al. 2015, as
/// torchvision's `RandomResizedCrop`), and flips.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Augment {
    /// Zero padding on each side before a random crop of the original size
    /// (0: no cropping); pixels outside the image are 0 (black for 8-bit
    /// pixels).
    pub pad: usize,
    /// Flip horizontally with probability ½ (not for digits).
    pub flip: bool,
    /// A random resized crop: a region of the image whose area is a
    /// fraction in `[min, max]` of the image's (torchvision: `(0.08, 1.0)`)
    /// and whose aspect ratio is between ¾ and 4⁄3, resized to the
    /// dataset's image size with bilinear interpolation. Image files
    /// decoded each batch are cropped from the whole decoded file; images
    /// in memory from what is held. Not with `pad`.
    pub resized_crop: Option<(f64, f64)>,
}

/// Builder methods, one per setting: each returns the settings with that
/// one changed, so that code written today keeps compiling when a
/// setting is added (the struct is `#[non_exhaustive]`).
impl Augment {
    /// Sets the zero padding before a random crop ([`Augment::pad`](Self::pad)).
    pub const fn with_pad(mut self, value: usize) -> Self {
        self.pad = value;
        self
    }

    /// Sets whether images flip horizontally with probability ½ ([`Augment::flip`](Self::flip)).
    pub const fn with_flip(mut self, value: bool) -> Self {
        self.flip = value;
        self
    }

    /// Sets the area fractions of a random resized crop ([`Augment::resized_crop`](Self::resized_crop)).
    pub const fn with_resized_crop(mut self, value: (f64, f64)) -> Self {
        self.resized_crop = Some(value);
        self
    }
}

/// The aspect ratios a random resized crop draws from, ¾ to 4⁄3
/// (torchvision's default), uniform in their logarithm.
const RATIOS: (f64, f64) = (3.0 / 4.0, 4.0 / 3.0);

/// The region `(top, left, height, width)` of an `h × w` image that a
/// random resized crop of area fraction in `scale` takes: up to ten draws,
/// as torchvision makes them, then the largest centre region with a ratio
/// in range.
fn resized_crop_region(h: usize, w: usize, scale: (f64, f64), seed: u64) -> (usize, usize, usize, usize) {
    let mut rng = wengert_core::rng(seed);
    let area = (h * w) as f64;
    for _ in 0..10 {
        let target = area * rng.random_range(scale.0..=scale.1);
        let ratio = rng.random_range(RATIOS.0.ln()..=RATIOS.1.ln()).exp();
        let cw = (target * ratio).sqrt().round() as usize;
        let ch = (target / ratio).sqrt().round() as usize;
        if (1..=w).contains(&cw) && (1..=h).contains(&ch) {
            let top = rng.random_range(0..=h - ch);
            let left = rng.random_range(0..=w - cw);
            return (top, left, ch, cw);
        }
    }
    let ratio = w as f64 / h as f64;
    let (ch, cw) = if ratio < RATIOS.0 {
        (((w as f64 / RATIOS.0).round() as usize).clamp(1, h), w)
    } else if ratio > RATIOS.1 {
        (h, ((h as f64 * RATIOS.1).round() as usize).clamp(1, w))
    } else {
        (h, w)
    };
    ((h - ch) / 2, (w - cw) / 2, ch, cw)
}

/// What is drawn for one image of a batch.
struct Draw {
    /// The image's index in the dataset.
    index: usize,
    /// The crop's shift after padding.
    shift: (isize, isize),
    flip: bool,
    /// The seed of the resized crop's region, drawn once the image's size
    /// is known.
    region: u64,
}

/// One batch: images `[B, C, H, W]`, normalised, and their labels.
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
    /// larger side, a resized crop's area fractions must be in `(0, 1]`
    /// and in order, and the two crops do not go together.
    pub fn with_augment(mut self, augment: Augment) -> Result<Self> {
        if let Some((min, max)) = augment.resized_crop {
            if !(min > 0.0 && min <= max && max <= 1.0) {
                return Err(Error::argument(
                    "Loader::with_augment",
                    "resized_crop",
                    format!("area fractions ({min}, {max}) must satisfy 0 < min ≤ max ≤ 1"),
                ));
            }
            if augment.pad > 0 {
                return Err(Error::argument(
                    "Loader::with_augment",
                    "pad",
                    "a random resized crop takes its own region; padding goes with the shifted crop only",
                ));
            }
        }
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

    /// Batch `b` of `epoch`, built on the calling thread; an error for a `b`
    /// past the epoch's last batch.
    pub fn batch<T: Float>(&self, epoch: u64, b: usize) -> Result<Batch<T>> {
        if b >= self.batches() {
            return Err(Error::argument(
                "Loader::batch",
                "b",
                format!("batch {b} of an epoch of {} batches (numbered from 0)", self.batches()),
            ));
        }
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
        let mut draws = Vec::with_capacity(mine.len());
        for (k, &index) in ids.iter().enumerate() {
            // Every image's draws are made, so that a shard's images are
            // augmented as in the whole batch.
            let shift =
                if p > 0 { (rng.random_range(-p..=p) as isize, rng.random_range(-p..=p) as isize) } else { (0, 0) };
            let flip = self.augment.flip && rng.random::<bool>();
            let region = if self.augment.resized_crop.is_some() { rng.random::<u64>() } else { 0 };
            if mine.contains(&k) {
                draws.push(Draw { index, shift, flip, region });
            }
        }
        // The images are independent once drawn: decode and place them in
        // parallel (image files are decoded here, on the loader's threads).
        let mut out = vec![T::zero(); draws.len() * size];
        out.par_chunks_mut(size.max(1)).zip(&draws).try_for_each(|(dst, d)| self.place(d, dst))?;
        Ok(Batch {
            images: Tensor::from_vec(out, [draws.len(), c, h, w])?,
            labels: draws.iter().map(|d| self.data.labels()[d.index] as usize).collect(),
        })
    }

    /// Writes image `d.index`, augmented and normalised, into `dst`.
    fn place<T: Float>(&self, d: &Draw, dst: &mut [T]) -> Result<()> {
        let (c, h, w) = self.data.image_shape();
        let size = c * h * w;
        let scale = self.augment.resized_crop;
        let region = |sh, sw| scale.map(|s| resized_crop_region(sh, sw, s, d.region));
        let byte = |v: u8| v as f64 / 255.0;
        match self.data.pixels() {
            Pixels::U8(all) => self.transform(&all[d.index * size..][..size], region(h, w), d, dst, byte),
            Pixels::F32(all) => self.transform(&all[d.index * size..][..size], region(h, w), d, dst, |v| v as f64),
            Pixels::Files(files) => {
                let file = &files[d.index];
                // The region is cropped and resized as the file decodes.
                let px = match scale {
                    Some(s) => {
                        image_file::decode_region(file, h, w, |sh, sw| resized_crop_region(sh, sw, s, d.region))?
                    }
                    None => image_file::decode_sized(file, h, w)?,
                };
                self.transform(&px, None, d, dst, byte);
            }
        }
        Ok(())
    }

    /// `img` (`[c, h, w]`, values `value(p)`) cropped (shifted or the
    /// `region` resized), flipped and normalised into `dst`; one crop and
    /// one flip for all of an image's channels.
    fn transform<P: Copy, T: Float>(
        &self,
        img: &[P],
        region: Option<(usize, usize, usize, usize)>,
        d: &Draw,
        dst: &mut [T],
        value: impl Fn(P) -> f64,
    ) {
        let (_, h, w) = self.data.image_shape();
        let planes = img.chunks_exact(h * w).zip(dst.chunks_exact_mut(h * w)).zip(&self.normalise);
        for ((plane, out), &(mean, std)) in planes {
            let mut put =
                |y: usize, x: usize, v: f64| out[y * w + if d.flip { w - 1 - x } else { x }] = T::of((v - mean) / std);
            match region {
                None => {
                    let (dy, dx) = d.shift;
                    for y in 0..h {
                        for x in 0..w {
                            let (sy, sx) = (y as isize + dy, x as isize + dx);
                            let inside = sy >= 0 && sy < h as isize && sx >= 0 && sx < w as isize;
                            put(y, x, if inside { value(plane[sy as usize * w + sx as usize]) } else { 0.0 });
                        }
                    }
                }
                Some((top, left, rh, rw)) => {
                    // Bilinear, pixel centres aligned (align_corners=False),
                    // clamped to the region's edge.
                    let at = |o: usize, n: usize, start: usize, len: usize| {
                        let s = ((o as f64 + 0.5) * len as f64 / n as f64 - 0.5).clamp(0.0, (len - 1) as f64);
                        let i = (s.floor() as usize).min(len - 1);
                        (start + i, start + (i + 1).min(len - 1), s - i as f64)
                    };
                    for y in 0..h {
                        let (y0, y1, fy) = at(y, h, top, rh);
                        for x in 0..w {
                            let (x0, x1, fx) = at(x, w, left, rw);
                            let v = |yy: usize, xx: usize| value(plane[yy * w + xx]);
                            let top_row = v(y0, x0) * (1.0 - fx) + v(y0, x1) * fx;
                            let bottom_row = v(y1, x0) * (1.0 - fx) + v(y1, x1) * fx;
                            put(y, x, top_row * (1.0 - fy) + bottom_row * fy);
                        }
                    }
                }
            }
        }
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
        let pad = Augment { pad: 1, flip: true, ..Augment::default() };
        let resized = Augment { flip: true, resized_crop: Some((0.3, 1.0)), ..Augment::default() };
        for (ranks, augment) in [(1, pad), (2, pad), (3, pad), (2, resized), (3, resized)] {
            let whole = Loader::new(toy(23), 8, 5).unwrap().with_augment(augment).unwrap();
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
        assert!(Loader::new(toy(3), 2, 0).unwrap().shard(2, 2).is_err());
    }

    #[test]
    fn crops_shift_and_pad_with_black() {
        let l = Loader::new(Dataset::new(vec![255; 16], vec![1], 4, 4).unwrap(), 1, 0)
            .unwrap()
            .with_normalise(0.0, 1.0)
            .unwrap()
            .with_augment(Augment { pad: 2, ..Augment::default() })
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
        let stats = d.channel_stats().unwrap();
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
        let l = l.with_augment(Augment { flip: true, ..Augment::default() }).unwrap();
        for e in 0..8 {
            let v: Vec<f64> = l.batch::<f64>(e, 0).unwrap().images.data().iter().map(|x| x * 255.0).collect();
            assert!(v == [1.0, 2.0, 3.0, 4.0] || v == [2.0, 1.0, 4.0, 3.0], "{v:?}");
        }
    }

    #[test]
    fn resized_crop_regions_lie_inside_with_the_area_and_ratio_asked() {
        let mut fallbacks = 0;
        for (h, w) in [(32, 32), (40, 48), (7, 100), (1, 1), (3, 2)] {
            for seed in 0..200 {
                let (top, left, rh, rw) = resized_crop_region(h, w, (0.08, 1.0), seed);
                assert!(rh >= 1 && rw >= 1 && top + rh <= h && left + rw <= w, "{h}×{w}: {top} {left} {rh} {rw}");
                assert_eq!((top, left, rh, rw), resized_crop_region(h, w, (0.08, 1.0), seed), "seeded");
                let area = (rh * rw) as f64 / (h * w) as f64;
                let ratio = rw as f64 / rh as f64;
                // Drawn regions (not the centre fallback) keep, up to rounding, the area and ratio drawn.
                if h >= 32 && (top, left) != ((h - rh) / 2, (w - rw) / 2) {
                    assert!(area > 0.06 && area <= 1.0, "{area}");
                    assert!(ratio > 0.7 && ratio < 1.4, "{ratio}");
                } else if h >= 32 {
                    fallbacks += 1;
                }
            }
        }
        assert!(fallbacks < 200, "most draws of a large image succeed ({fallbacks} fell back)");
        // A 7×100 strip is wider than 4/3 at any area: the fallback takes the centre 7×9.
        assert_eq!(resized_crop_region(7, 100, (1.0, 1.0), 0), (0, 45, 7, 9));
    }

    #[test]
    fn a_resized_crop_of_the_whole_image_is_the_image_and_of_a_ramp_a_ramp() {
        // Area 1 on a square image: the only region is the image itself.
        let d = Dataset::new((0..36).map(|i| (i * 7) as u8).collect(), vec![0], 6, 6).unwrap();
        let l = Loader::new(d, 1, 4).unwrap().with_normalise(0.0, 1.0).unwrap();
        let whole = l.clone().with_augment(Augment { resized_crop: Some((1.0, 1.0)), ..Augment::default() }).unwrap();
        assert_eq!(whole.batch::<f64>(0, 0).unwrap().images, l.batch::<f64>(0, 0).unwrap().images);
        // A horizontal ramp stays a ramp: rising along each row, in the source's range, rows alike.
        let ramp = Dataset::new((0..64).map(|i| (i % 8 * 30) as u8).collect(), vec![0], 8, 8).unwrap();
        let l = Loader::new(ramp, 1, 9).unwrap().with_normalise(0.0, 1.0).unwrap();
        let l = l.with_augment(Augment { resized_crop: Some((0.08, 1.0)), ..Augment::default() }).unwrap();
        let mut saw_zoom = false;
        for e in 0..20 {
            let v: Vec<f64> = l.batch::<f64>(e, 0).unwrap().images.data().iter().map(|x| x * 255.0).collect();
            assert!(v.iter().all(|&x| (-1e-9..=210.0 + 1e-9).contains(&x)));
            for row in v.chunks(8) {
                assert!(row.windows(2).all(|p| p[1] >= p[0] - 1e-9), "{row:?}");
                // Rows mix equal rows: alike but for rounding.
                assert!(row.iter().zip(&v[..8]).all(|(a, b)| (a - b).abs() < 1e-9), "{row:?}");
            }
            saw_zoom |= v[7] - v[0] < 209.0;
        }
        assert!(saw_zoom, "some crops take part of the ramp");
    }

    #[test]
    fn settings_outside_their_range_are_errors() {
        let e = Loader::new(toy(3), 0, 0).unwrap_err().to_string();
        assert_eq!(e, "Loader::new: batch_size: must be at least 1, got 0");
        assert!(Loader::new(toy(0), 4, 0).unwrap_err().to_string().contains("no images"));
        let l = Loader::new(toy(3), 2, 0).unwrap();
        assert!(l.clone().with_normalise(0.1, 0.0).is_err());
        assert!(l.clone().with_normalise(f64::NAN, 1.0).is_err());
        assert!(l.clone().with_augment(Augment { pad: usize::MAX, ..Augment::default() }).is_err());
        for bad in [(0.0, 1.0), (0.5, 0.2), (0.1, 1.5), (f64::NAN, 1.0)] {
            let e = l.clone().with_augment(Augment { resized_crop: Some(bad), ..Augment::default() }).unwrap_err();
            assert!(e.to_string().contains("must satisfy 0 < min ≤ max ≤ 1"), "{e}");
        }
        let both = Augment { pad: 2, resized_crop: Some((0.5, 1.0)), ..Augment::default() };
        assert!(l.with_augment(both).unwrap_err().to_string().contains("padding goes with the shifted crop"));
        assert!(Dataset::new(vec![0; 4], vec![1, 2], 2, 2).is_err());
        assert!(Dataset::new(vec![], vec![], 0, 0).is_err());
    }
}
