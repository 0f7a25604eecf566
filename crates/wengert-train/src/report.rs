//! What an evaluation found: the loss and accuracy over a set of batches
//! ([`Score`]) and, class by class, each class's accuracy, the confusion
//! matrix, and top-5 accuracy.
//!
//! ```
//! use wengert_train::report::Confusion;
//! let mut m = Confusion::new(3);
//! for (truth, guess) in [(0, 0), (0, 0), (0, 1), (2, 2)] {
//!     m.add(truth, guess);
//! }
//! assert_eq!(m.count(0, 1), 1);
//! assert_eq!(m.per_class_accuracy(), [Some(2.0 / 3.0), None, Some(1.0)]); // class 1 has no images
//! assert!(m.to_csv(&[]).starts_with("truth\\predicted,0,1,2\n0,2,1,0\n"));
//! ```

use std::path::Path;
use wengert_core::collective::Collective;
use wengert_core::Result;

/// Loss and accuracy over a set of batches.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Score {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction classified correctly.
    pub accuracy: f64,
    /// Images seen.
    pub images: usize,
}

impl Score {
    pub(crate) fn add(&mut self, loss: f64, correct: usize, n: usize) {
        let total = self.images + n;
        self.loss = (self.loss * self.images as f64 + loss * n as f64) / total.max(1) as f64;
        self.accuracy = (self.accuracy * self.images as f64 + correct as f64) / total.max(1) as f64;
        self.images = total;
    }

    /// The images classified correctly.
    pub fn correct(&self) -> usize {
        (self.accuracy * self.images as f64).round() as usize
    }

    /// The score over `self`'s images and `other`'s together.
    pub(crate) fn merge(&mut self, other: &Score) {
        self.add(other.loss, other.correct(), other.images);
    }

    /// The score over every rank's images: sums the losses and counts.
    pub(crate) fn summed(&self, group: &dyn wengert_core::collective::Collective) -> Result<Score> {
        let mut v = [self.loss * self.images as f64, self.correct() as f64, self.images as f64];
        group.all_reduce_sum(&mut v)?;
        let n = v[2].max(1.0);
        Ok(Score { loss: v[0] / n, accuracy: v[1] / n, images: v[2] as usize })
    }
}

/// Counts of (true class, predicted class) pairs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Confusion {
    classes: usize,
    /// Row-major: `counts[truth * classes + predicted]`.
    counts: Vec<u64>,
}

impl Confusion {
    /// An empty matrix for `classes` classes.
    pub fn new(classes: usize) -> Self {
        Confusion { classes, counts: vec![0; classes * classes] }
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Counts one image of class `truth` predicted as `predicted` (ignored
    /// when either is out of range).
    pub fn add(&mut self, truth: usize, predicted: usize) {
        if truth < self.classes && predicted < self.classes {
            self.counts[truth * self.classes + predicted] += 1;
        }
    }

    /// Images of class `truth` predicted as `predicted`.
    pub fn count(&self, truth: usize, predicted: usize) -> u64 {
        self.counts.get(truth * self.classes + predicted).copied().unwrap_or(0)
    }

    /// Each class's accuracy: the share of its images predicted as it;
    /// `None` for a class with no images.
    pub fn per_class_accuracy(&self) -> Vec<Option<f64>> {
        (0..self.classes)
            .map(|t| {
                let row = &self.counts[t * self.classes..(t + 1) * self.classes];
                let total: u64 = row.iter().sum();
                (total > 0).then(|| row[t] as f64 / total as f64)
            })
            .collect()
    }

    /// The matrix as CSV: a header of predicted classes, then a row per
    /// true class, named by `names` where given (numbers otherwise).
    pub fn to_csv(&self, names: &[String]) -> String {
        let name = |k: usize| names.get(k).map_or_else(|| k.to_string(), |n| csv_field(n));
        let mut out = String::from("truth\\predicted");
        (0..self.classes).for_each(|k| out += &format!(",{}", name(k)));
        out.push('\n');
        for t in 0..self.classes {
            out += &name(t);
            (0..self.classes).for_each(|p| out += &format!(",{}", self.count(t, p)));
            out.push('\n');
        }
        out
    }

    /// Writes [`Confusion::to_csv`] to `path`, atomically.
    pub fn save_csv(&self, path: &Path, names: &[String]) -> Result<()> {
        wengert_nn::checkpoint::write_atomic(path, self.to_csv(names).as_bytes())
    }
}

/// A class name as a CSV field: quoted when it holds a comma, a quote or a
/// line break.
fn csv_field(name: &str) -> String {
    if name.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", name.replace('"', "\"\""))
    } else {
        name.to_string()
    }
}

/// An evaluation's results: the score, the confusion matrix and top-5.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Loss and (top-1) accuracy.
    pub score: Score,
    /// True against predicted classes.
    pub confusion: Confusion,
    /// Images whose class was among the five largest logits.
    top5_hits: u64,
}

impl Report {
    /// An empty report for `classes` classes.
    pub(crate) fn new(classes: usize) -> Self {
        Report { score: Score::default(), confusion: Confusion::new(classes), top5_hits: 0 }
    }

    /// Adds a batch's predictions: its logits (`[N, C]`, row-major) and
    /// labels. Returns how many were right (the largest logit at the label).
    pub(crate) fn add(&mut self, logits: &[f32], labels: &[usize]) -> usize {
        let c = self.confusion.classes.max(1);
        let mut right = 0;
        for (row, &label) in logits.chunks(c).zip(labels) {
            let best =
                row.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
            self.confusion.add(label, best.0);
            right += usize::from(best.0 == label);
            // In the top five when fewer than five logits beat the label's.
            let above = row.iter().filter(|&&v| v > row.get(label).copied().unwrap_or(f32::INFINITY)).count();
            self.top5_hits += u64::from(above < 5);
        }
        right
    }

    /// Top-5 accuracy, when there are more than five classes.
    pub fn top5(&self) -> Option<f64> {
        (self.confusion.classes > 5).then(|| self.top5_hits as f64 / self.score.images.max(1) as f64)
    }

    /// The report over every rank's images: sums the counts.
    pub(crate) fn summed(&self, group: &dyn Collective) -> Result<Report> {
        let s = &self.score;
        let mut v = vec![s.loss * s.images as f64, s.correct() as f64, s.images as f64, self.top5_hits as f64];
        v.extend(self.confusion.counts.iter().map(|&c| c as f64));
        group.all_reduce_sum(&mut v)?;
        let n = v[2].max(1.0);
        Ok(Report {
            score: Score { loss: v[0] / n, accuracy: v[1] / n, images: v[2] as usize },
            top5_hits: v[3] as u64,
            confusion: Confusion {
                classes: self.confusion.classes,
                counts: v[4..].iter().map(|&c| c as u64).collect(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top5_counts_a_label_among_the_five_largest() {
        let mut r = Report::new(7);
        // Label 6 is the 5th largest in the first row, the 6th in the second.
        let logits = [7.0, 6.0, 5.0, 4.0, 0.0, 0.0, 3.0, 7.0, 6.0, 5.0, 4.0, 3.5, 0.0, 3.0];
        r.add(&logits, &[6, 6]);
        r.score.images = 2;
        assert_eq!(r.top5(), Some(0.5));
        assert_eq!(r.confusion.count(6, 0), 2);
        assert_eq!(Report::new(5).top5(), None);
        assert_eq!(
            Confusion::new(2).to_csv(&["a,b".into(), "c".into()]),
            "truth\\predicted,\"a,b\",c\n\"a,b\",0,0\nc,0,0\n"
        );
    }
}
