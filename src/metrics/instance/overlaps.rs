//! Areas and intersections of a ground-truth / predicted instance map pair, the input of PQ
//! and AJI.

use super::InstanceMap;
use crate::metrics::MetricsError;
use std::collections::BTreeMap;

/// Areas and pairwise intersections of a ground-truth / predicted instance map pair.
#[derive(Debug, Clone)]
pub struct Overlaps {
    pub gt_areas: BTreeMap<u32, u64>,
    pub pred_areas: BTreeMap<u32, u64>,
    /// `(gt id, pred id) -> intersecting pixels`, only for overlapping pairs.
    pub inter: BTreeMap<(u32, u32), u64>,
}

impl Overlaps {
    pub fn new(gt: &InstanceMap, pred: &InstanceMap) -> Result<Self, MetricsError> {
        gt.check_same_size(pred)?;
        let mut inter = BTreeMap::new();
        let mut last = (0u32, 0u32);
        let mut run = 0u64;
        for (&t, &p) in gt.labels.iter().zip(&pred.labels) {
            if t == 0 || p == 0 {
                continue;
            }
            if (t, p) == last {
                run += 1;
            } else {
                if run > 0 {
                    *inter.entry(last).or_insert(0) += run;
                }
                last = (t, p);
                run = 1;
            }
        }
        if run > 0 {
            *inter.entry(last).or_insert(0) += run;
        }
        Ok(Self {
            gt_areas: gt.areas(),
            pred_areas: pred.areas(),
            inter,
        })
    }
}
