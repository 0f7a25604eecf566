//! Weight initialisation from a seeded generator.
//!
//! - Kaiming/He (He et al. 2015, *Delving Deep into Rectifiers*): variance
//!   `gain² / fan`, the initialisation the ResNet paper uses
//!   (`kaiming_normal(FanOut, relu gain)` for convolutions).
//! - Xavier/Glorot (Glorot & Bengio 2010): variance `2·gain² / (fan_in + fan_out)`.
//!
//! Fans follow PyTorch: for a weight `[out, in, k...]`, `fan_in = in·Πk` and
//! `fan_out = out·Πk`.

use wengert_core::{Error, Float, Result, Rng, Shape, Tensor};

/// Which fan Kaiming initialisation preserves the variance of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fan {
    /// Forward activations (`fan_in`).
    FanIn,
    /// Backward gradients (`fan_out`), as torchvision's ResNets use.
    FanOut,
}

/// The gain for ReLU, `√2`.
pub const RELU_GAIN: f64 = std::f64::consts::SQRT_2;

/// `(fan_in, fan_out)` of a weight shape, or an error for rank < 2.
pub fn fans(shape: &Shape) -> Result<(usize, usize)> {
    if shape.rank() < 2 {
        return Err(Error::argument("init", "shape", format!("fans need rank 2 or more, got {shape}")));
    }
    // Checked first: then every product of extents below fits.
    shape.checked_numel("init")?;
    let receptive: usize = shape[2..].iter().product();
    Ok((shape[1] * receptive, shape[0] * receptive))
}

fn pick(shape: &Shape, fan: Fan) -> Result<f64> {
    let (i, o) = fans(shape)?;
    let f = if fan == Fan::FanIn { i } else { o };
    if f == 0 {
        return Err(Error::argument("init", "shape", format!("{shape} has a zero fan")));
    }
    Ok(f as f64)
}

/// `N(0, gain² / fan)`.
pub fn kaiming_normal<T: Float>(shape: impl Into<Shape>, fan: Fan, gain: f64, rng: &mut Rng) -> Result<Tensor<T>> {
    let shape = shape.into();
    let std = gain / pick(&shape, fan)?.sqrt();
    Tensor::normal(shape, T::zero(), T::of(std), rng)
}

/// `U(−b, b)` with `b = gain·√(3 / fan)`.
pub fn kaiming_uniform<T: Float>(shape: impl Into<Shape>, fan: Fan, gain: f64, rng: &mut Rng) -> Result<Tensor<T>> {
    let shape = shape.into();
    let bound = gain * (3.0 / pick(&shape, fan)?).sqrt();
    Tensor::uniform(shape, T::of(-bound), T::of(bound), rng)
}

/// `N(0, 2·gain² / (fan_in + fan_out))`.
pub fn xavier_normal<T: Float>(shape: impl Into<Shape>, gain: f64, rng: &mut Rng) -> Result<Tensor<T>> {
    let shape = shape.into();
    let (i, o) = fans(&shape)?;
    let std = gain * (2.0 / (i as f64 + o as f64)).sqrt();
    Tensor::normal(shape, T::zero(), T::of(std), rng)
}

/// `U(−b, b)` with `b = gain·√(6 / (fan_in + fan_out))`.
pub fn xavier_uniform<T: Float>(shape: impl Into<Shape>, gain: f64, rng: &mut Rng) -> Result<Tensor<T>> {
    let shape = shape.into();
    let (i, o) = fans(&shape)?;
    let bound = gain * (6.0 / (i as f64 + o as f64)).sqrt();
    Tensor::uniform(shape, T::of(-bound), T::of(bound), rng)
}

/// PyTorch's default for `Conv2d`/`Linear` weights (`kaiming_uniform` with
/// `a = √5`): `U(−1/√fan_in, 1/√fan_in)`; also its default for their biases.
pub fn torch_default<T: Float>(shape: impl Into<Shape>, fan_in: usize, rng: &mut Rng) -> Result<Tensor<T>> {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    Tensor::uniform(shape, T::of(-bound), T::of(bound), rng)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kaiming_has_the_right_spread() {
        let w: Tensor<f64> =
            kaiming_normal([256, 64, 3, 3], Fan::FanOut, RELU_GAIN, &mut wengert_core::rng(1)).unwrap();
        let var = w.data().iter().map(|x| x * x).sum::<f64>() / w.numel() as f64;
        let want = 2.0 / (256.0 * 9.0);
        assert!((var / want - 1.0).abs() < 0.02, "variance {var}, want {want}");
        let u: Tensor<f32> = xavier_uniform([100, 50], 1.0, &mut wengert_core::rng(2)).unwrap();
        let bound = (6.0f32 / 150.0).sqrt();
        assert!(u.data().iter().all(|x| x.abs() <= bound));
        assert!(fans(&[3].into()).is_err());
    }
}
