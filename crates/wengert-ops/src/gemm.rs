//! A safe face on the `gemm` crate's matrix product, for both float types.
//!
//! `gemm` beats a hand-written kernel by a wide margin (packed, cache-blocked
//! AVX2/AVX-512 micro-kernels, runtime dispatch), so every matrix product in
//! Wengert — matmul, linear and the convolutions' GEMM steps — goes through
//! [`matmul_into`].

use wengert_core::{DType, Float};

/// A strided matrix view over a slice: element `(i, j)` is
/// `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a, T> Mat<'a, T> {
    /// A row-major `rows × cols` matrix.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        Mat { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// The transpose, without moving data.
    pub fn t(self) -> Self {
        Mat { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }

    /// Whether every element the view can address lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride < self.data.len()
    }
}

/// `dst = a · b` (or `dst += a · b` with `accumulate`), `dst` row-major
/// `a.rows × b.cols`. `threads` lets the product split over rayon's pool;
/// callers that already run in parallel pass `false`.
pub(crate) fn matmul_into<T: Float>(dst: &mut [T], a: Mat<'_, T>, b: Mat<'_, T>, accumulate: bool, threads: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "matmul_into: inner dimensions");
    assert!(dst.len() >= m * n && a.in_bounds() && b.in_bounds(), "matmul_into: views out of bounds");
    assert!(matches!(T::DTYPE, DType::F32 | DType::F64), "matmul_into: only f32 and f64");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(T::zero());
        }
        return;
    }
    // Products from 2²⁰ multiply-adds (square n ≈ 100) are cut into one
    // block of columns (rows, when there are more rows) of `dst` per
    // thread, each a single-threaded product, and run on the `team`, whose
    // helpers spin between products: waking a sleeping rayon worker costs
    // tens of microseconds on these virtual machines, as long as a whole
    // product of n = 128. When the team is serving another caller, the
    // parts go to rayon from 2²³ (n ≈ 200); below, the product runs whole
    // on this thread.
    // The parts split the columns rather than the rows, and rather than
    // leaving the split to `gemm`'s own rayon mode, whose speed varied
    // widely from one run to the next (B is packed once per thread either
    // way, and a column block packs half of it; docs/architecture.md has
    // the figures).
    let work = m * n * k;
    // No more parts than the current rayon pool has threads: a caller that
    // runs in a one-thread pool gets one thread here too.
    let threads_here = rayon::current_num_threads();
    let parts = if threads && work >= 1 << 20 { crate::team::size().min(threads_here).min(MAX_PARTS) } else { 1 };
    let rows = m > n;
    let (len, align) = (if rows { m } else { n }, 16);
    let parts = parts.min(len.div_ceil(align)).max(1);
    let dst_ptr = SendPtr(dst.as_mut_ptr());
    let block = move |p: usize, parts: usize| {
        // Part p of `parts` covers [start, end) of the split dimension, cut
        // at multiples of 16 so that each part's tiles are whole vectors.
        let cut = |q: usize| if q == parts { len } else { (len * q / parts).next_multiple_of(align).min(len) };
        let (start, end) = (cut(p), cut(p + 1));
        if start >= end {
            return;
        }
        let (mut av, mut bv) = (a, b);
        let offset = if rows {
            av.rows = end - start;
            av.data = &a.data[start * a.row_stride..];
            start * n
        } else {
            bv.cols = end - start;
            bv.data = &b.data[start * b.col_stride..];
            start
        };
        // SAFETY: the parts cover disjoint blocks of rows (or of columns) of
        // the row-major `m × n` destination, so no element is written by two
        // threads, and `offset` plus the block's extent (with row stride `n`)
        // stays inside `dst`, checked by the assert above. `dst` is borrowed
        // mutably for the whole call, so nothing else reads or writes it.
        unsafe { product(av, bv, dst_ptr.get().add(offset), n, accumulate) }
    };
    if parts == 1 {
        block(0, 1);
    } else if crate::team::run(parts, &|p| block(p, parts)) {
        // Done on the team.
    } else if work >= 1 << 23 {
        use rayon::prelude::*;
        (0..parts).into_par_iter().for_each(|p| block(p, parts));
    } else {
        // The team is busy and the product too small to wake rayon: one
        // part, packed once, rather than the parts one after another.
        block(0, 1);
    }
}

