//! The benchmark workloads of the peer comparison, as closures.
//!
//! `wengert bench` times them with the shared timing rule and prints JSON
//! lines comparable with the PyTorch script; the criterion benches in
//! `benches/` time the same closures. Each constructor does its setup
//! (random inputs with fixed seeds) and returns the work of one call.

use wengert_core::{BackwardOptions, Result, Tape, Tensor};

use wengert_ops::{add_relu, batch_norm_relu_train, batch_norm_train, conv2d, matmul, tanh, Conv2dOptions};

/// A seeded standard-normal tensor.
fn randn(shape: &[usize], seed: u64) -> Result<Tensor<f32>> {
    Tensor::normal(shape, 0.0, 1.0, &mut wengert_core::rng(seed))
}

/// `C = A·B` for square `n×n` f32 matrices, output allocated per call.
pub fn gemm(n: usize) -> Result<impl FnMut() -> Result<()>> {
    let (a, b) = (randn(&[n, n], 0)?, randn(&[n, n], 1)?);
    Ok(move || {
        let tape = Tape::new();
        let c = matmul(tape.constant(a.clone()), tape.constant(b.clone()))?;
        std::hint::black_box(c.value()?);
        Ok(())
    })
}

/// One convolution workload of `../shared/bench`: its name, and the conv
/// `batch × c_in × h × h → c_out` channels with a `k × k` kernel, padding
/// `k / 2`, no bias.
#[derive(Clone, Copy, Debug)]
pub struct ConvShape {
    /// The workload's name; results are `{name}_fwd` and `{name}_fwdbwd`.
    pub name: &'static str,
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Input height and width.
    pub h: usize,
    /// Kernel height and width.
    pub k: usize,
    /// Stride along both axes.
    pub stride: usize,
    /// Images per call.
    pub batch: usize,
}

impl ConvShape {
    /// Every conv workload: the three 3×3 shapes of CIFAR ResNets' stages,
    /// ResNet-50's bottleneck reduction and the CIFAR downsampling conv.
    pub const ALL: [ConvShape; 5] = [
        ConvShape { name: "conv3x3_c16_h32", c_in: 16, c_out: 16, h: 32, k: 3, stride: 1, batch: 64 },
        ConvShape { name: "conv3x3_c32_h16", c_in: 32, c_out: 32, h: 16, k: 3, stride: 1, batch: 64 },
        ConvShape { name: "conv3x3_c64_h8", c_in: 64, c_out: 64, h: 8, k: 3, stride: 1, batch: 64 },
        ConvShape { name: "conv1x1_c256_h14", c_in: 256, c_out: 64, h: 14, k: 1, stride: 1, batch: 16 },
        ConvShape { name: "conv3x3s2_c32_h16", c_in: 32, c_out: 64, h: 16, k: 3, stride: 2, batch: 64 },
    ];

    /// The options of the conv.
    pub fn options(&self) -> Conv2dOptions {
        Conv2dOptions::square(self.stride, self.k / 2)
    }

    /// The output's height and width.
    pub fn out(&self) -> usize {
        (self.h + 2 * (self.k / 2) - self.k) / self.stride + 1
    }

    /// Multiply-adds × 2 of one forward call (the criterion benches'
    /// throughput, which include this file; the program reports times).
    #[allow(dead_code)]
    pub fn flops(&self) -> f64 {
        2.0 * (self.batch * self.c_out * self.out() * self.out() * self.c_in * self.k * self.k) as f64
    }
}

/// The inputs of a conv workload: x, w (scaled by 0.1) and the fixed
/// upstream gradient G.
struct ConvInputs {
    x: Tensor<f32>,
    w: Tensor<f32>,
    gy: Tensor<f32>,
}

fn conv_inputs(s: &ConvShape) -> Result<ConvInputs> {
    Ok(ConvInputs {
        x: randn(&[s.batch, s.c_in, s.h, s.h], 0)?,
        w: randn(&[s.c_out, s.c_in, s.k, s.k], 1)?.map(|v| v * 0.1),
        gy: randn(&[s.batch, s.c_out, s.out(), s.out()], 2)?,
    })
}

/// The conv, inference (nothing recorded).
pub fn conv_fwd(s: &ConvShape) -> Result<impl FnMut() -> Result<()>> {
    let (i, o) = (conv_inputs(s)?, s.options());
    Ok(move || {
        let tape = Tape::new();
        let y = conv2d(tape.constant(i.x.clone()), tape.constant(i.w.clone()), None, &o)?;
        std::hint::black_box(y.value()?);
        Ok(())
    })
}

