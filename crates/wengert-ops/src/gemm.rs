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
/// `a.rows × b.cols`. `threads` lets `gemm` split the product over rayon's
/// pool; callers that already run in parallel pass `false`.
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
    // Small products do not pay for waking the thread pool.
    let parallelism = if threads && m * n * k >= 1 << 18 {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above check that every index the three views can
    // address lies inside its slice, and that T is f32 or f64, the types for
    // which `gemm` dispatches (it panics on others). `dst` is borrowed
    // mutably, so it cannot alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
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
            parallelism,
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
}
