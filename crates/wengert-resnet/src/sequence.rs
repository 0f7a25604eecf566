//! Recurrent classifiers for sequential image tasks: an image `[C, H, W]`
//! is read row by row, `H` steps of `C·W` values (sequential MNIST: 28
//! steps of 28 pixels), and the last hidden state goes through a linear
//! layer to the logits.

use wengert_core::{Error, Float, Result, Rng, Var};
use wengert_nn::layer::{Cell, Linear, Recurrent};
use wengert_nn::{Module, Step, Visit};

/// A recurrent layer (`rnn.*`, PyTorch's names) and a linear head (`fc.*`).
pub struct SequenceClassifier<T: Float> {
    /// The recurrence over the rows.
    pub rnn: Recurrent<T>,
    /// Hidden state to logits.
    pub fc: Linear<T>,
}

impl<T: Float> SequenceClassifier<T> {
    /// A classifier for images of `c × w` values per row, with `hidden` units.
    pub fn new(cell: Cell, row: usize, hidden: usize, classes: usize, rng: &mut Rng) -> Result<Self> {
        Ok(SequenceClassifier {
            rnn: Recurrent::new(cell, row, hidden, rng)?,
            fc: Linear::new(hidden, classes, true, rng)?,
        })
    }
}

impl<T: Float> SequenceClassifier<T> {
    /// The recurrence's and the head's output shapes for one image of
    /// `(c, h, w)` (`h` steps of `c·w` inputs), and their multiply-adds
    /// (for an image of at most [`MAX_SIDE`](crate::summary::MAX_SIDE) rows,
    /// as [`Model::summary`](crate::registry::Model::summary) checks).
    pub fn summary(&self, (_, h, _): (usize, usize, usize)) -> crate::summary::Summary {
        let (wi, wh) = (self.rnn.weight_ih.value().dims(), self.rnn.weight_hh.value().dims());
        let fc = self.fc.weight.value().dims();
        let per_step = wi[0] * (wi[1] + wh[1]);
        crate::summary::Summary {
            rows: vec![(format!("rnn ({h} steps)"), [self.rnn.hidden_size(), 1, 1]), ("fc".into(), [fc[0], 1, 1])],
            macs: (h * per_step + fc[0] * fc[1]) as u64,
            // Each step keeps its input row and its gates' pre-activations.
            activations: (h * (wi[1] + wi[0])) as u64,
        }
    }
}

impl<T: Float> Module<T> for SequenceClassifier<T> {
    /// Logits `[N, classes]` for images `[N, C, H, W]` read row by row (or
    /// for sequences `[N, T, I]` as they are).
    fn forward<'t>(&mut self, step: &mut Step<'t, T>, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let d = x.shape();
        let x = match *d.dims() {
            [n, c, h, w] => x.permute(&[0, 2, 1, 3])?.reshape(&[n, h, c * w])?,
            [_, _, _] => x,
            _ => {
                return Err(Error::shape("SequenceClassifier", format!("input is {d}; need [N, C, H, W] or [N, T, I]")))
            }
        };
        let h = self.rnn.forward(step, x)?;
        self.fc.forward(step, h)
    }
}

impl<T: Float> Visit<T> for SequenceClassifier<T> {
    wengert_nn::visit_fields!(rnn, fc);
}