/// The most blocks a product is cut into for threads.
const MAX_PARTS: usize = 64;

/// A raw pointer that may cross to rayon's threads; the code that hands it
/// over makes sure the threads write disjoint elements.
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);

// SAFETY: only `matmul_into` creates one, and its parts write disjoint
// blocks of the destination (see there).
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer. A method, not a field read, so that closures capture the
    /// whole `SendPtr` (which is `Sync`) rather than its raw pointer field.
    fn get(self) -> *mut T {
        self.0
    }
}

/// `dst = a · b` (or `+=`), single-threaded, into the row-major block at
/// `dst` with row stride `ldc`.
///
/// # Safety
/// Every element `dst[i * ldc + j]` for `i < a.rows`, `j < b.cols` must be
/// valid to write and not read or written by anyone else during the call;
/// the views must be in bounds and `T` must be f32 or f64.
unsafe fn product<T: Float>(a: Mat<'_, T>, b: Mat<'_, T>, dst: *mut T, ldc: usize, accumulate: bool) {
    // SAFETY: the caller's contract is `gemm::gemm`'s: the three views'
    // addressed elements are valid and `dst`'s are not aliased.
    unsafe {
        gemm::gemm(
            a.rows,
            b.cols,
            a.cols,
            dst,
            1,
            ldc as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_with_transposes() {
        let a: Vec<f64> = (0..6).map(f64::from).collect(); // [[0,1,2],[3,4,5]]
        let b: Vec<f64> = (0..6).map(f64::from).collect(); // [[0,1],[2,3],[4,5]]
        let mut c = vec![0.0; 4];
        matmul_into(&mut c, Mat::row_major(&a, 2, 3), Mat::row_major(&b, 3, 2), false, false);
        assert_eq!(c, vec![10., 13., 28., 40.]);
        // a · aᵀ
        matmul_into(&mut c, Mat::row_major(&a, 2, 3), Mat::row_major(&a, 2, 3).t(), false, true);
        assert_eq!(c, vec![5., 14., 14., 50.]);
        matmul_into(&mut c, Mat::row_major(&a, 2, 3), Mat::row_major(&a, 2, 3).t(), true, false);
        assert_eq!(c, vec![10., 28., 28., 100.]);
    }

    /// Products large enough to be split over threads, by rows and by
    /// columns, with a transposed operand and accumulation, against the
    /// plain triple loop.
    #[test]
    fn split_products_match_the_plain_loop() {
        // Two above 2²³ (rayon, when the team is busy) and one below.
        for (m, k, n) in [(300, 100, 290), (100, 300, 290), (130, 70, 120)] {
            assert!(m * n * k >= 1 << 20);
            let a: Vec<f64> = (0..m * k).map(|i| ((i * 37 % 101) as f64 - 50.0) / 7.0).collect();
            let b: Vec<f64> = (0..k * n).map(|i| ((i * 53 % 97) as f64 - 48.0) / 5.0).collect();
            let mut want = vec![1.0; m * n];
            for i in 0..m {
                for j in 0..n {
                    want[i * n + j] += (0..k).map(|l| a[i * k + l] * b[j * k + l]).sum::<f64>();
                }
            }
            // b is stored n × k; the product reads its transpose.
            let mut got = vec![1.0; m * n];
            matmul_into(&mut got, Mat::row_major(&a, m, k), Mat::row_major(&b, n, k).t(), true, true);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-12 * w.abs().max(1.0), "{m}×{k}×{n}: {g} vs {w}");
            }
        }
    }
}
