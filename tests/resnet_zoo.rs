//! The zoo's architectures: exact parameter counts, shapes, multiply-adds.

use wengert::core::{Tape, Tensor};
use wengert::nn::{Module, Step, Visit};
use wengert::resnet::zoo::{ResNet, Spec};

fn count(name: &str, c: usize, classes: usize) -> usize {
    ResNet::<f32>::by_name(name, c, classes, &mut wengert::core::rng(0)).unwrap().num_parameters()
}

#[test]
fn parameter_counts_match_the_published_models() {
    // torchvision's counts for the ImageNet models.
    assert_eq!(count("resnet18", 3, 1000), 11_689_512);
    assert_eq!(count("resnet34", 3, 1000), 21_797_672);
    assert_eq!(count("resnet50", 3, 1000), 25_557_032);
    assert_eq!(count("resnet101", 3, 1000), 44_549_160);
    // CIFAR ResNet-20 with option A shortcuts (no shortcut parameters): 0.27M.
    assert_eq!(count("resnet20", 3, 10), 269_722);
    assert_eq!(count("plain20", 3, 10), 269_722);
    assert_eq!(count("resnet56", 3, 10), 853_018);
    // With option B shortcuts, as the shared benchmark's models.
    let option_b = |d: &str| {
        let spec = Spec { shortcut: wengert::resnet::block::Shortcut::Projection, ..Spec::by_name(d).unwrap() };
        ResNet::<f32>::new(&spec, 3, 10, &mut wengert::core::rng(0)).unwrap().num_parameters()
    };
    assert_eq!(option_b("resnet20"), 272_474);
    assert_eq!(option_b("resnet56"), 855_770);
    // Any input channels and classes.
    assert_eq!(count("resnet20", 1, 10), 269_722 - 2 * 16 * 9);
    // Pre-activation ResNet-164 and ResNet-1001 (He et al. 2016, Identity
    // Mappings: 1.7M and 10.2M), counts checked against a PyTorch build of
    // the same layout (bottleneck units, 1×1 projection shortcuts).
    assert_eq!(count("preact_resnet164", 3, 10), 1_703_258);
    assert_eq!(count("preact_resnet1001", 3, 10), 10_327_706);
    assert_eq!(count("resnet1202", 3, 10), 19_421_274); // 19.4M in the paper
}

#[test]
fn a_pre_activation_resnet_ends_in_batch_norm_and_trains() {
    let mut net = ResNet::<f32>::by_name("preact_resnet164", 1, 10, &mut wengert::core::rng(0)).unwrap();
    let names = net.state_names();
    for n in [
        "conv1.weight",
        "layer1.0.bn1.weight",
        "layer1.0.conv3.weight",
        "layer2.0.shortcut.0.weight",
        "bn.weight",
        "fc.bias",
    ] {
        assert!(names.iter().any(|m| m == n), "{n} missing");
    }
    assert!(!names.iter().any(|m| m == "bn1.weight"), "no norm after the stem in a pre-activation net");
    assert!(!names.iter().any(|m| m == "layer1.1.shortcut.0.weight"), "identity where the shape stays");
    let tape = Tape::new();
    let x = tape.constant(Tensor::normal([2, 1, 16, 16], 0.0, 1.0, &mut wengert::core::rng(1)).unwrap());
    let mut step = Step::train(&tape, 0);
    let y = net.forward(&mut step, x).unwrap();
    assert_eq!(y.shape().dims(), &[2, 10]);
    let g = step.backward(wengert::ops::cross_entropy(y, &[1, 2]).unwrap()).unwrap();
    assert_eq!(g.len(), net.state_names().iter().filter(|n| n.ends_with("weight") || n.ends_with("bias")).count());
    assert!(Spec::by_name("preact_resnet165").is_err());
}

#[test]
fn multiply_adds_and_shapes() {
    let net = ResNet::<f32>::by_name("resnet50", 3, 1000, &mut wengert::core::rng(0)).unwrap();
    let s = net.summary((3, 224, 224)).unwrap();
    let (rows, macs) = (s.rows, s.macs);
    // Commonly quoted as 4.09 G (convolutions and the linear layer).
    assert!((4.08e9..4.10e9).contains(&(macs as f64)), "{macs}");
    assert_eq!(rows.last().unwrap().1, [1000, 1, 1]);
    assert_eq!(rows.iter().find(|r| r.0 == "layer4.2").unwrap().1, [2048, 7, 7]);
    let r18 = ResNet::<f32>::by_name("resnet18", 3, 1000, &mut wengert::core::rng(0)).unwrap();
    assert!((1.81e9..1.82e9).contains(&(r18.summary((3, 224, 224)).unwrap().macs as f64)));
    assert!(Spec::by_name("resnet21").is_err() && Spec::by_name("vgg16").is_err());
}

