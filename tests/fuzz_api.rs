//! Fuzzing the public API: every op and constructor called with arbitrary
//! shapes (zero-size included), attributes (huge and overflowing included)
//! and arities. The promise under test: a typed error or a well-formed
//! result, never a panic.
//!
//! The test profile has overflow checks and debug assertions on in
//! Wengert's crates (optimised): any wrapping arithmetic panics and so
//! fails a case.

use proptest::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use wengert::core::ops::binary::{Binary, BinaryKind};
use wengert::core::ops::layout::{BroadcastTo, Permute, Reshape, SumTo};
use wengert::core::ops::scalar::Scalar;
use wengert::core::ops::unary::Unary;
use wengert::core::{smallvec::SmallVec, Result, Shape, Tape, Tensor, Var};
use wengert::ops::{self as ops, matmul::MatMul, Conv2dOptions, ConvTranspose2dOptions, Pool2d};

/// Calls made, counted across the file's tests (reported when run with
/// `--nocapture`).
static CALLS: AtomicUsize = AtomicUsize::new(0);

/// Runs `f`, failing the case if it panics; when it returns a variable, the
/// value must match its shape and backward through it must not panic either.
fn call<'t>(what: &str, f: impl FnOnce() -> Result<Var<'t, f64>>) {
    CALLS.fetch_add(1, Ordering::Relaxed);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if let Ok(y) = f() {
            let v = y.value().expect("a fresh result has its value");
            assert_eq!(v.data().len(), v.shape().numel(), "{what}: data length and shape disagree");
            assert_eq!(&y.shape(), v.shape());
            let tape = y.tape();
            let seed = Tensor::ones(y.shape());
            let _ = tape.backward_with(y, wengert::core::BackwardOptions::default().with_seed(seed));
        }
    }));
    if let Err(e) = outcome {
        let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
        panic!("{what} panicked: {}", msg.unwrap_or_default());
    }
}

/// A small extent: mostly 1–3, sometimes 0.
fn extent() -> impl Strategy<Value = usize> {
    prop_oneof![1 => Just(0usize), 6 => 1usize..4]
}

/// A shape of rank 0–4 made of small extents.
fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(extent(), 0..5)
}

/// An attribute: small, or one of the values that overflow careless
/// arithmetic. (Not merely large ones, such as 2^32: a tensor that fits the
/// address range but not the machine's memory aborts the process when
/// allocated, as any Rust `Vec` does, and is no API error.)
fn attr() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 0usize..5,
        1 => Just(1usize << 62),
        1 => Just(isize::MAX as usize),
        1 => Just(usize::MAX),
    ]
}

/// A requested shape: small extents with the occasional overflowing one.
fn wild_shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(attr(), 0..5)
}

/// An axis, in range or not, negative or not.
fn axis() -> impl Strategy<Value = isize> {
    prop_oneof![8 => -5isize..5, 1 => Just(isize::MIN), 1 => Just(isize::MAX)]
}

/// A float: ordinary, or one of the special values.
fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => -3.0f64..3.0,
        1 => Just(0.0),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(-1e300),
    ]
}

fn leaf<'t>(tape: &'t Tape<f64>, dims: &[usize]) -> Var<'t, f64> {
    tape.leaf(Tensor::from_fn(Shape::new(dims), |i| (i as f64 * 0.37).sin()))
}

