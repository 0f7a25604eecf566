//! The convolution plan: which algorithm each product of a layer runs, on
//! this CPU, and the profile's row for each layer naming it. The paths
//! themselves are checked against the f64 reference in `ops_conv_paths.rs`.

use wengert::core::{profile, Tape, Tensor};
use wengert::ops::conv::{Algorithm, ConvPlan};
use wengert::ops::isa::{self, Isa};
use wengert::ops::{conv2d, Conv2dOptions};

/// ResNet layers: CIFAR's 3×3 stride 1 and 2, the ImageNet stem, a
/// bottleneck's 1×1 widening and narrowing, 3×3 layers of 256 channels at
/// 14×14 and 512 at 7×7, and a strided one widening to 256.
fn layers() -> Vec<(&'static str, [usize; 4], [usize; 4], Conv2dOptions)> {
    vec![
        ("cifar 3×3", [8, 16, 32, 32], [16, 16, 3, 3], Conv2dOptions::square(1, 1)),
        ("cifar 3×3/2", [8, 16, 32, 32], [32, 16, 3, 3], Conv2dOptions::square(2, 1)),
        ("stem 7×7/2", [2, 3, 64, 64], [64, 3, 7, 7], Conv2dOptions::square(2, 3)),
        ("1×1 widening", [2, 64, 14, 14], [256, 64, 1, 1], Conv2dOptions::default()),
        ("1×1 narrowing", [2, 256, 14, 14], [64, 256, 1, 1], Conv2dOptions::default()),
        ("wide 3×3", [2, 256, 14, 14], [256, 256, 3, 3], Conv2dOptions::square(1, 1)),
        ("wide 3×3 at 7×7", [2, 512, 7, 7], [512, 512, 3, 3], Conv2dOptions::square(1, 1)),
        ("3×3/2 to 256", [2, 64, 32, 32], [256, 64, 3, 3], Conv2dOptions::square(2, 1)),
    ]
}

fn is_direct(a: Algorithm) -> bool {
    a.name().starts_with("direct")
}

#[test]
fn f64_and_cpus_without_vector_kernels_unfold_or_multiply() {
    for (name, x, w, o) in layers() {
        let plan = ConvPlan::of::<f64>(&x, &w, &o).unwrap();
        for a in [plan.forward, plan.input_grad, plan.weight_grad] {
            assert!(!is_direct(a), "{name}: {plan}");
        }
        let pointwise = w[2] == 1 && w[3] == 1;
        let want = if pointwise { Algorithm::Product } else { Algorithm::Unfold };
        assert_eq!((plan.forward, plan.weight_grad), (want, want), "{name}: {plan}");
        // Stride 1: the input gradient is a forward convolution.
        assert_eq!(plan.input_grad_flipped, o.stride == [1, 1], "{name}: {plan}");
    }
    let e = ConvPlan::of::<f32>(&[1, 3, 8, 8], &[4, 2, 3, 3], &Conv2dOptions::default()).unwrap_err().to_string();
    assert!(e.contains("conv2d"), "{e}");
}

