//! Pixel-level (semantic) metrics from a confusion matrix pooled over tiles.
//!
//! For each nucleus class `c` (class 0 is background and is not scored), with the counts of the
//! pooled confusion matrix: precision = TP/(TP+FP), recall = TP/(TP+FN),
//! F1 = 2TP/(2TP+FP+FN), IoU = TP/(TP+FP+FN). A ratio with a zero denominator is NaN. The
//! overall values are the means over nucleus classes, skipping NaN.

use super::{nanmean, ratio, MetricsError};
use serde::{Deserialize, Serialize};

/// Ground-truth class value that is skipped by [`ConfusionMatrix::add`].
pub use crate::imaging::IGNORE;

/// Counts of (ground-truth class, predicted class) pixel pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    num_classes: usize,
    counts: Vec<u64>,
}

/// Scores of one class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassPixelScores {
    pub tp: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    #[serde(with = "super::nan_f64")]
    pub precision: f64,
    #[serde(with = "super::nan_f64")]
    pub recall: f64,
    #[serde(with = "super::nan_f64")]
    pub f1: f64,
    #[serde(with = "super::nan_f64")]
    pub iou: f64,
}

/// Means over nucleus classes (NaN-skipping) plus the per-class scores (index `c - 1` is class `c`).
#[derive(Debug, Clone, PartialEq)]
pub struct PixelScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub miou: f64,
    pub per_class: Vec<ClassPixelScores>,
}

