//! The n-dimensional array that flows through the tape.

use crate::{DType, Error, Float, Result, Shape};
use rand::Rng;
use rand_distr::{Distribution, Normal, Uniform};
use std::fmt;
use std::sync::Arc;

/// Tensors of at most this many elements keep them inline, with no heap
/// allocation and no reference count: a scalar-heavy graph (the tape-overhead
/// benchmark, loss bookkeeping) then spends its time on arithmetic, not on
/// `malloc` and atomic counts.
const INLINE: usize = 4;

/// Where a tensor's elements live.
#[derive(Clone)]
enum Storage<T: Float> {
    /// Up to [`INLINE`] elements, copied on clone.
    Inline { len: u8, data: [T; INLINE] },
    /// A shared heap buffer.
    Shared(Arc<Vec<T>>),
}

impl<T: Float> Storage<T> {
    fn new(data: Vec<T>) -> Self {
        if data.len() <= INLINE {
            let mut inline = [T::zero(); INLINE];
            inline[..data.len()].copy_from_slice(&data);
            Storage::Inline { len: data.len() as u8, data: inline }
        } else {
            Storage::Shared(Arc::new(data))
        }
    }

    fn as_slice(&self) -> &[T] {
        match self {
            Storage::Inline { len, data } => &data[..*len as usize],
            Storage::Shared(v) => v,
        }
    }
}

/// The last holder of a buffer gives it to [`crate::buffer`] for reuse.
impl<T: Float> Drop for Storage<T> {
    fn drop(&mut self) {
        if let Storage::Shared(v) = self {
            if let Some(v) = Arc::get_mut(v) {
                crate::buffer::give(std::mem::take(v));
            }
        }
    }
}

/// A dense, row-major array of `f32` or `f64`.
///
/// The buffer is shared: cloning a tensor copies a pointer, not the data
/// (tensors of four elements or fewer are simply copied).
/// Tensors are values; every operation makes a new one. The one way to change
/// data in place is [`Tensor::data_mut`], which copies first if the buffer is
/// shared (copy on write), so no other holder ever sees the change.
///
/// ```
/// use wengert_core::Tensor;
/// let t = Tensor::<f64>::from_vec(vec![1., 2., 3., 4., 5., 6.], [2, 3])?;
/// assert_eq!(t.shape().dims(), &[2, 3]);
/// assert_eq!(t.get(&[1, 0])?, 4.0);
/// # Ok::<(), wengert_core::Error>(())
/// ```
#[derive(Clone)]
pub struct Tensor<T: Float> {
    shape: Shape,
    data: Storage<T>,
}

impl<T: Float> Tensor<T> {
    /// A tensor holding `data` in row-major order, or an error when its length
    /// does not match the shape.
    pub fn from_vec(data: Vec<T>, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        shape.checked_numel("Tensor::from_vec")?;
        if data.len() != shape.numel() {
            return Err(Error::DataLength {
                op: "Tensor::from_vec".into(),
                len: data.len(),
                shape: shape.clone(),
                expected: shape.numel(),
            });
        }
        Ok(Tensor { shape, data: Storage::new(data) })
    }

    /// Builds a tensor from a buffer known to have the right length.
    pub(crate) fn from_parts(data: Vec<T>, shape: Shape) -> Self {
        debug_assert_eq!(data.len(), shape.numel());
        Tensor { shape, data: Storage::new(data) }
    }

    /// A 0-d tensor holding `value`.
    pub fn scalar(value: T) -> Self {
        Tensor::from_parts(vec![value], Shape::scalar())
    }

    /// A tensor filled with `value`.
    ///
    /// # Panics
    /// If the shape has more elements than memory can address
    /// ([`Shape::checked_numel`]), as `vec![value; n]` would; check shapes
    /// that come from outside first. The same holds for [`Tensor::zeros`],
    /// [`Tensor::ones`] and [`Tensor::from_fn`].
    pub fn full(shape: impl Into<Shape>, value: T) -> Self {
        let shape = shape.into();
        let n = shape.checked_numel("Tensor::full").unwrap_or_else(|e| panic!("{e}"));
        let mut data = crate::buffer::take(n);
        data.resize(n, value);
        Tensor::from_parts(data, shape)
    }

