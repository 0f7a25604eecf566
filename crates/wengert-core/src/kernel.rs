//! Building blocks for kernels: parallel element loops and strided copies.
//!
//! Public so that a user's crate writes its own ops' kernels the same way the
//! built-in ones are written. Loops run over contiguous slices so that the
//! compiler vectorises them; work above [`PAR_THRESHOLD`] elements is split
//! across rayon's threads.
//!
//! Give these functions closures that capture by value (`move |v| v * c`):
//! a closure that captures `c` by reference makes the compiler reload `c`
//! through the reference after every store to the output (it cannot rule
//! out that they alias), and the loop runs one scalar element at a time.
//! ReLU's backward ran 3.3× slower that way.

pub use crate::buffer::PAR_THRESHOLD;
use crate::shape::Dims;
use crate::Float;
use rayon::prelude::*;

/// Chunk size for parallel element loops (a multiple of every SIMD width).
const CHUNK: usize = 1 << 13;

/// `out[i] = f(x[i])`, in parallel when large.
pub fn map<T: Float>(x: &[T], f: impl Fn(T) -> T + Sync) -> Vec<T> {
    crate::buffer::build(x.len(), CHUNK, |i, o| {
        o.iter_mut().zip(&x[i * CHUNK..]).for_each(|(o, &x)| *o = f(x));
    })
}

/// `f(x_chunk, out_chunk)` over matching chunks of `x` and a new output of
/// its length, in parallel when large: [`map`] for a kernel that takes a
/// whole slice, such as a [`vectorised_fn!`](crate::vectorised_fn) loop.
pub fn map_slices<T: Float>(x: &[T], f: impl Fn(&[T], &mut [T]) + Sync) -> Vec<T> {
    crate::buffer::build(x.len(), CHUNK, |i, o| f(&x[i * CHUNK..][..o.len()], o))
}

/// Defines `pub fn $name<T: Float>(x: &[T]) -> Vec<T>`, `out[i] = f(x[i])`
/// for a function of [`math`](crate::math), vectorised at the CPU's width
/// and in parallel when large.
macro_rules! elementwise_kernel {
    ($(#[$doc:meta])* $name:ident = $f:path) => {
        $(#[$doc])*
        pub fn $name<T: Float>(x: &[T]) -> Vec<T> {
            crate::vectorised_fn! {
                fn apply<T: Float>(x: &[T], out: &mut [T]) {
                    // An index loop: an iterator's fold may stay out of
                    // line and lose the vector features.
                    let x = &x[..out.len()];
                    for i in 0..out.len() {
                        out[i] = $f(x[i]);
                    }
                }
            }
            map_slices(x, apply)
        }
    };
}

elementwise_kernel!(
    /// `out[i] = eˣ⁽ⁱ⁾` ([`math::exp`](crate::math::exp)), vectorised at the
    /// CPU's width and in parallel when large.
    exp = crate::math::exp
);

elementwise_kernel!(
    /// `out[i] = ln x[i]` ([`math::log`](crate::math::log)), vectorised at
    /// the CPU's width and in parallel when large.
    log = crate::math::log
);

elementwise_kernel!(
    /// `out[i] = tanh x[i]` ([`math::tanh`](crate::math::tanh)), vectorised
    /// at the CPU's width and in parallel when large.
    tanh = crate::math::tanh
);

elementwise_kernel!(
    /// `out[i] = erf x[i]` ([`math::erf`](crate::math::erf)), vectorised at
    /// the CPU's width and in parallel when large.
    erf = crate::math::erf
);

/// `out[i] = f(a[i], b[i])` for slices of equal length, in parallel when large.
pub fn zip_map<T: Float>(a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync) -> Vec<T> {
    debug_assert_eq!(a.len(), b.len());
    crate::buffer::build(a.len(), CHUNK, |i, o| {
        for ((o, &a), &b) in o.iter_mut().zip(&a[i * CHUNK..]).zip(&b[i * CHUNK..]) {
            *o = f(a, b);
        }
    })
}

/// `a[i] = f(a[i], b[i])` in place, in parallel when large.
pub fn zip_assign<T: Float>(a: &mut [T], b: &[T], f: impl Fn(T, T) -> T + Sync) {
    debug_assert_eq!(a.len(), b.len());
    if a.len() >= PAR_THRESHOLD {
        a.par_chunks_mut(CHUNK)
            .zip(b.par_chunks(CHUNK))
            .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, &b)| *a = f(*a, b)));
    } else {
        a.iter_mut().zip(b).for_each(|(a, &b)| *a = f(*a, b));
    }
}

