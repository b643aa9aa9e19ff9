//! Panoptic quality (PQ = DQ x SQ) from the overlaps of a map pair.

use super::{InstanceMap, Overlaps, MATCH_IOU};
use crate::metrics::MetricsError;

/// PQ counts and scores (NaN when there is no instance on either side).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PqStats {
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
    pub iou_sum: f64,
    pub dq: f64,
    pub sq: f64,
    pub pq: f64,
}

impl PqStats {
    fn from_counts(tp: usize, fp: usize, fn_: usize, iou_sum: f64) -> Self {
        if tp + fp + fn_ == 0 {
            return Self {
                tp,
                fp,
                fn_,
                iou_sum,
                dq: f64::NAN,
                sq: f64::NAN,
                pq: f64::NAN,
            };
        }
        let dq = tp as f64 / (tp as f64 + 0.5 * fp as f64 + 0.5 * fn_ as f64);
        let sq = iou_sum / (tp as f64 + 1.0e-6);
        Self {
            tp,
            fp,
            fn_,
            iou_sum,
            dq,
            sq,
            pq: dq * sq,
        }
    }
}

impl Overlaps {
    fn iou(&self, t: u32, p: u32, n: u64) -> f64 {
        let union = self.gt_areas[&t] + self.pred_areas[&p] - n;
        n as f64 / union as f64
    }

    /// PQ over all instances.
    pub fn pq(&self) -> PqStats {
        self.pq_subset(|_| true, |_| true)
    }

    /// PQ between the ground-truth instances with `gt_keep(id)` and the predictions with
    /// `pred_keep(id)` (the others are treated as absent).
    pub fn pq_subset(
        &self,
        gt_keep: impl Fn(u32) -> bool,
        pred_keep: impl Fn(u32) -> bool,
    ) -> PqStats {
        let n_gt = self.gt_areas.keys().filter(|&&t| gt_keep(t)).count();
        let n_pred = self.pred_areas.keys().filter(|&&p| pred_keep(p)).count();
        let mut tp = 0usize;
        let mut iou_sum = 0.0f64;
        for (&(t, p), &n) in &self.inter {
            if gt_keep(t) && pred_keep(p) {
                let iou = self.iou(t, p, n);
                if iou > MATCH_IOU {
                    tp += 1;
                    iou_sum += iou;
                }
            }
        }
        PqStats::from_counts(tp, n_pred - tp, n_gt - tp, iou_sum)
    }
}

/// PQ (DQ, SQ) of a pair of instance maps, all classes merged.
pub fn pq(gt: &InstanceMap, pred: &InstanceMap) -> Result<PqStats, MetricsError> {
    Ok(Overlaps::new(gt, pred)?.pq())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::instance::test_maps::map;

    #[test]
    fn pq_hand_example() {
        // gt: A (4 px) and B (2 px); pred: A' covers 3 of A's pixels + 1 extra (IoU 3/5 = 0.6),
        // B' covers 1 of B (IoU 1/3 -> no match), and a FP.
        let gt = map(6, &[&[1, 1, 0, 0, 2, 2], &[1, 1, 0, 0, 0, 0]]);
        let pr = map(6, &[&[5, 5, 5, 0, 0, 6], &[5, 0, 0, 8, 0, 0]]);
        let s = pq(&gt, &pr).unwrap();
        assert_eq!((s.tp, s.fp, s.fn_), (1, 2, 1));
        assert!((s.dq - 1.0 / 2.5).abs() < 1e-15);
        assert!((s.sq - 0.6 / (1.0 + 1e-6)).abs() < 1e-15);
        assert!((s.pq - s.dq * s.sq).abs() < 1e-15);
        // IoU exactly 0.5 does not match
        let gt = map(2, &[&[1, 1]]);
        let pr = map(2, &[&[1, 0]]);
        assert_eq!(pq(&gt, &pr).unwrap().tp, 0);
        // both empty -> NaN
        let e = InstanceMap::empty(2, 1);
        assert!(pq(&e, &e).unwrap().pq.is_nan());
        assert_eq!(pq(&gt, &e).unwrap().pq, 0.0);
        assert!(pq(&gt, &InstanceMap::empty(3, 1)).is_err());
    }
}
