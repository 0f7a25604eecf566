//! Shapes, strides, axis normalisation and NumPy broadcasting.

use crate::{Error, Result};
use smallvec::SmallVec;
use std::fmt;
use std::ops::Deref;

/// Dimension lists up to rank 4 (NCHW) live inline, without a heap
/// allocation; higher ranks spill to the heap. Four keeps a `Shape` at 40
/// bytes, which matters because shapes are copied on every op.
pub(crate) type Dims = SmallVec<[usize; 4]>;

/// The extent of a tensor along each axis, outermost first (row-major).
///
/// A 0-d tensor (a scalar) has the empty shape `[]`.
#[derive(Clone, Eq, Default)]
pub struct Shape(Dims);

/// Compared element by element: shapes are short, and this inlines where the
/// derived comparison calls `memcmp` (measurable on scalar-heavy tapes).
impl PartialEq for Shape {
    fn eq(&self, other: &Shape) -> bool {
        self.0.len() == other.0.len() && self.0.iter().zip(other.0.iter()).all(|(a, b)| a == b)
    }
}

impl std::hash::Hash for Shape {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.as_slice().hash(state);
    }
}

impl Shape {
    /// The shape with the given extents.
    pub fn new(dims: &[usize]) -> Self {
        Shape(Dims::from_slice(dims))
    }

    /// The shape of a 0-d tensor.
    pub fn scalar() -> Self {
        Shape(Dims::new())
    }

    /// The number of axes.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// The number of elements: the product of the extents (1 for a scalar).
    ///
    /// Saturates at `usize::MAX` when the product overflows, so it never
    /// wraps to a small count; no tensor can have such a shape, and the
    /// constructors and ops that could be asked for one check with
    /// [`Shape::checked_numel`].
    pub fn numel(&self) -> usize {
        self.checked_product().unwrap_or(usize::MAX)
    }

    /// The number of elements, or an error naming `op` when the product of
    /// the extents does not fit in memory's address range.
    pub fn checked_numel(&self, op: &str) -> Result<usize> {
        self.checked_product().ok_or_else(|| {
            Error::shape(op, format!("shape {self} : its extents multiply beyond the range memory can address"))
        })
    }

    fn checked_product(&self) -> Option<usize> {
        // The non-zero extents must multiply within range even when a zero
        // extent empties the tensor: code that multiplies some of the
        // extents (strides, rows, planes) then never overflows.
        let nonzero = self
            .0
            .iter()
            .filter(|&&d| d != 0)
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .filter(|&n| n <= isize::MAX as usize / 8)?;
        Some(if self.0.contains(&0) { 0 } else { nonzero })
    }

    /// The extents as a slice.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// Row-major strides, in elements.
    pub fn strides(&self) -> Dims {
        let mut s: Dims = smallvec::smallvec![1; self.rank()];
        for i in (0..self.rank().saturating_sub(1)).rev() {
            s[i] = s[i + 1] * self.0[i + 1];
        }
        s
    }

    /// Resolves a possibly negative axis (`-1` is the last) against this rank.
    pub fn axis(&self, op: &str, axis: isize) -> Result<usize> {
        normalize_axis(op, axis, self.rank())
    }

    /// Resolves a list of axes, rejecting repeats; `None` means every axis.
    /// The result is sorted.
    pub fn axes(&self, op: &str, axes: Option<&[isize]>) -> Result<Dims> {
        let Some(axes) = axes else {
            return Ok((0..self.rank()).collect());
        };
        let mut out = Dims::new();
        for &a in axes {
            let a = self.axis(op, a)?;
            if out.contains(&a) {
                return Err(Error::argument(op, "dims", format!("axis {a} is repeated in {axes:?}")));
            }
            out.push(a);
        }
        out.sort_unstable();
        Ok(out)
    }

    /// The shape of a reduction over `axes`: those extents become 1 with
    /// `keepdim`, or disappear without it.
    pub fn reduced(&self, axes: &[usize], keepdim: bool) -> Shape {
        let mut out = Dims::new();
        for (i, &d) in self.0.iter().enumerate() {
            if !axes.contains(&i) {
                out.push(d);
            } else if keepdim {
                out.push(1);
            }
        }
        Shape(out)
    }

    /// The broadcast of two shapes under NumPy rules, or an error naming `op`.
    pub fn broadcast(op: &str, a: &Shape, b: &Shape) -> Result<Shape> {
        let r = a.rank().max(b.rank());
        let mut out: Dims = smallvec::smallvec![0; r];
        for i in 0..r {
            let da = if i + a.rank() >= r { a.0[i + a.rank() - r] } else { 1 };
            let db = if i + b.rank() >= r { b.0[i + b.rank() - r] } else { 1 };
            out[i] = if da == db || db == 1 {
                da
            } else if da == 1 {
                db
            } else {
                return Err(Error::shape(
                    op,
                    format!("shapes {a} and {b} cannot be broadcast together (axis {i}: {da} vs {db})"),
                ));
            };
        }
        Ok(Shape(out))
    }

    /// Whether this shape broadcasts to `target` (NumPy rules, one way).
    pub fn broadcasts_to(&self, target: &Shape) -> bool {
        self.rank() <= target.rank() && self.0.iter().rev().zip(target.0.iter().rev()).all(|(&d, &t)| d == t || d == 1)
    }

    /// Strides that read this shape's row-major buffer as if broadcast to
    /// `target`: 0 along broadcast axes. `self` must broadcast to `target`.
    pub(crate) fn broadcast_strides(&self, target: &Shape) -> Dims {
        let own = self.strides();
        let off = target.rank() - self.rank();
        (0..target.rank()).map(|i| if i < off || self.0[i - off] == 1 { 0 } else { own[i - off] }).collect()
    }
}

/// Resolves a possibly negative axis against `rank`.
pub(crate) fn normalize_axis(op: &str, axis: isize, rank: usize) -> Result<usize> {
    let r = rank as isize;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(Error::argument(op, "dim", format!("axis {axis} is out of range for a tensor of rank {rank}")));
    }
    Ok(a as usize)
}

impl Deref for Shape {
    type Target = [usize];
    fn deref(&self) -> &[usize] {
        &self.0
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0.as_slice())
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Self {
        Shape::new(d)
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Self {
        Shape::new(&d)
    }
}

impl<const N: usize> From<&[usize; N]> for Shape {
    fn from(d: &[usize; N]) -> Self {
        Shape::new(d)
    }
}

impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Self {
        Shape(Dims::from_vec(d))
    }
}

impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Self {
        s.clone()
    }
}

impl From<Dims> for Shape {
    fn from(d: Dims) -> Self {
        Shape(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        let s = Shape::broadcast("add", &[2, 1, 3].into(), &[4, 1].into()).unwrap();
        assert_eq!(s.dims(), &[2, 4, 3]);
        let e = Shape::broadcast("add", &[2, 3].into(), &[4, 3].into()).unwrap_err();
        assert_eq!(e.to_string(), "add: shapes [2, 3] and [4, 3] cannot be broadcast together (axis 0: 2 vs 4)");
    }

    #[test]
    fn axes_are_normalised_and_checked() {
        let s: Shape = [2, 3, 4].into();
        assert_eq!(s.axes("sum", Some(&[-1, 0])).unwrap().as_slice(), &[0, 2]);
        assert!(s.axes("sum", Some(&[3])).is_err());
        assert!(s.axes("sum", Some(&[1, -2])).is_err());
        assert_eq!(s.strides().as_slice(), &[12, 4, 1]);
        assert_eq!(s.broadcast_strides(&[5, 2, 3, 4].into()).as_slice(), &[0, 12, 4, 1]);
    }
}