/// A strided view of one operand over an output shape: element `idx` of the
/// output reads `offset + Σ idx[k]·strides[k]` of the operand's buffer.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub dims: Dims,
    pub strides: [Dims; 2],
}

impl Layout {
    /// Merges adjacent axes that both operands step through contiguously, so
    /// that the inner loop is as long as possible (a same-shape operation
    /// becomes one flat loop).
    pub fn coalesced(dims: &[usize], sa: &[usize], sb: &[usize]) -> Layout {
        let mut d = Dims::new();
        let mut a = Dims::new();
        let mut b = Dims::new();
        for i in 0..dims.len() {
            if dims[i] == 1 {
                continue;
            }
            if let (Some(&ld), Some(&la), Some(&lb)) = (d.last(), a.last(), b.last()) {
                if la == sa[i] * dims[i] && lb == sb[i] * dims[i] {
                    let n = d.len();
                    d[n - 1] = ld * dims[i];
                    a[n - 1] = sa[i];
                    b[n - 1] = sb[i];
                    continue;
                }
            }
            d.push(dims[i]);
            a.push(sa[i]);
            b.push(sb[i]);
        }
        if d.is_empty() {
            d.push(1);
            a.push(0);
            b.push(0);
        }
        Layout { dims: d, strides: [a, b] }
    }

    /// The starting offsets of outer row `row` (all axes but the last).
    #[inline]
    fn row_offsets(&self, mut row: usize) -> (usize, usize) {
        let (mut oa, mut ob) = (0, 0);
        for k in (0..self.dims.len() - 1).rev() {
            let i = row % self.dims[k];
            row /= self.dims[k];
            oa += i * self.strides[0][k];
            ob += i * self.strides[1][k];
        }
        (oa, ob)
    }
}

/// `out = f(a, b)` over a broadcast layout: `a` and `b` are read through the
/// layout's strides, `out` is written row-major.
pub(crate) fn broadcast_zip<T: Float>(layout: &Layout, a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync) -> Vec<T> {
    let inner = *layout.dims.last().unwrap_or(&1);
    let n: usize = layout.dims.iter().product();
    let (ia, ib) = (*layout.strides[0].last().unwrap_or(&0), *layout.strides[1].last().unwrap_or(&0));
    let row = |r: usize, o: &mut [T]| {
        let (oa, ob) = layout.row_offsets(r);
        match (ia, ib) {
            (1, 1) => {
                for ((o, &x), &y) in o.iter_mut().zip(&a[oa..oa + inner]).zip(&b[ob..ob + inner]) {
                    *o = f(x, y);
                }
            }
            (1, 0) => {
                let y = b[ob];
                for (o, &x) in o.iter_mut().zip(&a[oa..oa + inner]) {
                    *o = f(x, y);
                }
            }
            (0, 1) => {
                let x = a[oa];
                for (o, &y) in o.iter_mut().zip(&b[ob..ob + inner]) {
                    *o = f(x, y);
                }
            }
            _ => {
                for (j, o) in o.iter_mut().enumerate() {
                    *o = f(a[oa + j * ia], b[ob + j * ib]);
                }
            }
        }
    };
    crate::buffer::build(n, inner, row)
}

/// Copies the strided view `src[offset + Σ idx[k]·strides[k]]` over `dims`
/// into a new row-major buffer. Serves permute, slice and broadcast_to.
pub fn gather_strided<T: Float>(src: &[T], offset: usize, dims: &[usize], strides: &[usize]) -> Vec<T> {
    let zeros: Dims = smallvec::smallvec![0; dims.len()];
    let n: usize = dims.iter().product();
    if n == 0 {
        return Vec::new();
    }
    let layout = Layout::coalesced(dims, strides, &zeros);
    let src = &src[offset..];
    let inner = *layout.dims.last().unwrap_or(&1);
    let is = *layout.strides[0].last().unwrap_or(&0);
    let row = |r: usize, o: &mut [T]| {
        let (oa, _) = layout.row_offsets(r);
        if is == 1 {
            o.copy_from_slice(&src[oa..oa + inner]);
        } else if is == 0 {
            // A broadcast along the row (the gradient of a sum, say).
            o.fill(src[oa]);
        } else {
            for (j, o) in o.iter_mut().enumerate() {
                *o = src[oa + j * is];
            }
        }
    };
    crate::buffer::build(n, inner, row)
}