/// The same conv, forward, `L = Σ y ⊙ G`, backward to input and weight.
pub fn conv_fwdbwd(s: &ConvShape) -> Result<impl FnMut() -> Result<()>> {
    let (i, o) = (conv_inputs(s)?, s.options());
    Ok(move || {
        let tape = Tape::new();
        let (x, w) = (tape.leaf(i.x.clone()), tape.leaf(i.w.clone()));
        let y = conv2d(x, w, None, &o)?;
        let loss = y.mul(tape.constant(i.gy.clone()))?.sum_all()?;
        let g = tape.backward_with(loss, BackwardOptions::default().with_wrt(&[x, w]))?;
        std::hint::black_box(g);
        Ok(())
    })
}

/// One ResNet basic block (16→16 channels, input 64×16×32×32): conv3×3-BN-
/// ReLU-conv3×3-BN, plus identity, ReLU; BN in training mode; gradients to
/// the input and all six parameters.
pub fn basic_block_fwdbwd() -> Result<impl FnMut() -> Result<()>> {
    let x = randn(&[64, 16, 32, 32], 0)?;
    let gy = randn(&[64, 16, 32, 32], 1)?;
    let bound = 1.0 / (16.0f32 * 9.0).sqrt();
    let mut rng = wengert_core::rng(2);
    let w1 = Tensor::uniform([16, 16, 3, 3], -bound, bound, &mut rng)?;
    let w2 = Tensor::uniform([16, 16, 3, 3], -bound, bound, &mut rng)?;
    let (ones, zeros) = (Tensor::<f32>::ones([16]), Tensor::<f32>::zeros([16]));
    Ok(move || {
        let tape = Tape::new();
        let xv = tape.leaf(x.clone());
        let params: Vec<_> = [&w1, &ones, &zeros, &w2, &ones, &zeros].iter().map(|t| tape.leaf((*t).clone())).collect();
        let same = Conv2dOptions::square(1, 1);
        let h = conv2d(xv, params[0], None, &same)?;
        // Batch norm and its ReLU as one op, the sum and the last ReLU as
        // another, as the zoo's blocks compute them.
        let h = batch_norm_relu_train(h, Some(params[1]), Some(params[2]), 1e-5)?.0;
        let h = conv2d(h, params[3], None, &same)?;
        let h = batch_norm_train(h, Some(params[4]), Some(params[5]), 1e-5)?.0;
        let y = add_relu(xv, h)?;
        let loss = y.mul(tape.constant(gy.clone()))?.sum_all()?;
        let mut wrt = vec![xv];
        wrt.extend(params);
        std::hint::black_box(tape.backward_with(loss, BackwardOptions::default().with_wrt(&wrt))?);
        Ok(())
    })
}

/// Steps of the tape-overhead chain.
pub const TAPE_STEPS: usize = 10_000;
/// Recorded ops per step: mul, add, tanh.
pub const TAPE_OPS_PER_STEP: usize = 3;

/// `x = tanh(x·w + b)` for [`TAPE_STEPS`] steps on one-element tensors, then
/// backward to `w` and `b`: the cost of recording and replaying an op.
pub fn tape_overhead() -> Result<impl FnMut() -> Result<()>> {
    let mut tape = Tape::<f32>::new();
    Ok(move || {
        {
            let x0 = tape.constant(Tensor::full([1], 0.5));
            let w = tape.leaf(Tensor::full([1], 0.9));
            let b = tape.leaf(Tensor::full([1], 0.1));
            let mut x = x0;
            for _ in 0..TAPE_STEPS {
                x = tanh(x.mul(w)?.add(b)?)?;
            }
            let g = tape.backward_with(x, BackwardOptions::default().with_wrt(&[w, b]))?;
            std::hint::black_box(g);
        }
        tape.clear();
        Ok(())
    })
}

/// A CIFAR ResNet of depth `6n+2` as the peer script builds it: option B
/// shortcuts (1×1 projection + BN where the shape changes).
fn cifar_option_b(depth: usize) -> wengert_resnet::zoo::Spec {
    use wengert_resnet::{block::Shortcut, zoo::Spec};
    let spec = Spec::by_name(&format!("resnet{depth}")).expect("a zoo depth");
    Spec { shortcut: Shortcut::Projection, ..spec }
}

