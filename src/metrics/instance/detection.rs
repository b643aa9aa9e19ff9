//! Detection: centroid pairing and the per-class counts of matched and unmatched instances.

use super::map::class_of;
use super::{InstanceClasses, InstanceMap};
use crate::metrics::{ratio, MetricsError};

/// Result of [`pair_points`]: indices into the two point lists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PointPairing {
    pub pairs: Vec<(usize, usize)>,
    pub unpaired_a: Vec<usize>,
    pub unpaired_b: Vec<usize>,
}

/// HoVer-Net's `pair_coordinates`: minimum-total-Euclidean-distance assignment of
/// `min(a.len(), b.len())` pairs, then pairs farther apart than `radius` are dropped.
pub fn pair_points(a: &[[f64; 2]], b: &[[f64; 2]], radius: f64) -> PointPairing {
    let (n, m) = (a.len(), b.len());
    let mut cost = Vec::with_capacity(n * m);
    for pa in a {
        for pb in b {
            let dx = pa[0] - pb[0];
            let dy = pa[1] - pb[1];
            cost.push((dx * dx + dy * dy).sqrt());
        }
    }
    let pairs: Vec<(usize, usize)> = crate::metrics::hungarian::assign(&cost, n, m)
        .into_iter()
        .filter(|&(r, c)| cost[r * m + c] <= radius)
        .collect();
    let mut in_a = vec![false; n];
    let mut in_b = vec![false; m];
    for &(r, c) in &pairs {
        in_a[r] = true;
        in_b[c] = true;
    }
    PointPairing {
        pairs,
        unpaired_a: (0..n).filter(|&i| !in_a[i]).collect(),
        unpaired_b: (0..m).filter(|&i| !in_b[i]).collect(),
    }
}

/// Detection counts by class, pooled by [`DetectionCounts::merge`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectionCounts {
    num_classes: usize,
    /// `paired[gt_class * num_classes + pred_class]`
    paired: Vec<u64>,
    unpaired_gt: Vec<u64>,
    unpaired_pred: Vec<u64>,
}

impl DetectionCounts {
    pub fn new(num_classes: usize) -> Self {
        Self {
            num_classes,
            paired: vec![0; num_classes * num_classes],
            unpaired_gt: vec![0; num_classes],
            unpaired_pred: vec![0; num_classes],
        }
    }

