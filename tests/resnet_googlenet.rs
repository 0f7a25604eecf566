//! GoogLeNet in torchvision's layout: parameter counts, names, an Inception
//! module and the adaptive pool against torchvision's outputs (fixture made
//! by tests/fixtures/make_googlenet_fixture.py), and a training step with
//! the auxiliary heads.

use std::path::Path;
use wengert::core::{Tape, Tensor};
use wengert::nn::checkpoint::{load_model, read_tensors};
use wengert::nn::layer::Sequential;
use wengert::nn::{Module, Step};
use wengert::ops::cross_entropy;
use wengert::resnet::googlenet::{adaptive_avg_pool2d, GoogLeNet, Inception};

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn io() -> std::collections::BTreeMap<String, Tensor<f32>> {
    read_tensors(&fixtures().join("inception_small_io.safetensors")).unwrap()
}

#[test]
fn parameter_counts_and_names_match_torchvision() {
    let net = GoogLeNet::<f32>::new(3, 1000, false, &mut wengert::core::rng(0)).unwrap();
    assert_eq!(net.num_parameters(), 6_624_904);
    let with_aux = GoogLeNet::<f32>::new(3, 1000, true, &mut wengert::core::rng(0)).unwrap();
    assert_eq!(with_aux.num_parameters(), 13_004_888);
    let names = with_aux.state_names();
    for n in [
        "conv1.conv.weight",
        "conv1.bn.running_var",
        "inception3a.branch2.1.conv.weight",
        "inception4e.branch4.1.bn.num_batches_tracked",
        "aux1.conv.conv.weight",
        "aux2.fc2.bias",
        "fc.weight",
    ] {
        assert!(names.iter().any(|m| m == n), "{n} missing");
    }
    let summary = net.summary((3, 224, 224)).unwrap();
    assert_eq!(summary.rows.iter().find(|r| r.0 == "inception5b").unwrap().1, [1024, 7, 7]);
    assert_eq!(summary.rows.iter().find(|r| r.0 == "maxpool1").unwrap().1, [64, 56, 56]);
    // On 28×28 images the last 2×2/2 ceil-mode pool overhangs a 1×1 map,
    // as the forward pass does (PyTorch's rule), rather than underflowing.
    let small = GoogLeNet::<f32>::new(1, 10, false, &mut wengert::core::rng(0)).unwrap().summary((1, 28, 28)).unwrap();
    assert_eq!(small.rows.iter().find(|r| r.0 == "maxpool1").unwrap().1, [64, 7, 7]);
    assert_eq!(small.rows.iter().find(|r| r.0 == "inception5b").unwrap().1, [1024, 1, 1]);
}

#[test]
fn an_inception_module_matches_torchvision() {
    let t = io();
    let inception = Inception::<f32>::new(16, [8, 4, 8, 4, 8, 8], &mut wengert::core::rng(0)).unwrap();
    let mut m = Sequential::new().push_named("m", inception);
    // Strict: every name and shape of torchvision's state_dict matches ours.
    load_model(&mut m, &fixtures().join("inception_small.safetensors"), true).unwrap();
    let tape = Tape::new();
    let y = m.forward(&mut Step::eval(&tape), tape.constant(t["x"].clone())).unwrap().value().unwrap();
    assert_eq!(y.dims(), t["y"].dims());
    let diff = y.max_abs_diff(&t["y"]).unwrap();
    assert!(diff < 1e-5, "max difference {diff}");
}

#[test]
fn adaptive_average_pooling_matches_torch() {
    let t = io();
    let tape = Tape::new();
    let y = adaptive_avg_pool2d(tape.constant(t["pool_x"].clone()), 4).unwrap().value().unwrap();
    assert_eq!(y.dims(), &[2, 3, 4, 4]);
    assert!(y.max_abs_diff(&t["pool_y"]).unwrap() < 1e-6);
    assert!(adaptive_avg_pool2d(tape.constant(Tensor::<f32>::zeros([3, 4])), 2).is_err());
}

#[test]
fn a_training_step_with_auxiliary_heads_runs() {
    let mut net = GoogLeNet::<f32>::new(3, 10, true, &mut wengert::core::rng(0)).unwrap();
    let tape = Tape::new();
    let mut step = Step::train(&tape, 0);
    let x = tape.constant(Tensor::normal([2, 3, 64, 64], 0.0, 1.0, &mut wengert::core::rng(1)).unwrap());
    let out = net.forward_all(&mut step, x).unwrap();
    let (a1, a2) = out.aux.expect("training steps give the auxiliary logits");
    let labels = [3, 8];
    let aux = cross_entropy(a1, &labels).unwrap().add(cross_entropy(a2, &labels).unwrap()).unwrap();
    let loss = cross_entropy(out.logits, &labels).unwrap().add(aux.mul_scalar(0.3).unwrap()).unwrap();
    assert!(loss.value().unwrap().item().unwrap().is_finite());
    let grads = step.backward(loss).unwrap();
    let params = net.state_names().iter().filter(|n| n.ends_with("weight") || n.ends_with("bias")).count();
    assert_eq!(grads.len(), params, "every parameter, the auxiliary heads' included, gets a gradient");
    // Evaluation steps skip the auxiliary heads.
    let tape = Tape::new();
    let x = tape.constant(Tensor::zeros([1, 3, 64, 64]));
    assert!(net.forward_all(&mut Step::eval(&tape), x).unwrap().aux.is_none());
}
