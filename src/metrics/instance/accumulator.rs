//! The scores over tiles: per-tissue averaging and the accumulator of tile results.

use super::{evaluate_tile, DetectionCounts, InstanceClasses, InstanceMap, TileResult};
use crate::metrics::{nanmean, MetricsError};
use std::collections::BTreeMap;

/// PanNuke's averaging: NaN-skipping mean per tissue, then NaN-skipping mean over tissues. When no
/// value has a tissue this is the NaN-skipping mean over values; otherwise values without a
/// tissue form one more group.
pub fn tissue_mean(values: &[(Option<u32>, f64)]) -> f64 {
    if values.iter().all(|(t, _)| t.is_none()) {
        return nanmean(values.iter().map(|v| v.1));
    }
    let mut groups: BTreeMap<Option<u32>, Vec<f64>> = BTreeMap::new();
    for &(t, v) in values {
        groups.entry(t).or_default().push(v);
    }
    nanmean(groups.values().map(|g| nanmean(g.iter().copied())))
}

/// Per-tissue averages.
#[derive(Debug, Clone, PartialEq)]
pub struct TissueScores {
    pub tissue: Option<u32>,
    pub tiles: usize,
    pub bpq: f64,
    pub mpq: f64,
}

/// Instance-level scores over all tiles.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceScores {
    pub bpq: f64,
    pub mpq: f64,
    pub aji: f64,
    pub dice: f64,
    pub f1_det: f64,
    pub acc_type: f64,
    /// Mean over tiles of the all-classes-merged PQ / DQ / SQ (HoVer-Net's `compute_stats`).
    pub pq: f64,
    pub dq: f64,
    pub sq: f64,
    /// Per class `1..num_classes` (index `c - 1`): NaN-skipping mean over tiles of the class PQ
    /// (PanNuke's per-class figure).
    pub class_pq: Vec<f64>,
    /// Per class `1..num_classes`: type-aware detection F1.
    pub class_f1_det: Vec<f64>,
    /// One entry per tissue (sorted, tiles without tissue first) when any tile has a tissue.
    pub per_tissue: Vec<TissueScores>,
    pub detection: DetectionCounts,
    pub tiles: usize,
}

/// Collects [`TileResult`]s and produces [`InstanceScores`].
#[derive(Debug, Clone)]
pub struct InstanceAccumulator {
    num_classes: usize,
    tiles: Vec<TileResult>,
}

impl InstanceAccumulator {
    pub fn new(num_classes: usize) -> Self {
        Self {
            num_classes,
            tiles: Vec::new(),
        }
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    pub fn len(&self) -> usize {
        self.tiles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tiles.is_empty()
    }

    pub fn tiles(&self) -> &[TileResult] {
        &self.tiles
    }

    pub fn push(&mut self, tile: TileResult) -> Result<(), MetricsError> {
        if tile.class_pq.len() + 1 != self.num_classes
            || tile.detection.num_classes() != self.num_classes
        {
            return Err(MetricsError::SizeMismatch {
                what: "tile result (classes)",
                expected: self.num_classes,
                found: tile.class_pq.len() + 1,
            });
        }
        self.tiles.push(tile);
        Ok(())
    }

    /// Measures one tile ([`evaluate_tile`]) and adds it.
    pub fn add(
        &mut self,
        gt: &InstanceMap,
        gt_classes: &InstanceClasses,
        pred: &InstanceMap,
        pred_classes: &InstanceClasses,
        tissue: Option<u32>,
    ) -> Result<&TileResult, MetricsError> {
        let r = evaluate_tile(gt, gt_classes, pred, pred_classes, self.num_classes, tissue)?;
        self.tiles.push(r);
        Ok(self.tiles.last().unwrap())
    }

    pub fn scores(&self) -> InstanceScores {
        let k = self.num_classes;
        let mut det = DetectionCounts::new(k);
        for t in &self.tiles {
            det.merge(&t.detection).expect("checked on push");
        }
        let with_tissue = |f: fn(&TileResult) -> f64| -> Vec<(Option<u32>, f64)> {
            self.tiles.iter().map(|t| (t.tissue, f(t))).collect()
        };
        let mean = |f: fn(&TileResult) -> f64| nanmean(self.tiles.iter().map(f));
        let mut per_tissue = Vec::new();
        if self.tiles.iter().any(|t| t.tissue.is_some()) {
            let mut groups: BTreeMap<Option<u32>, Vec<&TileResult>> = BTreeMap::new();
            for t in &self.tiles {
                groups.entry(t.tissue).or_default().push(t);
            }
            for (tissue, g) in groups {
                per_tissue.push(TissueScores {
                    tissue,
                    tiles: g.len(),
                    bpq: nanmean(g.iter().map(|t| t.bpq)),
                    mpq: nanmean(g.iter().map(|t| t.mpq)),
                });
            }
        }
        InstanceScores {
            bpq: tissue_mean(&with_tissue(|t| t.bpq)),
            mpq: tissue_mean(&with_tissue(|t| t.mpq)),
            aji: mean(|t| t.aji),
            dice: mean(|t| t.dice),
            f1_det: det.f1(),
            acc_type: det.type_accuracy(),
            pq: mean(|t| t.pq.pq),
            dq: mean(|t| t.pq.dq),
            sq: mean(|t| t.pq.sq),
            class_pq: (0..k.saturating_sub(1))
                .map(|i| nanmean(self.tiles.iter().map(|t| t.class_pq[i])))
                .collect(),
            class_f1_det: (1..k).map(|c| det.class_f1(c)).collect(),
            per_tissue,
            detection: det,
            tiles: self.tiles.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tissue_mean_averages_per_tissue_then_over_tissues() {
        let v = [
            (Some(1), 1.0),
            (Some(1), 0.0),
            (Some(2), 1.0),
            (Some(2), f64::NAN),
        ];
        assert_eq!(tissue_mean(&v), 0.75);
        assert_eq!(tissue_mean(&[(None, 1.0), (None, 0.0), (None, 0.5)]), 0.5);
        assert!(tissue_mean(&[]).is_nan());
    }
}