    /// Matches the centroids of `gt` and `pred` within `radius` and counts by class.
    pub fn from_maps(
        gt: &InstanceMap,
        gt_classes: &InstanceClasses,
        pred: &InstanceMap,
        pred_classes: &InstanceClasses,
        num_classes: usize,
        radius: f64,
    ) -> Result<Self, MetricsError> {
        gt.check_same_size(pred)?;
        let gc = gt.centroids();
        let pc = pred.centroids();
        let gcls = gc
            .iter()
            .map(|(id, _)| class_of(gt_classes, *id, num_classes, "ground-truth instance class"))
            .collect::<Result<Vec<_>, _>>()?;
        let pcls = pc
            .iter()
            .map(|(id, _)| class_of(pred_classes, *id, num_classes, "predicted instance class"))
            .collect::<Result<Vec<_>, _>>()?;
        let a: Vec<[f64; 2]> = gc.iter().map(|x| x.1).collect();
        let b: Vec<[f64; 2]> = pc.iter().map(|x| x.1).collect();
        let pairing = pair_points(&a, &b, radius);
        let mut out = Self::new(num_classes);
        for &(r, c) in &pairing.pairs {
            out.paired[gcls[r] as usize * num_classes + pcls[c] as usize] += 1;
        }
        for &r in &pairing.unpaired_a {
            out.unpaired_gt[gcls[r] as usize] += 1;
        }
        for &c in &pairing.unpaired_b {
            out.unpaired_pred[pcls[c] as usize] += 1;
        }
        Ok(out)
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Matched pairs with ground-truth class `gt` and predicted class `pred`.
    pub fn paired(&self, gt: usize, pred: usize) -> u64 {
        self.paired[gt * self.num_classes + pred]
    }

    pub fn unpaired_gt(&self, class: usize) -> u64 {
        self.unpaired_gt[class]
    }

    pub fn unpaired_pred(&self, class: usize) -> u64 {
        self.unpaired_pred[class]
    }

    pub fn merge(&mut self, other: &DetectionCounts) -> Result<(), MetricsError> {
        if other.num_classes != self.num_classes {
            return Err(MetricsError::SizeMismatch {
                what: "detection counts (classes)",
                expected: self.num_classes,
                found: other.num_classes,
            });
        }
        self.paired
            .iter_mut()
            .zip(&other.paired)
            .for_each(|(a, b)| *a += b);
        self.unpaired_gt
            .iter_mut()
            .zip(&other.unpaired_gt)
            .for_each(|(a, b)| *a += b);
        self.unpaired_pred
            .iter_mut()
            .zip(&other.unpaired_pred)
            .for_each(|(a, b)| *a += b);
        Ok(())
    }

    /// (TP, FP, FN) of detection, classes ignored.
    pub fn tp_fp_fn(&self) -> (u64, u64, u64) {
        (
            self.paired.iter().sum(),
            self.unpaired_pred.iter().sum(),
            self.unpaired_gt.iter().sum(),
        )
    }

    /// Detection F1 = 2TP / (2TP + FP + FN).
    pub fn f1(&self) -> f64 {
        let (tp, fp, fn_) = self.tp_fp_fn();
        ratio(2.0 * tp as f64, (2 * tp + fp + fn_) as f64)
    }

    /// Fraction of matched pairs whose classes agree.
    pub fn type_accuracy(&self) -> f64 {
        let same: u64 = (0..self.num_classes).map(|c| self.paired(c, c)).sum();
        ratio(same as f64, self.tp_fp_fn().0 as f64)
    }

    /// HoVer-Net's type-aware F1 of class `c` (see the module documentation).
    pub fn class_f1(&self, c: usize) -> f64 {
        let k = self.num_classes;
        let tp = self.paired(c, c);
        let fp_t = (0..k).map(|g| self.paired(g, c)).sum::<u64>() - tp;
        let fn_t = (0..k).map(|p| self.paired(c, p)).sum::<u64>() - tp;
        let den = 2 * tp + 2 * fp_t + 2 * fn_t + self.unpaired_pred[c] + self.unpaired_gt[c];
        ratio(2.0 * tp as f64, den as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_pairing() {
        let a = [[0.0, 0.0], [10.0, 0.0], [100.0, 100.0]];
        let b = [[1.0, 0.0], [9.0, 0.0], [50.0, 50.0]];
        let p = pair_points(&a, &b, 12.0);
        assert_eq!(p.pairs, vec![(0, 0), (1, 1)]);
        assert_eq!(p.unpaired_a, vec![2]);
        assert_eq!(p.unpaired_b, vec![2]);
        // exactly at the radius is kept
        let p = pair_points(&[[0.0, 0.0]], &[[12.0, 0.0]], 12.0);
        assert_eq!(p.pairs.len(), 1);
        let p = pair_points(&[], &[[1.0, 1.0]], 12.0);
        assert_eq!(p.unpaired_b, vec![0]);
    }

    #[test]
    fn type_aware_f1() {
        // 4 classes (bg + 3). gt classes / pred classes of matched pairs:
        // (1,1) (1,1) (1,2) (2,1) (3,3); unmatched gt: one of class 1; unmatched pred: one of class 2.
        let mut d = DetectionCounts::new(4);
        d.paired[4 + 1] = 2;
        d.paired[4 + 2] = 1;
        d.paired[2 * 4 + 1] = 1;
        d.paired[3 * 4 + 3] = 1;
        d.unpaired_gt[1] = 1;
        d.unpaired_pred[2] = 1;
        assert_eq!(d.tp_fp_fn(), (5, 1, 1));
        assert!((d.f1() - 10.0 / 12.0).abs() < 1e-15);
        assert!((d.type_accuracy() - 3.0 / 5.0).abs() < 1e-15);
        // class 1: tp 2, fp_t 1 (gt 2 -> pred 1), fn_t 1 (gt 1 -> pred 2), fn_d 1
        assert!((d.class_f1(1) - 4.0 / (4.0 + 2.0 + 2.0 + 1.0)).abs() < 1e-15);
        // class 2: tp 0 -> 0
        assert_eq!(d.class_f1(2), 0.0);
        assert_eq!(d.class_f1(3), 1.0);
        assert!(DetectionCounts::new(4).class_f1(1).is_nan());
    }
}