#[test]
fn f32_takes_the_direct_kernels_where_they_apply() {
    let plans: Vec<(&str, ConvPlan)> =
        layers().into_iter().map(|(name, x, w, o)| (name, ConvPlan::of::<f32>(&x, &w, &o).unwrap())).collect();
    let plan = |name: &str| plans.iter().find(|(n, _)| *n == name).unwrap().1;
    if isa::active() == Isa::Generic {
        assert!(plans.iter().all(|(_, p)| !is_direct(p.forward)), "{plans:?}");
        return;
    }
    // AVX2's 16 registers take the forward kernel with output channels
    // in the lanes; AVX-512's 32 hold tiles of pixel vectors.
    let cifar = plan("cifar 3×3");
    let lanes = if isa::active() >= Isa::Avx512 { Algorithm::Direct } else { Algorithm::DirectOuter };
    assert_eq!((cifar.forward, cifar.input_grad, cifar.input_grad_flipped), (lanes, lanes, true));
    assert!(is_direct(cifar.weight_grad), "{cifar}");
    // A strided layer's forward product puts its output channels in the
    // lanes on both, reading its input unsplit; its input gradient, one
    // stride-1 convolution per phase, takes AVX2's channel lanes or
    // AVX-512's pixel vectors.
    let phases = if isa::active() >= Isa::Avx512 { Algorithm::DirectPhases } else { Algorithm::DirectOuterPhases };
    assert_eq!((plan("cifar 3×3/2").forward, plan("cifar 3×3/2").input_grad), (Algorithm::DirectOuter, phases));
    // The stem's three input channels are not a multiple of the tile: its
    // input gradient (never needed in training) unfolds.
    assert_eq!(plan("stem 7×7/2").forward, Algorithm::DirectOuter);
    // 1×1 layers that widen multiply for their weight gradient; narrowing
    // ones run direct (docs/architecture.md has the measurements).
    assert_eq!(plan("1×1 widening").weight_grad, Algorithm::Product);
    assert!(is_direct(plan("1×1 narrowing").weight_grad), "{}", plan("1×1 narrowing"));
    // On AVX-512 the forward product of a 1×1 layer that widens, and so
    // the input gradient of one that narrows, multiplies too; AVX2 runs
    // them direct.
    let (widening, narrowing) = (plan("1×1 widening"), plan("1×1 narrowing"));
    let product = if isa::active() >= Isa::Avx512 { Algorithm::Product } else { Algorithm::DirectOuter };
    assert_eq!((widening.forward, narrowing.input_grad), (product, product), "{widening}; {narrowing}");
    assert!(is_direct(narrowing.forward) && is_direct(widening.input_grad), "{widening}; {narrowing}");
    // 256 channels of 3×3 weights do not stay in cache in one pass: on
    // AVX-512 the forward kernel (and so the flipped input gradient) takes
    // them in chunks of 64; the weight gradient, and AVX2, unfold. So do
    // 7×7 planes, which leave a quarter of the lanes empty.
    let wide = plan("wide 3×3");
    let chunked = if isa::active() >= Isa::Avx512 { Algorithm::Direct } else { Algorithm::Unfold };
    assert_eq!((wide.forward, wide.input_grad, wide.weight_grad), (chunked, chunked, Algorithm::Unfold), "{wide}");
    // A strided layer's input gradient takes 256 output-gradient channels
    // under a phase's four taps in chunks on AVX-512, and unfolds on AVX2.
    let phases = if isa::active() >= Isa::Avx512 { Algorithm::DirectPhases } else { Algorithm::Unfold };
    assert_eq!(plan("3×3/2 to 256").input_grad, phases, "{}", plan("3×3/2 to 256"));
    let small = plan("wide 3×3 at 7×7");
    assert_eq!(
        (small.forward, small.input_grad, small.weight_grad),
        (Algorithm::Unfold, Algorithm::Unfold, Algorithm::Unfold)
    );
    assert!(cifar.to_string().ends_with(&format!("({})", isa::active().name())), "{cifar}");
}

/// A profile gives each layer a row of its own, with its shapes and plan.
#[test]
fn the_profile_names_each_layer_and_its_plan() {
    let (result, p) = profile::record(|| -> wengert::core::Result<()> {
        let tape = Tape::<f32>::new();
        let x = tape.leaf(Tensor::ones([2, 16, 8, 8]));
        let w1 = tape.leaf(Tensor::ones([16, 16, 3, 3]));
        let w2 = tape.leaf(Tensor::ones([32, 16, 3, 3]));
        let h = conv2d(x, w1, None, &Conv2dOptions::square(1, 1))?;
        let y = conv2d(h, w2, None, &Conv2dOptions::square(2, 1))?;
        tape.backward(y.sum_all()?)?;
        Ok(())
    });
    result.unwrap();
    let rows: Vec<_> = p.ops.iter().filter(|o| o.name == "conv2d").collect();
    assert_eq!(rows.len(), 2, "{}", p.table(1));
    for (layer, x, w, o) in [
        ("16→16 3×3/1 8×8→8×8 n2: ", [2, 16, 8, 8], [16, 16, 3, 3], 1),
        ("16→32 3×3/2 8×8→4×4 n2: ", [2, 16, 8, 8], [32, 16, 3, 3], 2),
    ] {
        let plan = ConvPlan::of::<f32>(&x, &w, &Conv2dOptions::square(o, 1)).unwrap();
        let want = format!("{layer}{plan}");
        let row = rows.iter().find(|r| r.detail.as_deref() == Some(want.as_str()));
        let row = row.unwrap_or_else(|| panic!("no row {want} in\n{}", p.table(1)));
        assert_eq!((row.forward.calls, row.backward.calls), (1, 1));
        assert!(p.table(1).contains(&want));
    }
}