/// One training step of a zoo model: forward, softmax cross-entropy (mean),
/// backward, SGD (lr 0.01, momentum 0.9, weight decay 5e-4), on a fixed
/// random batch. Returns the step and the model's parameter count.
fn train_step(
    spec: &wengert_resnet::zoo::Spec,
    batch: usize,
    hw: usize,
    classes: usize,
    recompute: bool,
) -> Result<(impl FnMut() -> Result<()>, usize)> {
    use wengert_nn::optim::{Optimizer, Sgd};
    use wengert_nn::{Module, Step};
    let mut model = wengert_resnet::zoo::ResNet::<f32>::new(spec, 3, classes, &mut wengert_core::rng(0))?;
    model.set_recompute(recompute);
    let params = model.num_parameters();
    let x = randn(&[batch, 3, hw, hw], 1)?;
    let labels: Vec<usize> = (0..batch).map(|i| (i * 7919) % classes).collect();
    let mut opt = Sgd::new(0.9, 5e-4);
    Ok((
        move || {
            // The tape goes before the update: while it holds the
            // parameters' buffers, updating them in place would copy each.
            let grads = {
                let tape = Tape::new();
                let mut step = Step::train(&tape, 0);
                let logits = model.forward(&mut step, tape.constant(x.clone()))?;
                let loss = wengert_ops::cross_entropy(logits, &labels)?;
                step.backward(loss)?
            };
            opt.step(&mut model, &grads, 0.01)
        },
        params,
    ))
}

/// `resnet{depth}_train_step`: CIFAR ResNet, batch 128 of 3×32×32, 10 classes.
pub fn cifar_train_step(depth: usize) -> Result<(impl FnMut() -> Result<()>, usize)> {
    train_step(&cifar_option_b(depth), 128, 32, 10, false)
}

/// `resnet50_train_step`: ImageNet ResNet-50, batch 16 of 3×224×224.
pub fn resnet50_train_step() -> Result<(impl FnMut() -> Result<()>, usize)> {
    train_step(&wengert_resnet::zoo::Spec::by_name("resnet50")?, 16, 224, 1000, false)
}

/// A training step of the zoo model `name` at its family's default input
/// (3×32×32 and 10 classes, or 3×224×224 and 1000) with `batch` images,
/// optionally recomputing every block's branch during backward.
pub fn zoo_train_step(name: &str, batch: usize, recompute: bool) -> Result<(impl FnMut() -> Result<()>, usize)> {
    let spec = wengert_resnet::zoo::Spec::by_name(name)?;
    let ((_, hw, _), classes) = spec.defaults();
    train_step(&spec, batch, hw, classes, recompute)
}

/// `resnet50_forward`: ResNet-50 inference (evaluation mode, nothing recorded), batch 16.
pub fn resnet50_forward() -> Result<impl FnMut() -> Result<()>> {
    use wengert_nn::{Module, Step};
    let mut model = wengert_resnet::zoo::ResNet::<f32>::by_name("resnet50", 3, 1000, &mut wengert_core::rng(0))?;
    let x = randn(&[16, 3, 224, 224], 1)?;
    Ok(move || {
        let tape = Tape::new();
        let y = tape.no_grad(|| model.forward(&mut Step::eval(&tape), tape.constant(x.clone())))?;
        std::hint::black_box(y.value()?);
        Ok(())
    })
}

/// Images per epoch of the in-memory loader workloads.
pub const LOADER_IMAGES: usize = 10_240;

/// Image files in the `loader_folder_jpeg` workload's folder.
pub const LOADER_FILES: usize = 2_048;

/// The loader workloads: what the dataset holds and how it is augmented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoaderWorkload {
    /// `loader_grey28`: 8-bit grey 28×28 (MNIST's shape: IDX files, and
    /// 8-bit array files), no augmentation.
    Grey28,
    /// `loader_colour32`: 8-bit RGB 32×32 (CIFAR's shape: its binary files,
    /// 8-bit array files, image folders decoded once), per-channel
    /// normalisation, the paper's pad-4 crops and flips.
    Colour32,
    /// `loader_float32`: float RGB 32×32 (float array files), as
    /// `Colour32`.
    Float32,
    /// `loader_folder_jpeg`: an image folder of 48×40 JPEG files decoded
    /// as each batch is built, with a random resized crop to 32×32 and
    /// flips.
    FolderJpeg,
}