#[test]
fn a_cifar_resnet_runs_on_mnist_sized_input() {
    let mut net = ResNet::<f32>::by_name("resnet20", 1, 10, &mut wengert::core::rng(0)).unwrap();
    let tape = Tape::new();
    let x = tape.constant(Tensor::normal([2, 1, 28, 28], 0.0, 1.0, &mut wengert::core::rng(1)).unwrap());
    let mut step = Step::train(&tape, 0);
    let y = net.forward(&mut step, x).unwrap();
    assert_eq!(y.shape().dims(), &[2, 10]);
    let loss = wengert::ops::cross_entropy(y, &[3, 7]).unwrap();
    let g = step.backward(loss).unwrap();
    // Stem conv and BN (3 tensors), 9 blocks of 2 convs and 2 BNs (6 each), fc (2).
    let mut params = 0;
    net.visit("", &mut |_, s| params += matches!(s, wengert::nn::StateRef::Param(_)) as usize);
    assert_eq!(params, 3 + 9 * 6 + 2);
    assert_eq!(g.len(), params, "every trainable tensor gets a gradient");
}

/// Every model's state is listed once: reading and writing traverse the
/// same entries in the same order, with torchvision's names and no
/// duplicates.
#[test]
fn reading_and_writing_visit_the_same_state() {
    for name in ["resnet20", "plain20", "resnet18", "resnet50", "preact_resnet164"] {
        let mut m = ResNet::<f32>::by_name(name, 3, 10, &mut wengert::core::rng(0)).unwrap();
        let read = m.state_names();
        let mut written = Vec::new();
        m.visit_mut("", &mut |n, _| written.push(n));
        assert_eq!(read, written, "{name}");
        let unique: std::collections::HashSet<_> = read.iter().collect();
        assert_eq!(unique.len(), read.len(), "{name} repeats a name");
        assert_eq!(read[0], "conv1.weight", "{name}");
        assert_eq!(read.last().unwrap(), "fc.bias", "{name}");
    }
    let pre = ResNet::<f32>::by_name("preact_resnet164", 3, 10, &mut wengert::core::rng(0)).unwrap().state_names();
    // The projection unit's bn1 runs before its node, and keeps its name.
    for n in ["layer2.0.bn1.weight", "layer2.0.shortcut.0.weight", "layer2.0.conv3.weight", "bn.running_var"] {
        assert!(pre.iter().any(|m| m == n), "{n}");
    }
}

/// A training step's memory estimate counts what backward keeps: for
/// ResNet-20 on CIFAR, the input and the 19 convolutions' outputs, and it
/// grows with the batch and the image as the activations do.
#[test]
fn the_memory_estimate_counts_the_kept_activations() {
    use wengert::resnet::registry::Model;
    let model: Model = "resnet20".parse().unwrap();
    let (s, params) = model.summary((3, 32, 32), 10).unwrap();
    // Input 3×32×32; stem and six convolutions at 16×32×32, six at
    // 32×16×16, six at 64×8×8.
    assert_eq!(s.activations, 3 * 1024 + 7 * 16 * 1024 + 6 * 32 * 256 + 6 * 64 * 64);
    let (one, many) = (s.training_bytes(1, params), s.training_bytes(128, params));
    assert!(one < many && many < 130 * one, "{one} {many}");
    assert!(s.forward_bytes(128, params) < many);
    // Four times the pixels, about four times the activations' memory.
    let (big, _) = model.summary((3, 64, 64), 10).unwrap();
    let ratio = (big.training_bytes(128, params) - one) as f64 / (many - one) as f64;
    assert!((3.5..4.5).contains(&ratio), "{ratio}");
    // Absurd sizes saturate rather than wrap.
    let (huge, _) = model.summary((3, 65536, 65536), 10).unwrap();
    assert_eq!(huge.training_bytes(usize::MAX, params), u64::MAX);
}