impl ConfusionMatrix {
    /// `num_classes` counts background (class 0); valid class values are `0..num_classes`.
    ///
    /// # Panics
    /// If `num_classes` is 0 or above 255 (255 is [`IGNORE`]).
    pub fn new(num_classes: usize) -> Self {
        assert!(
            num_classes >= 1 && num_classes <= IGNORE as usize,
            "num_classes must be in 1..=255"
        );
        Self {
            num_classes,
            counts: vec![0; num_classes * num_classes],
        }
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Adds one tile. Pixels whose ground truth is [`IGNORE`] are skipped; any other value outside
    /// `0..num_classes` (in either map) is an error and leaves the matrix unchanged.
    pub fn add(&mut self, gt: &[u8], pred: &[u8]) -> Result<(), MetricsError> {
        if gt.len() != pred.len() {
            return Err(MetricsError::SizeMismatch {
                what: "class maps",
                expected: gt.len(),
                found: pred.len(),
            });
        }
        let k = self.num_classes;
        for (&g, &p) in gt.iter().zip(pred) {
            if g == IGNORE {
                continue;
            }
            if g as usize >= k {
                return Err(MetricsError::ClassOutOfRange {
                    what: "ground-truth class map",
                    class: g,
                    num_classes: k,
                });
            }
            if p as usize >= k {
                return Err(MetricsError::ClassOutOfRange {
                    what: "predicted class map",
                    class: p,
                    num_classes: k,
                });
            }
        }
        for (&g, &p) in gt.iter().zip(pred) {
            if g != IGNORE {
                self.counts[g as usize * k + p as usize] += 1;
            }
        }
        Ok(())
    }

    /// Adds another matrix with the same number of classes.
    pub fn merge(&mut self, other: &ConfusionMatrix) -> Result<(), MetricsError> {
        if other.num_classes != self.num_classes {
            return Err(MetricsError::SizeMismatch {
                what: "confusion matrices (classes)",
                expected: self.num_classes,
                found: other.num_classes,
            });
        }
        self.counts
            .iter_mut()
            .zip(&other.counts)
            .for_each(|(a, b)| *a += b);
        Ok(())
    }

    /// Number of pixels with ground truth `gt` predicted as `pred`.
    pub fn get(&self, gt: usize, pred: usize) -> u64 {
        self.counts[gt * self.num_classes + pred]
    }

    /// Total number of counted pixels.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Scores of class `c` (background included if asked for: `c = 0`).
    pub fn class_scores(&self, c: usize) -> ClassPixelScores {
        let k = self.num_classes;
        let tp = self.get(c, c);
        let fp = (0..k).map(|r| self.get(r, c)).sum::<u64>() - tp;
        let fn_ = (0..k).map(|p| self.get(c, p)).sum::<u64>() - tp;
        ClassPixelScores {
            tp,
            fp,
            fn_,
            precision: ratio(tp as f64, (tp + fp) as f64),
            recall: ratio(tp as f64, (tp + fn_) as f64),
            f1: ratio(2.0 * tp as f64, (2 * tp + fp + fn_) as f64),
            iou: ratio(tp as f64, (tp + fp + fn_) as f64),
        }
    }

    /// Per-class scores of the nucleus classes `1..num_classes` and their NaN-skipping means.
    pub fn scores(&self) -> PixelScores {
        let per_class: Vec<ClassPixelScores> = (1..self.num_classes)
            .map(|c| self.class_scores(c))
            .collect();
        PixelScores {
            precision: nanmean(per_class.iter().map(|s| s.precision)),
            recall: nanmean(per_class.iter().map(|s| s.recall)),
            f1: nanmean(per_class.iter().map(|s| s.f1)),
            miou: nanmean(per_class.iter().map(|s| s.iou)),
            per_class,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_scores() {
        let mut m = ConfusionMatrix::new(3);
        // gt:   0 1 1 2 2 2 255
        // pred: 0 1 2 2 2 0 1
        m.add(&[0, 1, 1, 2, 2, 2, 255], &[0, 1, 2, 2, 2, 0, 1])
            .unwrap();
        assert_eq!(m.total(), 6);
        assert_eq!(m.get(1, 2), 1);
        let s1 = m.class_scores(1);
        assert_eq!((s1.tp, s1.fp, s1.fn_), (1, 0, 1));
        assert_eq!(s1.precision, 1.0);
        assert_eq!(s1.recall, 0.5);
        assert!((s1.f1 - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(s1.iou, 0.5);
        let s2 = m.class_scores(2);
        assert_eq!((s2.tp, s2.fp, s2.fn_), (2, 1, 1));
        let all = m.scores();
        assert_eq!(all.per_class.len(), 2);
        assert!((all.miou - (0.5 + 0.5) / 2.0).abs() < 1e-15);
        assert!((all.precision - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-15);
    }

    #[test]
    fn absent_class_is_nan_and_skipped() {
        let mut m = ConfusionMatrix::new(4);
        m.add(&[0, 1, 1], &[0, 1, 1]).unwrap();
        let s = m.scores();
        assert!(s.per_class[1].precision.is_nan());
        assert!(s.per_class[1].iou.is_nan());
        assert_eq!(s.miou, 1.0);
        // predicted only: precision 0, recall NaN
        m.add(&[0], &[3]).unwrap();
        let s = m.scores();
        assert_eq!(s.per_class[2].precision, 0.0);
        assert!(s.per_class[2].recall.is_nan());
        assert_eq!(s.per_class[2].f1, 0.0);
        assert_eq!(s.miou, 0.5);
    }

    #[test]
    fn errors_leave_matrix_untouched() {
        let mut m = ConfusionMatrix::new(3);
        assert!(matches!(
            m.add(&[0, 1], &[0]),
            Err(MetricsError::SizeMismatch { .. })
        ));
        assert!(matches!(
            m.add(&[0, 3], &[0, 1]),
            Err(MetricsError::ClassOutOfRange { class: 3, .. })
        ));
        assert!(matches!(
            m.add(&[0, 1], &[0, 7]),
            Err(MetricsError::ClassOutOfRange { class: 7, .. })
        ));
        // pred 255 on a valid gt pixel is an error, on an ignored one it is not looked at
        assert!(m.add(&[1], &[255]).is_err());
        m.add(&[255], &[255]).unwrap();
        assert_eq!(m.total(), 0);
        let mut other = ConfusionMatrix::new(3);
        other.add(&[1, 2], &[1, 1]).unwrap();
        m.merge(&other).unwrap();
        m.merge(&other).unwrap();
        assert_eq!(m.get(2, 1), 2);
        assert!(m.merge(&ConfusionMatrix::new(4)).is_err());
    }
}
