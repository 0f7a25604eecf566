//! Residual blocks as single nodes: recomputation, running statistics,
//! names, and the block Jacobian's approach to the identity.

use wengert::core::functional::jacobian;
use wengert::core::{BackwardOptions, Float, Tape, Tensor};
use wengert::nn::{Module, StateMut, StateRef, Step, Visit};
use wengert::resnet::block::{Block, Kind, Shortcut};

/// A fixed seed gradient: small integers.
fn seed<T: Float>(shape: &[usize]) -> Tensor<T> {
    Tensor::from_fn(shape.to_vec(), |i| T::of(((i * 13) % 7) as f64 - 3.0))
}

fn grads_of<T: Float>(block: &mut Block<T>, x: &Tensor<T>) -> (Tensor<T>, Vec<Tensor<T>>) {
    let tape = Tape::new();
    let xv = tape.leaf(x.clone());
    let mut step = Step::train(&tape, 0);
    let y = block.forward(&mut step, xv).unwrap();
    let g = tape
        .backward_with(
            y,
            BackwardOptions::default().with_seed(seed(y.shape().dims())).with_wrt(&[xv]).with_retain_graph(true),
        )
        .unwrap();
    let loss = y.mul(tape.constant(seed(y.shape().dims()))).unwrap().sum_all().unwrap();
    let pg = step.backward(loss).unwrap();
    let mut params = Vec::new();
    block.visit("", &mut |_, s| {
        if let StateRef::Param(p) = s {
            params.push(pg.get(p).unwrap().clone());
        }
    });
    (g.into_tensors().remove(0), params)
}

#[test]
fn recomputation_gives_identical_gradients() {
    let x = Tensor::normal([2, 4, 6, 6], 0.0, 1.0, &mut wengert::core::rng(1)).unwrap();
    for (kind, width, stride, shortcut) in [
        (Kind::Basic, 8, 2, Shortcut::ZeroPad),
        (Kind::Bottleneck, 2, 1, Shortcut::Projection),
        (Kind::PreAct, 4, 1, Shortcut::Identity),
    ] {
        let mut a = Block::new(kind, 4, width, stride, shortcut, &mut wengert::core::rng(2)).unwrap();
        let mut b = Block::new(kind, 4, width, stride, shortcut, &mut wengert::core::rng(2)).unwrap();
        b.set_recompute(true);
        assert_eq!(grads_of(&mut a, &x), grads_of(&mut b, &x), "{kind:?}");
    }
}

#[test]
fn training_updates_running_statistics_and_names_match_torchvision() {
    let mut b = Block::<f32>::new(Kind::Bottleneck, 8, 4, 2, Shortcut::Projection, &mut wengert::core::rng(0)).unwrap();
    let names = b.state_names();
    for n in ["conv1.weight", "bn3.running_var", "downsample.0.weight", "downsample.1.num_batches_tracked"] {
        assert!(names.iter().any(|m| m == n), "{n} not in {names:?}");
    }
    let tape = Tape::new();
    let x = tape.constant(Tensor::normal([4, 8, 6, 6], 1.0, 2.0, &mut wengert::core::rng(3)).unwrap());
    let y = b.forward(&mut Step::train(&tape, 0), x).unwrap();
    assert_eq!(y.shape().dims(), &[4, 16, 3, 3]);
    let mut counts = Vec::new();
    b.visit("", &mut |n, s| {
        if let StateRef::Count(c) = s {
            counts.push((n, *c));
        }
    });
    assert_eq!(counts.len(), 4);
    assert!(counts.iter().all(|(_, c)| *c == 1), "{counts:?}");
    assert!(Block::<f32>::new(Kind::Basic, 4, 8, 1, Shortcut::Identity, &mut wengert::core::rng(0)).is_err());
}