    /// A tensor of zeros.
    pub fn zeros(shape: impl Into<Shape>) -> Self {
        Tensor::full(shape, T::zero())
    }

    /// A tensor of ones.
    pub fn ones(shape: impl Into<Shape>) -> Self {
        Tensor::full(shape, T::one())
    }

    /// The 1-d tensor `start, start + step, …` up to but excluding `end`
    /// (empty when the step points away from `end`); an error for a
    /// non-finite value, a zero step, or more elements than memory can
    /// address.
    pub fn arange(start: T, end: T, step: T) -> Result<Self> {
        if !(step.is_finite() && step != T::zero() && start.is_finite() && end.is_finite()) {
            return Err(Error::argument(
                "arange",
                "step",
                format!("start {start}, end {end}, step {step}: need finite values and a non-zero step"),
            ));
        }
        // No elements when the step points away from `end`; a count past
        // what memory can address is an error, not an empty tensor.
        let count = ((end - start) / step).ceil().as_f64().max(0.0);
        if count > (isize::MAX as usize / 8) as f64 {
            return Err(Error::argument(
                "arange",
                "end",
                format!("start {start}, end {end}, step {step} give {count:e} elements, more than memory can address"),
            ));
        }
        let n = count as usize;
        let data: Vec<T> = (0..n).map(|i| start + T::of(i as f64) * step).collect();
        let len = data.len();
        Ok(Tensor::from_parts(data, Shape::new(&[len])))
    }

    /// A tensor whose element at flat (row-major) index `i` is `f(i)`.
    pub fn from_fn(shape: impl Into<Shape>, f: impl FnMut(usize) -> T) -> Self {
        let shape = shape.into();
        let n = shape.checked_numel("Tensor::from_fn").unwrap_or_else(|e| panic!("{e}"));
        let data = (0..n).map(f).collect();
        Tensor::from_parts(data, shape)
    }

    /// Samples from the normal distribution N(mean, std²) with `rng`.
    ///
    /// Pass a seeded generator ([`crate::rng`]) to make runs reproducible.
    pub fn normal(shape: impl Into<Shape>, mean: T, std: T, rng: &mut impl Rng) -> Result<Self> {
        if std.is_nan() || std < T::zero() {
            return Err(Error::argument("Tensor::normal", "std", format!("must be at least 0, got {std}")));
        }
        let dist = Normal::new(mean.as_f64(), std.as_f64())
            .map_err(|e| Error::argument("Tensor::normal", "std", format!("std {std}: {e}")))?;
        let shape = shape.into();
        let n = shape.checked_numel("Tensor::random")?;
        let data = (0..n).map(|_| T::of(dist.sample(rng))).collect();
        Ok(Tensor::from_parts(data, shape))
    }

