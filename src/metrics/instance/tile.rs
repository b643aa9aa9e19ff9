//! Everything measured on one tile.

use super::map::class_of;
use super::{
    dice, DetectionCounts, InstanceClasses, InstanceMap, Overlaps, PqStats, DETECTION_RADIUS,
};
use crate::metrics::{nanmean, MetricsError};
use std::collections::HashMap;

/// Everything measured on one tile.
#[derive(Debug, Clone, PartialEq)]
pub struct TileResult {
    pub tissue: Option<u32>,
    /// All classes merged; NaN scores when both sides are empty.
    pub pq: PqStats,
    /// PanNuke's bPQ: `pq.pq`, or NaN when the ground truth has no nucleus.
    pub bpq: f64,
    /// PQ of classes `1..num_classes` (index `c - 1`), NaN where the class is absent from the
    /// ground truth.
    pub class_pq: Vec<f64>,
    /// NaN-skipping mean of `class_pq`.
    pub mpq: f64,
    pub aji: f64,
    pub dice: f64,
    pub detection: DetectionCounts,
}

/// Measures one tile. `num_classes` counts background; instance classes must be below it.
pub fn evaluate_tile(
    gt: &InstanceMap,
    gt_classes: &InstanceClasses,
    pred: &InstanceMap,
    pred_classes: &InstanceClasses,
    num_classes: usize,
    tissue: Option<u32>,
) -> Result<TileResult, MetricsError> {
    let ov = Overlaps::new(gt, pred)?;
    let pq = ov.pq();
    let bpq = if ov.gt_areas.is_empty() {
        f64::NAN
    } else {
        pq.pq
    };
    let mut gcls = HashMap::new();
    for &t in ov.gt_areas.keys() {
        gcls.insert(
            t,
            class_of(gt_classes, t, num_classes, "ground-truth instance class")?,
        );
    }
    let mut pcls = HashMap::new();
    for &p in ov.pred_areas.keys() {
        pcls.insert(
            p,
            class_of(pred_classes, p, num_classes, "predicted instance class")?,
        );
    }
    let class_pq: Vec<f64> = (1..num_classes)
        .map(|c| {
            let c = c as u8;
            if !gcls.values().any(|&x| x == c) {
                f64::NAN
            } else {
                ov.pq_subset(|t| gcls[&t] == c, |p| pcls[&p] == c).pq
            }
        })
        .collect();
    let mpq = nanmean(class_pq.iter().copied());
    Ok(TileResult {
        tissue,
        pq,
        bpq,
        mpq,
        class_pq,
        aji: ov.aji(),
        dice: dice(gt, pred)?,
        detection: DetectionCounts::from_maps(
            gt,
            gt_classes,
            pred,
            pred_classes,
            num_classes,
            DETECTION_RADIUS,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::instance::test_maps::{classes, map};

    #[test]
    fn mpq_skips_a_class_absent_from_the_ground_truth() {
        // class 1 in gt, class 2 only predicted -> class 2 is NaN (its FP is not counted)
        let gt = map(4, &[&[1, 1, 0, 0]]);
        let pr = map(4, &[&[1, 1, 0, 2]]);
        let r = evaluate_tile(
            &gt,
            &classes(&[(1, 1)]),
            &pr,
            &classes(&[(1, 1), (2, 2)]),
            3,
            Some(0),
        )
        .unwrap();
        assert!((r.class_pq[0] - 1.0 / (1.0 + 1e-6)).abs() < 1e-12);
        assert!(r.class_pq[1].is_nan());
        assert_eq!(r.mpq, r.class_pq[0]);
        // bPQ sees the FP
        assert!((r.bpq - (1.0 / 1.5) / (1.0 + 1e-6)).abs() < 1e-12);
        // class out of range
        assert!(evaluate_tile(&gt, &classes(&[(1, 3)]), &pr, &classes(&[]), 3, None).is_err());
    }
}
