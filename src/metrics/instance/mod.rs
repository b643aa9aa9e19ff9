//! Instance-level metrics, with the conventions of PanNuke's evaluation
//! (`TissueImageAnalytics/PanNuke-metrics`) and HoVer-Net's (`vqdang/hover_net`
//! `compute_stats.py`, `metrics/stats_utils.py`):
//!
//! - **PQ = DQ x SQ**: a ground-truth and a predicted instance match when their IoU is > 0.5
//!   (such a match is necessarily unique); DQ = TP / (TP + FP/2 + FN/2),
//!   SQ = sum(IoU of matches) / (TP + 1e-6) (the 1e-6 is the reference's).
//! - **bPQ**: PQ with all classes merged, per tile; NaN when the tile has no ground-truth
//!   nucleus. Averaged per tissue, then over tissues ([`tissue_mean`]).
//! - **mPQ**: per tile and class, PQ between the instances of that class; NaN when the class is
//!   absent from the tile's ground truth (even if it is predicted: those false positives are not
//!   counted anywhere in mPQ). NaN-skipping mean over classes, then per tissue, then over tissues.
//! - **AJI**: each ground-truth instance is paired with the prediction of highest IoU (computed
//!   as inter / (union + 1e-6), first on ties, a prediction may be used several times); unpaired
//!   instances add their area to the union. Mean over tiles.
//! - **Dice**: 2|T n P| / (|T| + |P|) on the foreground. Mean over tiles.
//! - **Detection F1**: centroids paired by a minimum-total-distance assignment, pairs farther
//!   apart than 12 px dropped; counts pooled over all tiles; F1 = 2TP / (2TP + FP + FN).
//! - **Per-class detection F1** (type-aware, HoVer-Net): over pooled pairs,
//!   F1_c = 2 TP_c / (2 TP_c + 2 FP_c + 2 FN_c + FPd_c + FNd_c), where TP_c are matched pairs of
//!   class c on both sides, FP_c / FN_c matched pairs with class c on only the predicted / only
//!   the ground-truth side, FPd_c / FNd_c unmatched predictions / ground-truth instances of class c.
//!
//! Tiles where both sides are empty give NaN for PQ/DQ/SQ/AJI/Dice and are skipped by the
//! NaN-skipping means. (HoVer-Net's scripts would divide by zero or, for detection, insert a
//! dummy instance at (0, 0); here an empty tile simply contributes no pairs.)
//!
//! One module per concern: `map` (the label image, majority classes), `overlaps` (areas and
//! intersections of a map pair), `pq`, `aji` (AJI and Dice), `detection` (centroid pairing and
//! its counts), `tile` (everything measured on one tile) and `accumulator` (the scores over
//! tiles).

mod accumulator;
mod aji;
mod detection;
mod map;
mod overlaps;
mod pq;
mod tile;

pub use accumulator::{tissue_mean, InstanceAccumulator, InstanceScores, TissueScores};
pub use aji::{aji, dice};
pub use detection::{pair_points, DetectionCounts, PointPairing};
pub use map::{classes_from_class_map, InstanceMap};
pub use overlaps::Overlaps;
pub use pq::{pq, PqStats};
pub use tile::{evaluate_tile, TileResult};

use std::collections::HashMap;

/// Class of each instance id; ids absent from the map have class 0 (unclassified).
pub type InstanceClasses = HashMap<u32, u8>;

/// Centroid matching radius used by HoVer-Net's evaluation, in pixels.
pub const DETECTION_RADIUS: f64 = 12.0;
/// IoU threshold for PQ matching.
pub const MATCH_IOU: f64 = 0.5;

/// Builders of small maps for the tests of the submodules.
#[cfg(test)]
mod test_maps {
    use super::{InstanceClasses, InstanceMap};

    pub(super) fn map(w: usize, rows: &[&[u32]]) -> InstanceMap {
        let labels: Vec<u32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        InstanceMap::new(w, rows.len(), labels).unwrap()
    }

    pub(super) fn classes(pairs: &[(u32, u8)]) -> InstanceClasses {
        pairs.iter().copied().collect()
    }
}