    /// Samples uniformly from `[low, high)` with `rng`.
    pub fn uniform(shape: impl Into<Shape>, low: T, high: T, rng: &mut impl Rng) -> Result<Self> {
        let dist = Uniform::new(low.as_f64(), high.as_f64())
            .map_err(|e| Error::argument("Tensor::uniform", "range", format!("[{low}, {high}): {e}")))?;
        let shape = shape.into();
        let n = shape.checked_numel("Tensor::random")?;
        let data = (0..n).map(|_| T::of(dist.sample(rng))).collect();
        Ok(Tensor::from_parts(data, shape))
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The extents, as a slice.
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    /// The number of axes.
    pub fn rank(&self) -> usize {
        self.shape.rank()
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.data().len()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        T::DTYPE
    }

    /// The elements in row-major order.
    pub fn data(&self) -> &[T] {
        self.data.as_slice()
    }

    /// Mutable access to the elements, copying the buffer first if another
    /// tensor shares it. Optimisers update parameters in place through this.
    pub fn data_mut(&mut self) -> &mut [T] {
        match &mut self.data {
            Storage::Inline { len, data } => &mut data[..*len as usize],
            Storage::Shared(v) => Arc::make_mut(v).as_mut_slice(),
        }
    }

    /// Takes the buffer out, copying only if it is shared.
    pub fn into_vec(mut self) -> Vec<T> {
        match &mut self.data {
            Storage::Inline { len, data } => data[..*len as usize].to_vec(),
            Storage::Shared(v) => match Arc::get_mut(v) {
                Some(v) => std::mem::take(v),
                None => v.as_ref().clone(),
            },
        }
    }

    /// A copy of the elements as a `Vec`.
    pub fn to_vec(&self) -> Vec<T> {
        self.data().to_vec()
    }

    /// The element at a multi-index, or an error naming the index and shape.
    pub fn get(&self, index: &[usize]) -> Result<T> {
        if index.len() != self.rank() || index.iter().zip(self.dims()).any(|(&i, &d)| i >= d) {
            return Err(Error::argument(
                "Tensor::get",
                "index",
                format!("{index:?} is out of bounds for shape {}", self.shape),
            ));
        }
        let flat = index.iter().zip(self.shape.strides().iter()).map(|(i, s)| i * s).sum::<usize>();
        Ok(self.data()[flat])
    }

    /// The single value of a one-element tensor (any shape).
    pub fn item(&self) -> Result<T> {
        if self.numel() != 1 {
            return Err(Error::shape(
                "Tensor::item",
                format!("needs exactly one element, the tensor has shape {}", self.shape),
            ));
        }
        Ok(self.data()[0])
    }

    /// The same data under a new shape with the same number of elements.
    /// Shares the buffer.
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        if shape.checked_numel("reshape")? != self.numel() {
            return Err(Error::shape(
                "reshape",
                format!(
                    "cannot reshape {} ({} elements) to {shape} ({} elements)",
                    self.shape,
                    self.numel(),
                    shape.numel()
                ),
            ));
        }
        Ok(Tensor { shape, data: self.data.clone() })
    }

    /// Converts to another element type (rounding to nearest when narrowing).
    pub fn cast<U: Float>(&self) -> Tensor<U> {
        Tensor::from_parts(self.data().iter().map(|&x| U::of(x.as_f64())).collect(), self.shape.clone())
    }

    /// Applies `f` to every element, giving a new tensor (in parallel when large).
    pub fn map(&self, f: impl Fn(T) -> T + Sync) -> Self {
        if let Storage::Inline { len, data } = &self.data {
            let mut out = [T::zero(); INLINE];
            out.iter_mut().zip(data).for_each(|(o, &x)| *o = f(x));
            return Tensor { shape: self.shape.clone(), data: Storage::Inline { len: *len, data: out } };
        }
        Tensor::from_parts(crate::kernel::map(self.data(), f), self.shape.clone())
    }

