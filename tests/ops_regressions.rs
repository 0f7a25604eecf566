//! Cases the property tests found, pinned so they stay fixed.

use wengert::core::gradcheck::{check_gradients, GradCheck};
use wengert::core::{Tape, Tensor};
use wengert::ops::{self, Conv2dOptions, ConvTranspose2dOptions};

/// Found by the property tests: a transposed conv with output padding at
/// stride 1 (allowed when the dilation is larger) has a 1×1 kernel whose
/// conv view maps a larger input to a smaller output.
#[test]
fn transposed_pointwise_conv_with_output_padding() {
    let t = Tape::<f64>::new();
    let x = t.leaf(Tensor::from_fn([1, 1, 2, 4], |i| i as f64));
    let w = t.leaf(Tensor::full([1, 1, 1, 1], 2.0));
    let o = ConvTranspose2dOptions::default().with_output_padding([1, 1]).with_dilation([2, 2]);
    let y = ops::conv_transpose2d(x, w, None, &o).unwrap();
    assert_eq!(y.shape().dims(), &[1, 1, 3, 5]);
    let v = y.value().unwrap();
    assert_eq!(v.get(&[0, 0, 1, 3]).unwrap(), 14.0);
    assert_eq!(v.get(&[0, 0, 2, 4]).unwrap(), 0.0, "the output padding row and column are zero");
    let g = t.backward(y.sum_all().unwrap()).unwrap();
    assert_eq!(g.get(w).unwrap().item().unwrap(), (0..8).sum::<i32>() as f64);
}

/// Found by the property tests: with stride 3 and padding 2 on a 1-pixel-wide
/// input, whole columns of kernel taps land in the padding; the input
/// gradient's fold computed an index for such an empty run and underflowed.
#[test]
fn conv_gradient_where_kernel_columns_fall_entirely_in_padding() {
    let x = Tensor::from_fn([1, 2, 1, 1], |i| 0.5 + i as f64);
    let w = Tensor::from_fn([2, 1, 1, 3], |i| i as f64 * 0.3 - 0.4);
    let b = Tensor::from_vec(vec![0.1, -0.2], [2]).unwrap();
    let o = Conv2dOptions::default().with_stride([3, 1]).with_padding([0, 2]).with_dilation([2, 2]).with_groups(2);
    let r = check_gradients(|_, v| ops::conv2d(v[0], v[1], Some(v[2]), &o), &[x, w, b], &GradCheck::default()).unwrap();
    assert!(r.passed(), "{r}");
}

/// With `ceil_mode`, PyTorch lets a window overhang an input smaller than the
/// kernel as long as one window starts inside it (GoogLeNet's last 2×2/2 max
/// pool on 1×1 maps, from 28×28 images). Values checked against PyTorch 2.15.
#[test]
fn ceil_mode_windows_may_overhang_a_small_input() {
    use ops::{avg_pool2d, max_pool2d, Pool2d};
    let tape = Tape::<f64>::new();
    let pool = |k: usize, s: usize| Pool2d::new(k, s).with_ceil_mode(true);
    let one = tape.leaf(Tensor::full([1, 1, 1, 1], 4.0));
    assert_eq!(max_pool2d(one, &pool(2, 2)).unwrap().value().unwrap().data(), &[4.0]);
    // avg: the divisor counts the window clipped to the (padded) input.
    assert_eq!(avg_pool2d(one, &pool(2, 2), true).unwrap().value().unwrap().data(), &[4.0]);
    let x = Tensor::from_vec(vec![0.0, 1.0, 2.0, 3.0], [1, 1, 2, 2]).unwrap();
    let xv = tape.leaf(x.clone());
    assert_eq!(max_pool2d(xv, &pool(3, 2)).unwrap().value().unwrap().data(), &[3.0]);
    assert_eq!(avg_pool2d(xv, &pool(3, 2), true).unwrap().value().unwrap().data(), &[1.5]);
    assert_eq!(avg_pool2d(xv, &pool(3, 2), false).unwrap().value().unwrap().data(), &[1.5]);
    let report = check_gradients(|_, v| avg_pool2d(v[0], &pool(3, 2), true), &[x], &GradCheck::default()).unwrap();
    assert!(report.passed(), "{report}");
    // Without ceil_mode there is no window at all: an error, as in PyTorch.
    let floor = pool(2, 2).with_ceil_mode(false);
    assert!(max_pool2d(one, &floor).is_err());
}

/// Found by the API fuzzer (with overflow checks): a padding of `usize::MAX`
/// with a huge stride gives a small output, but the kernels index the padded
/// input in `usize` and overflowed. Paddings that take the padded input (or
/// a transposed conv's unpadded output) past the address range are refused.
#[test]
fn paddings_beyond_the_address_range_are_errors() {
    let t = Tape::<f64>::new();
    let x = t.leaf(Tensor::ones([1, 2, 1, 1]));
    let w = t.leaf(Tensor::ones([2, 1, 1, 1]));
    let o = Conv2dOptions::default()
        .with_stride([1 << 62, 1])
        .with_padding([usize::MAX, 0])
        .with_dilation([1, 1])
        .with_groups(2);
    let err = ops::conv2d(x, w, None, &o).unwrap_err().to_string();
    assert!(err.starts_with("conv2d: padding: [18446744073709551615, 0] makes the padded input"), "{err}");
    let o =
        ConvTranspose2dOptions::default().with_stride([1 << 62, 1]).with_padding([0, 0]).with_dilation([1 << 62, 1]);
    let x = t.leaf(Tensor::ones([1, 2, 3, 1]));
    let w = t.leaf(Tensor::ones([2, 1, 2, 1]));
    let err = ops::conv_transpose2d(x, w, None, &o).unwrap_err().to_string();
    assert!(err.starts_with("conv_transpose2d: stride:"), "{err}");
    // Large but representable paddings still work.
    let o = Conv2dOptions::default().with_padding([3, 0]);
    let y = ops::conv2d(t.leaf(Tensor::ones([1, 1, 1, 1])), t.leaf(Tensor::ones([1, 1, 1, 1])), None, &o).unwrap();
    assert_eq!(y.shape().dims(), &[1, 1, 7, 1]);
}

/// The product's output buffer comes from the pool with its last tensor's
/// values in it: a product over an empty inner dimension must still write
/// zeros everywhere, and a full one every element.
#[test]
fn matmul_writes_every_element_of_a_reused_buffer() {
    let t = Tape::<f32>::new();
    for k in [0, 3] {
        // 256 KiB of NaN, dropped into the pool just before the product.
        drop(Tensor::<f32>::full([256, 256], f32::NAN));
        let a = t.constant(Tensor::full([256, k], 1.0));
        let b = t.constant(Tensor::full([k, 256], 2.0));
        let y = ops::matmul(a, b).unwrap().value().unwrap();
        assert!(y.data().iter().all(|&v| v == 2.0 * k as f32), "k = {k}");
    }
}