/// ‖J − I‖_F of a pre-activation block whose branch parameters are scaled
/// by `s`, at a fixed input.
fn distance_from_identity(s: f64) -> f64 {
    let x = Tensor::normal([1, 2, 3, 3], 0.0, 1.0, &mut wengert::core::rng(7)).unwrap();
    let j = jacobian(
        |tape, v| {
            let mut b =
                Block::<f64>::new(Kind::PreAct, 2, 2, 1, Shortcut::Identity, &mut wengert::core::rng(8)).unwrap();
            b.visit_mut("", &mut |_, e| {
                if let StateMut::Param(p) = e {
                    p.value_mut().data_mut().iter_mut().for_each(|w| *w *= s);
                }
            });
            b.forward(&mut Step::train(tape, 0), v[0])
        },
        &x,
    )
    .unwrap();
    let n = x.numel();
    (0..n * n).map(|k| j.data()[k] - if k / n == k % n { 1.0 } else { 0.0 }).map(|d| d * d).sum::<f64>().sqrt()
}

#[test]
fn block_jacobian_goes_to_the_identity_linearly() {
    assert_eq!(distance_from_identity(0.0), 0.0, "J = I exactly at s = 0");
    let (a, b) = (distance_from_identity(1e-2), distance_from_identity(1e-3));
    assert!(a > 0.0 && b > 0.0);
    // O(s): a tenth of the scale gives a tenth of the distance (F is
    // quadratic in s here, since both convolutions scale; so ≤ C·s holds).
    assert!(b <= a / 9.0, "{a} then {b}");
    assert!(a <= 10.0 * 1e-2, "‖J − I‖ = {a} at s = 0.01");
}

#[test]
fn gradient_flow_measures_the_first_and_last_layers() {
    use wengert::resnet::gradflow::{measure, stack, Setup};
    // A residual stack of 2·k convolutions holds k blocks of two convolutions.
    let s = Setup { depth: 8, residual: true, ..Setup::default() };
    assert_eq!(stack(&s).unwrap().state_names().iter().filter(|n| n.ends_with("weight")).count(), 8);
    assert!(measure(&Setup { depth: 7, residual: true, ..Setup::default() }).is_err());
    // One convolution is both the first and the last.
    let one = measure(&Setup { depth: 1, ..Setup::default() }).unwrap();
    assert_eq!(one.ratio(), 1.0);
    // The residual idea, at 128 layers with batch norm: the plain stack's
    // first layer gets over 10⁴ times the last one's gradient, the residual
    // stack's stays within a factor of 100.
    let plain = measure(&Setup { depth: 128, norm: true, ..Setup::default() }).unwrap();
    let residual = measure(&Setup { depth: 128, norm: true, residual: true, ..Setup::default() }).unwrap();
    assert!(plain.ratio() > 1e4, "plain {}", plain.ratio());
    assert!((0.01..100.0).contains(&residual.ratio()), "residual {}", residual.ratio());
}