fn cases() -> ProptestConfig {
    ProptestConfig { cases: 8000, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn elementwise_and_reductions(a in shape(), b in shape(), c in float(), ax in prop::collection::vec(axis(), 0..4), keep: bool) {
        let tape = Tape::<f64>::new();
        let (x, y) = (leaf(&tape, &a), leaf(&tape, &b));
        call("add", || x.add(y));
        call("sub", || x.sub(y));
        call("mul", || x.mul(y));
        call("div", || x.div(y));
        call("add_scalar", || x.add_scalar(c));
        call("div_scalar", || x.div_scalar(c));
        call("powf", || x.powf(c));
        call("log", || x.log());
        call("sqrt", || x.sqrt());
        call("sum", || x.sum(&ax, keep));
        call("mean", || x.mean(&ax, keep));
        call("amax", || x.amax(&ax, keep));
        call("sum_all", || x.sum_all());
        call("mean_all", || x.mean_all());
    }

    #[test]
    fn layout(a in shape(), target in wild_shape(), perm in prop::collection::vec(axis(), 0..5),
              d in axis(), start in attr(), end in attr(), step in attr(), others in prop::collection::vec(shape(), 0..3)) {
        let tape = Tape::<f64>::new();
        let x = leaf(&tape, &a);
        call("reshape", || x.reshape(&target));
        call("broadcast_to", || x.broadcast_to(&target));
        call("sum_to", || x.sum_to(&target));
        call("permute", || x.permute(&perm));
        call("transpose_last", || x.transpose_last());
        call("slice", || x.slice(d, start, end, step));
        let mut all = vec![x];
        all.extend(others.iter().map(|s| leaf(&tape, s)));
        call("concat", || Var::concat(&all, d));
    }

    #[test]
    fn library_ops_applied_directly(a in shape(), b in shape(), target in wild_shape(), arity in 0usize..4,
                                    perm in prop::collection::vec(attr(), 0..5), ta: bool, tb: bool) {
        let tape = Tape::<f64>::new();
        let pool = [leaf(&tape, &a), leaf(&tape, &b), leaf(&tape, &a)];
        let inputs = &pool[..arity.min(3)];
        call("Binary", || tape.apply(Binary(BinaryKind::Mul), inputs));
        call("Unary", || tape.apply(Unary::Exp, inputs));
        call("Scalar", || tape.apply(Scalar::Mul(2.0), inputs));
        call("Reshape", || tape.apply(Reshape(Shape::new(&target)), inputs));
        call("BroadcastTo", || tape.apply(BroadcastTo(Shape::new(&target)), inputs));
        call("SumTo", || tape.apply(SumTo(Shape::new(&target)), inputs));
        call("Permute", || tape.apply(Permute(SmallVec::from_slice(&perm)), inputs));
        call("MatMul", || tape.apply(MatMul { trans_a: ta, trans_b: tb }, inputs));
    }

    #[test]
    fn tensor_constructors(len in 0usize..20, dims in wild_shape(), lo in float(), hi in float(), step in float(), index in prop::collection::vec(attr(), 0..4)) {
        let outcome = catch_unwind(|| {
            if let Ok(t) = Tensor::from_vec(vec![0.5f64; len], dims.as_slice()) {
                assert_eq!(t.data().len(), t.shape().numel());
                let _ = t.get(&index);
                let _ = t.item();
                let _ = t.reshape(dims.as_slice());
            }
            let _ = Tensor::<f64>::arange(lo, hi, step).map(|t| assert!(t.numel() < 1 << 24));
            let mut rng = wengert::core::rng(0);
            let small: Vec<usize> = dims.iter().map(|&d| d.min(3)).collect();
            let _ = Tensor::<f32>::normal(small.as_slice(), lo as f32, hi as f32, &mut rng);
            let _ = Tensor::<f64>::uniform(small.as_slice(), lo, hi, &mut rng);
        });
        CALLS.fetch_add(6, Ordering::Relaxed);
        prop_assert!(outcome.is_ok(), "a tensor constructor panicked");
    }

    #[test]
    fn matmul_and_linear(a in shape(), b in shape(), bias in prop::option::of(shape())) {
        let tape = Tape::<f64>::new();
        let (x, w) = (leaf(&tape, &a), leaf(&tape, &b));
        let bias = bias.map(|s| leaf(&tape, &s));
        call("matmul", || ops::matmul(x, w));
        call("linear", || ops::linear(x, w, bias));
    }

    #[test]
    fn convolutions(x in prop::collection::vec(extent(), 3..6), w in prop::collection::vec(extent(), 3..6),
                    stride in [attr(), attr()], padding in [attr(), attr()], dilation in [attr(), attr()],
                    output_padding in [attr(), attr()], groups in attr(), bias: bool) {
        let tape = Tape::<f64>::new();
        let (xv, wv) = (leaf(&tape, &x), leaf(&tape, &w));
        let b = bias.then(|| leaf(&tape, &w[..1.min(w.len())]));
        let o = Conv2dOptions::default()
            .with_stride(stride)
            .with_padding(padding)
            .with_dilation(dilation)
            .with_groups(groups);
        call("conv2d", || ops::conv2d(xv, wv, b, &o));
        let t = ConvTranspose2dOptions::default()
            .with_stride(stride)
            .with_padding(padding)
            .with_output_padding(output_padding)
            .with_dilation(dilation)
            .with_groups(groups);
        call("conv_transpose2d", || ops::conv_transpose2d(xv, wv, None, &t));
    }

    #[test]
    fn pooling_and_norms(x in prop::collection::vec(extent(), 2..6), kernel in [attr(), attr()], stride in [attr(), attr()],
                         padding in [attr(), attr()], ceil_mode: bool, include_pad: bool, eps in float(), m in float(), d in axis()) {
        let tape = Tape::<f64>::new();
        let v = leaf(&tape, &x);
        let pool = Pool2d::new(1, 1).with_kernel(kernel).with_stride(stride).with_padding(padding).with_ceil_mode(ceil_mode);
        call("max_pool2d", || ops::max_pool2d(v, &pool));
        call("avg_pool2d", || ops::avg_pool2d(v, &pool, include_pad));
        call("global_avg_pool2d", || ops::global_avg_pool2d(v));
        let c = x.get(1).copied().unwrap_or(1);
        let (g, b) = (leaf(&tape, &[c]), leaf(&tape, &[c]));
        let stats = wengert::core::Tensor::ones([c]);
        call("batch_norm_train", || ops::batch_norm_train(v, Some(g), Some(b), eps).map(|(y, _)| y));
        call("batch_norm_eval", || ops::batch_norm_eval(v, Some(g), Some(b), &stats, &stats, eps));
        call("layer_norm", || ops::layer_norm(v, &x[x.len() - 1..], None, None, eps));
        call("softmax", || ops::softmax(v, d));
        call("log_softmax", || ops::log_softmax(v, d));
        call("relu", || ops::relu(v));
        call("leaky_relu", || ops::leaky_relu(v, m));
        call("gelu", || ops::gelu(v));
        call("softplus", || ops::softplus(v));
    }

    #[test]
    fn losses(a in shape(), b in shape(), labels in prop::collection::vec(prop_oneof![0usize..4, Just(usize::MAX)], 0..5)) {
        let tape = Tape::<f64>::new();
        let (x, y) = (leaf(&tape, &a), leaf(&tape, &b));
        call("cross_entropy", || ops::cross_entropy(x, &labels));
        call("mse_loss", || ops::mse_loss(x, y));
    }
}

/// A layer size: small, zero, or overflowing.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![8 => 0usize..4, 1 => Just(1usize << 62), 1 => Just(usize::MAX)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..cases() })]

    #[test]
    fn layers(c_in in size(), c_out in size(), k in size(), stride in [attr(), attr()], groups in attr(),
              x in prop::collection::vec(extent(), 1..5), p in float(), bias: bool, train: bool) {
        use wengert::nn::layer::{Cell, Conv2d, ConvTranspose2d, Dropout, Linear, Recurrent};
        use wengert::nn::{Module, Step};
        let tape = Tape::<f64>::new();
        let input = leaf(&tape, &x);
        let mut rng = wengert::core::rng(0);
        let step = || if train { Step::train(&tape, 1) } else { Step::eval(&tape) };
        let o = Conv2dOptions::default().with_stride(stride).with_groups(groups);
        let t = ConvTranspose2dOptions::default().with_stride(stride).with_groups(groups);
        let guarded = |what: &str, f: &mut dyn FnMut()| {
            CALLS.fetch_add(1, Ordering::Relaxed);
            let r = catch_unwind(AssertUnwindSafe(f));
            assert!(r.is_ok(), "{what} panicked");
        };
        guarded("Linear::new", &mut || {
            if let Ok(mut l) = Linear::<f64>::new(c_in, c_out, bias, &mut rng) {
                call("Linear::forward", || l.forward(&mut step(), input));
            }
        });
        guarded("Conv2d::new", &mut || {
            if let Ok(mut l) = Conv2d::<f64>::new(c_in, c_out, k, o, bias, &mut rng) {
                call("Conv2d::forward", || l.forward(&mut step(), input));
            }
        });
        guarded("ConvTranspose2d::new", &mut || {
            if let Ok(mut l) = ConvTranspose2d::<f64>::new(c_in, c_out, k, t, bias, &mut rng) {
                call("ConvTranspose2d::forward", || l.forward(&mut step(), input));
            }
        });
        guarded("Recurrent::new", &mut || {
            for cell in [Cell::Elman, Cell::Lstm, Cell::Residual] {
                if let Ok(mut l) = Recurrent::<f64>::new(cell, c_in, c_out, &mut rng) {
                    call("Recurrent::forward", || l.forward(&mut step(), input));
                }
            }
        });
        let mut dropout = Dropout { p };
        call("Dropout::forward", || dropout.forward(&mut step(), input));
        let dims = [c_out, c_in, k, k];
        guarded("init", &mut || {
            use wengert::nn::init::{fans, kaiming_normal, xavier_uniform, Fan};
            let _ = fans(&Shape::new(&dims));
            let _ = kaiming_normal::<f32>(dims.map(|d| d.min(3)), Fan::FanIn, p, &mut rng);
            let _ = xavier_uniform::<f32>(dims.map(|d| d.min(3)), p, &mut rng);
        });
    }

    #[test]
    fn functional_api(a in shape(), b in shape(), c in shape()) {
        use wengert::core::functional::{grad, hessian_vector_product, jacobian, jvp, vjp};
        let t = |d: &[usize]| Tensor::<f64>::from_fn(Shape::new(d), |i| 0.3 + i as f64);
        let outcome = catch_unwind(|| {
            let _ = grad(f, &[t(&a)]);
            let _ = vjp(|_, x| x[0].exp(), &[t(&a)], &t(&b));
            let _ = jvp(f, &[t(&a)], &[t(&b)]);
            let _ = jacobian(|_, x| x[0].exp(), &t(&a));
            let _ = hessian_vector_product(f, &[t(&a)], &[t(&c)]);
            let _ = grad(f, &[]);
        });
        CALLS.fetch_add(6, Ordering::Relaxed);
        prop_assert!(outcome.is_ok(), "the functional API panicked");
    }
}

/// `Σ x²` of the first input (an error when there is none).
fn f<'t>(_: &'t Tape<f64>, x: &[Var<'t, f64>]) -> Result<Var<'t, f64>> {
    let v = x.first().ok_or_else(|| wengert::Error::argument("f", "inputs", "none"))?;
    v.mul(*v)?.sum_all()
}

#[test]
fn total_calls_made_by_the_suite() {
    // With `--test-threads 1` (as `.ci/run` runs it) tests run in name
    // order, so this one runs last and prints the whole count.
    println!("fuzz_api: {} calls so far in this process", CALLS.load(Ordering::Relaxed));
}