    /// `f(self[i], other[i])` for tensors of the same shape, or an error
    /// naming `op` when the shapes differ. In parallel when large.
    pub fn zip_map(&self, other: &Tensor<T>, op: &str, f: impl Fn(T, T) -> T + Sync) -> Result<Self> {
        if self.shape != other.shape {
            return Err(Error::shape(op, format!("shapes differ: {} and {}", self.shape, other.shape)));
        }
        if let (Storage::Inline { len, data: a }, Storage::Inline { data: b, .. }) = (&self.data, &other.data) {
            let mut out = [T::zero(); INLINE];
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = f(x, y);
            }
            return Ok(Tensor { shape: self.shape.clone(), data: Storage::Inline { len: *len, data: out } });
        }
        Ok(Tensor::from_parts(crate::kernel::zip_map(self.data(), other.data(), f), self.shape.clone()))
    }

    /// Whether no other tensor holds this one's buffer, so that
    /// [`Tensor::data_mut`] changes it without a copy.
    pub(crate) fn is_unique(&self) -> bool {
        match &self.data {
            Storage::Inline { .. } => true,
            Storage::Shared(v) => Arc::strong_count(v) == 1 && Arc::weak_count(v) == 0,
        }
    }

    /// Whether both tensors share one heap buffer (no copy was made). Always
    /// false for tensors of four elements or fewer, which are stored inline.
    pub fn shares_buffer(&self, other: &Tensor<T>) -> bool {
        match (&self.data, &other.data) {
            (Storage::Shared(a), Storage::Shared(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// The largest absolute elementwise difference to `other`, or an error
    /// if the shapes differ. Handy in tests.
    pub fn max_abs_diff(&self, other: &Tensor<T>) -> Result<T> {
        if self.shape != other.shape {
            return Err(Error::shape("max_abs_diff", format!("shapes differ: {} vs {}", self.shape, other.shape)));
        }
        Ok(self.data().iter().zip(other.data().iter()).fold(T::zero(), |m, (&a, &b)| m.max((a - b).abs())))
    }
}

impl<T: Float> fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 8;
        write!(f, "Tensor<{}>{} [", T::DTYPE, self.shape)?;
        for (i, x) in self.data().iter().take(SHOWN).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{x}")?;
        }
        if self.numel() > SHOWN {
            write!(f, ", … ({} more)", self.numel() - SHOWN)?;
        }
        f.write_str("]")
    }
}

impl<T: Float> PartialEq for Tensor<T> {
    fn eq(&self, other: &Self) -> bool {
        self.shape == other.shape && self.data() == other.data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn construction_checks_length() {
        let e = Tensor::<f32>::from_vec(vec![1.0; 5], [2, 3]).unwrap_err();
        assert_eq!(e.to_string(), "Tensor::from_vec: data has 5 elements but shape [2, 3] needs 6");
    }

    #[test]
    fn clone_shares_and_write_copies() {
        let a = Tensor::<f64>::ones([5]);
        let mut b = a.clone();
        assert!(a.shares_buffer(&b));
        b.data_mut()[0] = 5.0;
        assert!(!a.shares_buffer(&b));
        assert_eq!(a.data(), &[1.0; 5]);
        assert_eq!(b.data(), &[5.0, 1.0, 1.0, 1.0, 1.0]);
        // Small tensors are inline: clones are independent copies.
        let s = Tensor::<f32>::ones([2]);
        let mut t = s.clone();
        t.data_mut()[1] = 3.0;
        assert_eq!((s.data(), t.data()), (&[1.0f32, 1.0][..], &[1.0f32, 3.0][..]));
        assert_eq!(t.into_vec(), vec![1.0, 3.0]);
    }

    #[test]
    fn seeded_sampling_is_reproducible() {
        let a = Tensor::<f32>::normal([100], 0.0, 1.0, &mut crate::rng(7)).unwrap();
        let b = Tensor::<f32>::normal([100], 0.0, 1.0, &mut crate::rng(7)).unwrap();
        assert_eq!(a, b);
        let u = Tensor::<f64>::uniform([1000], -2.0, 3.0, &mut crate::rng(1)).unwrap();
        assert!(u.data().iter().all(|&x| (-2.0..3.0).contains(&x)));
    }

    #[test]
    fn arange_and_cast() {
        let t = Tensor::<f64>::arange(0.0, 1.0, 0.25).unwrap();
        assert_eq!(t.data(), &[0.0, 0.25, 0.5, 0.75]);
        let f: Tensor<f32> = t.cast();
        assert_eq!(f.data(), &[0.0f32, 0.25, 0.5, 0.75]);
        assert!(Tensor::<f64>::arange(0.0, 1.0, 0.0).is_err());
        assert!(t.get(&[4]).is_err());
        assert_eq!(t.get(&[3]).unwrap(), 0.75);
    }
}