/// Reduces axis `axis` of a row-major buffer with extents `dims` by folding
/// with `f` from `init`. Returns the buffer with that axis of extent 1.
pub(crate) fn reduce_axis<T: Float>(
    x: &[T],
    dims: &[usize],
    axis: usize,
    init: T,
    f: impl Fn(T, T) -> T + Sync,
) -> Vec<T> {
    let outer: usize = dims[..axis].iter().product();
    let r = dims[axis];
    let inner: usize = dims[axis + 1..].iter().product();
    if outer == 1 && inner == 1 {
        return vec![fold_flat(x, init, &f)];
    }
    let mut out = vec![init; outer * inner];
    let block = |o: usize, dst: &mut [T]| {
        let base = o * r * inner;
        if inner == 1 {
            dst[0] = fold_lanes(&x[base..base + r], init, &f);
        } else {
            for j in 0..r {
                let src = &x[base + j * inner..base + (j + 1) * inner];
                dst.iter_mut().zip(src).for_each(|(d, &s)| *d = f(*d, s));
            }
        }
    };
    if x.len() >= PAR_THRESHOLD && outer > 1 {
        out.par_chunks_mut(inner).enumerate().for_each(|(o, d)| block(o, d));
    } else {
        out.chunks_mut(inner.max(1)).enumerate().for_each(|(o, d)| block(o, d));
    }
    out
}

/// Folds a contiguous slice with eight independent accumulators: the loop
/// vectorises (one chain of dependent additions cannot), and a sum's
/// rounding error grows with the length of each chain, so it is also more
/// accurate. `f` must be associative and commutative (sum, max).
fn fold_lanes<T: Float>(x: &[T], init: T, f: &impl Fn(T, T) -> T) -> T {
    let mut acc = [init; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = f(*a, v);
        }
    }
    // Pairwise combination of the lanes, then the leftovers.
    let half = [f(acc[0], acc[4]), f(acc[1], acc[5]), f(acc[2], acc[6]), f(acc[3], acc[7])];
    let total = f(f(half[0], half[2]), f(half[1], half[3]));
    rest.iter().fold(total, |a, &v| f(a, v))
}

/// Folds a whole buffer: [`fold_lanes`] over chunks, in parallel when large.
fn fold_flat<T: Float>(x: &[T], init: T, f: &(impl Fn(T, T) -> T + Sync)) -> T {
    if x.len() < PAR_THRESHOLD {
        return fold_lanes(x, init, f);
    }
    x.par_chunks(CHUNK).map(|c| fold_lanes(c, init, f)).collect::<Vec<T>>().into_iter().fold(init, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_folds_match_sequential_folds() {
        for n in [0, 1, 7, 8, 9, 100, 40_000] {
            let x: Vec<f64> = (0..n).map(|i| ((i * 37) % 101) as f64 - 50.0).collect();
            let sum: f64 = x.iter().sum();
            assert_eq!(reduce_axis(&x, &[n], 0, 0.0, |a, b| a + b), vec![sum], "n = {n}");
            let max = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(reduce_axis(&x, &[n], 0, f64::NEG_INFINITY, f64::max), vec![max], "n = {n}");
        }
    }

    #[test]
    fn coalescing_merges_contiguous_axes() {
        let l = Layout::coalesced(&[2, 3, 4], &[12, 4, 1], &[12, 4, 1]);
        assert_eq!(l.dims.as_slice(), &[24]);
        let l = Layout::coalesced(&[2, 3, 4], &[12, 4, 1], &[0, 0, 1]);
        assert_eq!(l.dims.as_slice(), &[6, 4]);
    }

    #[test]
    fn gather_transposes() {
        let x: Vec<f64> = (0..6).map(f64::from).collect();
        // [2, 3] read as its transpose [3, 2].
        let t = gather_strided(&x, 0, &[3, 2], &[1, 3]);
        assert_eq!(t, vec![0., 3., 1., 4., 2., 5.]);
    }

    #[test]
    fn reduce_middle_axis() {
        let x: Vec<f64> = (0..24).map(f64::from).collect();
        let s = reduce_axis(&x, &[2, 3, 4], 1, 0.0, |a, b| a + b);
        assert_eq!(s[0], 0. + 4. + 8.);
        assert_eq!(s[7], 15. + 19. + 23.);
    }
}
