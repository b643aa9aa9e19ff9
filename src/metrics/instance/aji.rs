//! Aggregated Jaccard Index and foreground Dice.

use super::{InstanceMap, Overlaps};
use crate::metrics::{ratio, MetricsError};

impl Overlaps {
    /// Aggregated Jaccard Index (HoVer-Net's `get_fast_aji`); NaN when both sides are empty.
    pub fn aji(&self) -> f64 {
        if self.gt_areas.is_empty() && self.pred_areas.is_empty() {
            return f64::NAN;
        }
        let mut total_inter = 0u64;
        let mut total_union = 0u64;
        let mut used = std::collections::BTreeSet::new();
        for (&t, &ta) in &self.gt_areas {
            let mut best: Option<(u32, u64, u64)> = None;
            let mut best_iou = 0.0f64;
            for (&(_, p), &n) in self.inter.range((t, 0)..=(t, u32::MAX)) {
                let union = ta + self.pred_areas[&p] - n;
                let iou = n as f64 / (union as f64 + 1.0e-6);
                if iou > best_iou {
                    best_iou = iou;
                    best = Some((p, n, union));
                }
            }
            match best {
                Some((p, n, union)) => {
                    total_inter += n;
                    total_union += union;
                    used.insert(p);
                }
                None => total_union += ta,
            }
        }
        for (p, &pa) in &self.pred_areas {
            if !used.contains(p) {
                total_union += pa;
            }
        }
        total_inter as f64 / total_union as f64
    }
}

/// Aggregated Jaccard Index of a pair of instance maps.
pub fn aji(gt: &InstanceMap, pred: &InstanceMap) -> Result<f64, MetricsError> {
    Ok(Overlaps::new(gt, pred)?.aji())
}

/// Foreground Dice (HoVer-Net's `get_dice_1`); NaN when both maps are empty.
pub fn dice(gt: &InstanceMap, pred: &InstanceMap) -> Result<f64, MetricsError> {
    gt.check_same_size(pred)?;
    let (mut t, mut p, mut both) = (0u64, 0u64, 0u64);
    for (&a, &b) in gt.labels.iter().zip(&pred.labels) {
        t += (a != 0) as u64;
        p += (b != 0) as u64;
        both += (a != 0 && b != 0) as u64;
    }
    Ok(ratio(2.0 * both as f64, (t + p) as f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::instance::test_maps::map;

    #[test]
    fn aji_and_dice_hand_example() {
        // gt 1 (2px), gt 2 (2px); pred 9 spans both (4px) -> both paired to 9
        let gt = map(5, &[&[1, 1, 2, 2, 0]]);
        let pr = map(5, &[&[9, 9, 9, 9, 4]]);
        // inter = 2 + 2, union = 4 + 4 (+ unpaired pred 4: 1 px)
        assert!((aji(&gt, &pr).unwrap() - 4.0 / 9.0).abs() < 1e-15);
        assert!((dice(&gt, &pr).unwrap() - 8.0 / 9.0).abs() < 1e-15);
        let e = InstanceMap::empty(5, 1);
        assert!(aji(&e, &e).unwrap().is_nan());
        assert!(dice(&e, &e).unwrap().is_nan());
        assert_eq!(aji(&gt, &e).unwrap(), 0.0);
        assert_eq!(aji(&e, &pr).unwrap(), 0.0);
        // Near tie: pred 5 (inter 2, union 6) and pred 3 (inter 3, union 9) both have IoU 1/3,
        // but the 1e-6 in the denominator favours the larger union: pred 3 is chosen and pred 5
        // (2 px) is added to the union as unpaired: 3 / (9 + 2).
        let gt = map(9, &[&[1, 1, 1, 1, 1, 1, 0, 0, 0]]);
        let pr = map(9, &[&[5, 5, 3, 3, 3, 0, 3, 3, 3]]);
        assert!((aji(&gt, &pr).unwrap() - 3.0 / 11.0).abs() < 1e-15);
    }
}