/// A block written out op by op from its parameters (by name): every batch
/// norm, ReLU and sum a separate op, as the fused block replaces them.
fn unfused<'t, T: Float>(
    kind: Kind,
    stride: usize,
    shortcut: Shortcut,
    p: &std::collections::HashMap<String, wengert::core::Var<'t, T>>,
    x: wengert::core::Var<'t, T>,
) -> wengert::core::Result<wengert::core::Var<'t, T>> {
    use wengert::ops::{batch_norm_train, conv2d, relu, Conv2dOptions};
    type V<'t, T> = wengert::core::Var<'t, T>;
    let conv = |name: &str, h: V<'t, T>, s: usize, k: usize| {
        conv2d(h, p[&format!("{name}.weight")], None, &Conv2dOptions::square(s, k / 2))
    };
    let bn = |name: &str, h: V<'t, T>| -> wengert::core::Result<V<'t, T>> {
        Ok(batch_norm_train(h, Some(p[&format!("{name}.weight")]), Some(p[&format!("{name}.bias")]), 1e-5)?.0)
    };
    let project = shortcut == Shortcut::Projection;
    match kind {
        Kind::Basic => {
            let h = relu(bn("bn1", conv("conv1", x, stride, 3)?)?)?;
            let h = bn("bn2", conv("conv2", h, 1, 3)?)?;
            let s = if project { bn("downsample.1", conv("downsample.0", x, stride, 1)?)? } else { x };
            relu(s.add(h)?)
        }
        Kind::Bottleneck => {
            let h = relu(bn("bn1", conv("conv1", x, 1, 1)?)?)?;
            let h = relu(bn("bn2", conv("conv2", h, stride, 3)?)?)?;
            let h = bn("bn3", conv("conv3", h, 1, 1)?)?;
            let s = if project { bn("downsample.1", conv("downsample.0", x, stride, 1)?)? } else { x };
            relu(s.add(h)?)
        }
        Kind::PreAct => {
            let a = relu(bn("bn1", x)?)?;
            let h = relu(bn("bn2", conv("conv1", a, stride, 3)?)?)?;
            let h = conv("conv2", h, 1, 3)?;
            let s = if project { conv("shortcut.0", a, stride, 1)? } else { x };
            s.add(h)
        }
        _ => unreachable!("not among the kinds tested"),
    }
}

/// The block's output, then the gradients of its input and of every
/// parameter, fused (as built) and unfused ([`unfused`]), with the names of
/// the entries. The batch norms get scales and shifts that make ReLUs cut.
#[allow(clippy::type_complexity)]
fn fused_and_unfused<T: Float>(
    x: &Tensor<T>,
    (kind, c_in, width, stride, shortcut): (Kind, usize, usize, usize, Shortcut),
) -> (Vec<String>, Vec<Tensor<T>>, Vec<Tensor<T>>) {
    let mut block = Block::<T>::new(kind, c_in, width, stride, shortcut, &mut wengert::core::rng(3)).unwrap();
    let mut k = 0;
    block.visit_mut("", &mut |name, s| {
        if let (StateMut::Param(p), true) = (s, name.contains("bn") || name.contains("downsample.1")) {
            k += 1;
            let shift = if name.ends_with("bias") { -0.3 } else { 0.8 };
            p.value_mut()
                .data_mut()
                .iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = T::of(shift + 0.1 * ((i + k) % 5) as f64));
        }
    });

    // Fused: the block as built.
    let tape = Tape::new();
    let y = block.forward(&mut Step::train(&tape, 0), tape.constant(x.clone())).unwrap().value().unwrap();
    let (gx, gp) = grads_of(&mut block, x);
    let mut names = vec!["y".to_string(), "x".to_string()];
    block.visit("", &mut |name, s| {
        if let StateRef::Param(_) = s {
            names.push(name.to_string());
        }
    });
    let fused: Vec<Tensor<T>> = [y, gx].into_iter().chain(gp).collect();

    // Unfused: the same parameters, op by op.
    let tape = Tape::new();
    let xv = tape.leaf(x.clone());
    let mut params = std::collections::HashMap::new();
    let mut order = vec![xv];
    block.visit("", &mut |name, s| {
        if let StateRef::Param(p) = s {
            let v = tape.leaf(p.value().clone());
            params.insert(name.to_string(), v);
            order.push(v);
        }
    });
    let y = unfused(kind, stride, shortcut, &params, xv).unwrap();
    let loss = y.mul(tape.constant(seed(y.shape().dims()))).unwrap().sum_all().unwrap();
    let y = y.value().unwrap();
    let g = tape.backward(loss).unwrap();
    let reference: Vec<Tensor<T>> =
        std::iter::once(y).chain(order.iter().map(|v| g.get(*v).unwrap().clone())).collect();
    assert_eq!(fused.len(), reference.len(), "{kind:?}");
    (names, fused, reference)
}