impl LoaderWorkload {
    /// Every loader workload with its name.
    pub const ALL: [(&'static str, LoaderWorkload); 4] = [
        ("loader_grey28", LoaderWorkload::Grey28),
        ("loader_colour32", LoaderWorkload::Colour32),
        ("loader_float32", LoaderWorkload::Float32),
        ("loader_folder_jpeg", LoaderWorkload::FolderJpeg),
    ];
}

/// Writes `n` JPEG files of `w × h` pixels, ten classes, into
/// `dir/train/<class>/`, and one per class into `dir/val/<class>/`.
pub fn write_jpeg_folder(dir: &std::path::Path, n: usize, w: u32, h: u32) -> Result<()> {
    let io =
        |e: &dyn std::fmt::Display| wengert_core::Error::Io { path: dir.display().to_string(), detail: e.to_string() };
    for i in 0..n + 10 {
        let (split, class) = if i < n { ("train", i % 10) } else { ("val", i - n) };
        let folder = dir.join(split).join(format!("class{class}"));
        std::fs::create_dir_all(&folder).map_err(|e| io(&e))?;
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            let v = (x * 7 + y * 13 + i as u32 * 31) as u8;
            image::Rgb([v, v.wrapping_mul(3), (class * 25) as u8])
        });
        img.save(folder.join(format!("{i:05}.jpg"))).map_err(|e| io(&e))?;
    }
    Ok(())
}

/// The `loader_folder_jpeg` workload's folder.
fn folder_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("wengert-bench-folder-{}", std::process::id()))
}

/// A folder removed when dropped.
struct Scratch(Option<std::path::PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// One epoch of the loader alone, batches of 128 built on its prefetch
/// thread and dropped; returns the epoch and its image count. Every
/// format but image folders decoded each batch loads into an in-memory
/// dataset of 8-bit or float pixels, so these four are the loader's
/// speed for all of them. The folder workload writes its files into a
/// temporary folder first.
pub fn loader_epoch(workload: LoaderWorkload) -> Result<(impl FnMut() -> Result<()>, usize)> {
    use wengert_data::{Augment, Dataset, Decode, LoadOptions, Loader, Split};
    let n = LOADER_IMAGES;
    let random = |count: usize| (0..count).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8);
    let labels = || (0..n).map(|i| (i % 10) as u8).collect();
    let crops = Augment::default().with_pad(4).with_flip(true);
    let loader = match workload {
        LoaderWorkload::Grey28 => Loader::new(Dataset::new(random(n * 28 * 28).collect(), labels(), 28, 28)?, 128, 0)?,
        LoaderWorkload::Colour32 | LoaderWorkload::Float32 => {
            let data = if workload == LoaderWorkload::Colour32 {
                Dataset::with_channels(random(n * 3 * 32 * 32).collect(), labels(), 3, 32, 32)?
            } else {
                let pixels = random(n * 3 * 32 * 32).map(|v| v as f32 / 64.0 - 2.0).collect();
                Dataset::with_float_channels(pixels, labels(), 3, 32, 32)?
            };
            let stats = data.channel_stats()?;
            Loader::new(data, 128, 0)?.with_channel_normalise(&stats)?.with_augment(crops)?
        }
        LoaderWorkload::FolderJpeg => {
            let dir = folder_dir();
            let _ = std::fs::remove_dir_all(&dir);
            write_jpeg_folder(&dir, LOADER_FILES, 48, 40)?;
            let options = LoadOptions::default().with_image_size(32).with_decode(Decode::EachBatch);
            let data = Dataset::load_with(&dir, Split::Train, options)?;
            let stats = data.channel_stats()?;
            let augment = Augment::default().with_flip(true).with_resized_crop((0.08, 1.0));
            Loader::new(data, 128, 0)?.with_channel_normalise(&stats)?.with_augment(augment)?
        }
    };
    let images = loader.dataset().len();
    let mut epoch = 0;
    let folder = Scratch((workload == LoaderWorkload::FolderJpeg).then(folder_dir));
    let run = move || {
        let _ = &folder; // the files go when the workload does
        for batch in loader.epoch::<f32>(epoch, 0) {
            std::hint::black_box(batch?);
        }
        epoch += 1;
        Ok(())
    };
    Ok((run, images))
}