/// The fused blocks (batch norm with its ReLU, the sum with the final ReLU,
/// one node) give the output and gradients of the same block written out
/// op by op, for every post- and pre-activation layout and both shortcuts.
#[test]
fn fused_blocks_match_the_unfused_composition() {
    let x = Tensor::normal([3, 4, 6, 6], 0.5, 1.0, &mut wengert::core::rng(7)).unwrap();
    for (kind, width, stride, shortcut) in [
        (Kind::Basic, 4, 1, Shortcut::Identity),
        (Kind::Basic, 8, 2, Shortcut::Projection),
        (Kind::Bottleneck, 2, 2, Shortcut::Projection),
        (Kind::PreAct, 4, 1, Shortcut::Identity),
        (Kind::PreAct, 8, 2, Shortcut::Projection),
    ] {
        let (names, fused, reference) = fused_and_unfused::<f64>(&x, (kind, 4, width, stride, shortcut));
        for ((name, a), b) in names.iter().zip(&fused).zip(&reference) {
            assert_eq!(a.dims(), b.dims(), "{kind:?} {name}");
            let scale = b.data().iter().fold(1.0f64, |m, v| m.max(v.abs()));
            for (u, v) in a.data().iter().zip(b.data()) {
                assert!((u - v).abs() <= 1e-10 * scale, "{kind:?} {shortcut:?} {name}: {u} vs {v}");
            }
        }
        // Some ReLU must have cut, or the test would not test the masks.
        assert!(fused[0].data().contains(&0.0) || kind == Kind::PreAct, "{kind:?}");
    }
}

/// In `f32`, where the convolutions run on the direct path (16 channels
/// and more) and hand each batch norm the moments of its input as they
/// write it, the blocks give the floats of the unfused composition, whose
/// batch norms read their inputs for them: every convolution of every
/// layout, strided and projected ones too.
#[test]
fn f32_blocks_take_their_moments_from_the_convolutions() {
    let x = Tensor::<f32>::normal([2, 16, 8, 8], 0.5, 1.0, &mut wengert::core::rng(7)).unwrap();
    for (kind, width, stride, shortcut) in [
        (Kind::Basic, 16, 1, Shortcut::Identity),
        (Kind::Basic, 32, 2, Shortcut::Projection),
        (Kind::Bottleneck, 16, 2, Shortcut::Projection),
        (Kind::PreAct, 32, 2, Shortcut::Projection),
    ] {
        let (names, fused, reference) = fused_and_unfused::<f32>(&x, (kind, 16, width, stride, shortcut));
        for ((name, a), b) in names.iter().zip(&fused).zip(&reference) {
            assert_eq!(a.dims(), b.dims(), "{kind:?} {name}");
            let same = a.data().iter().zip(b.data()).all(|(u, v)| u.to_bits() == v.to_bits());
            assert!(same, "{kind:?} {shortcut:?} {name}");
        }
    }
}

/// A block's node keeps its convolutions' outputs and the final sum, and
/// forms each ReLU'd batch norm's output again in backward for the
/// convolution that reads it: one recomputation per such pair of ops.
#[test]
fn blocks_form_their_normalised_activations_again_in_backward() {
    let x = Tensor::normal([2, 4, 6, 6], 0.0, 1.0, &mut wengert::core::rng(4)).unwrap();
    for (kind, width, shortcut, recomputed) in [
        (Kind::Basic, 4, Shortcut::Identity, 1),
        (Kind::Bottleneck, 2, Shortcut::Projection, 2),
        (Kind::PreAct, 4, Shortcut::Identity, 2),
    ] {
        let mut block = Block::new(kind, 4, width, 1, shortcut, &mut wengert::core::rng(2)).unwrap();
        let (_, profile) = wengert::core::profile::record(|| grads_of(&mut block, &x));
        // `grads_of` runs backward twice through the retained node.
        let calls = profile.ops.iter().find(|o| o.name == "recompute").map_or(0, |o| o.backward.calls);
        assert_eq!(calls, 2 * recomputed, "{kind:?}");
    }
}
