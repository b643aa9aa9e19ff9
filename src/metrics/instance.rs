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

use super::{nanmean, ratio, MetricsError};
use std::collections::{BTreeMap, HashMap};

/// Class of each instance id; ids absent from the map have class 0 (unclassified).
pub type InstanceClasses = HashMap<u32, u8>;

/// Centroid matching radius used by HoVer-Net's evaluation, in pixels.
pub const DETECTION_RADIUS: f64 = 12.0;
/// IoU threshold for PQ matching.
pub const MATCH_IOU: f64 = 0.5;

/// A label image: 0 is background, any other value is an instance id (ids need not be contiguous).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceMap {
    pub width: usize,
    pub height: usize,
    /// Row-major, `width * height` values.
    pub labels: Vec<u32>,
}

impl InstanceMap {
    pub fn new(width: usize, height: usize, labels: Vec<u32>) -> Result<Self, MetricsError> {
        if labels.len() != width * height {
            return Err(MetricsError::SizeMismatch {
                what: "instance map",
                expected: width * height,
                found: labels.len(),
            });
        }
        Ok(Self {
            width,
            height,
            labels,
        })
    }

    /// All background.
    pub fn empty(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            labels: vec![0; width * height],
        }
    }

    /// Sorted distinct non-zero ids.
    pub fn ids(&self) -> Vec<u32> {
        self.areas().into_keys().collect()
    }

    /// Number of instances.
    pub fn count(&self) -> usize {
        self.areas().len()
    }

    /// Pixel count of each instance.
    pub fn areas(&self) -> BTreeMap<u32, u64> {
        let mut out = BTreeMap::new();
        let mut last = 0u32;
        let mut run = 0u64;
        for &l in &self.labels {
            if l == last {
                run += 1;
                continue;
            }
            if last != 0 {
                *out.entry(last).or_insert(0) += run;
            }
            last = l;
            run = 1;
        }
        if last != 0 && run > 0 {
            *out.entry(last).or_insert(0) += run;
        }
        out
    }

    /// `(id, [x, y])` for each instance in ascending id order; the centroid is the mean pixel
    /// coordinate (x = column, y = row).
    pub fn centroids(&self) -> Vec<(u32, [f64; 2])> {
        let mut acc: BTreeMap<u32, (u64, u64, u64)> = BTreeMap::new();
        for y in 0..self.height {
            for x in 0..self.width {
                let l = self.labels[y * self.width + x];
                if l != 0 {
                    let e = acc.entry(l).or_insert((0, 0, 0));
                    e.0 += x as u64;
                    e.1 += y as u64;
                    e.2 += 1;
                }
            }
        }
        acc.into_iter()
            .map(|(id, (sx, sy, n))| (id, [sx as f64 / n as f64, sy as f64 / n as f64]))
            .collect()
    }

    /// A copy keeping only the instances for which `keep(id)` is true.
    pub fn retain(&self, keep: impl Fn(u32) -> bool) -> InstanceMap {
        let labels = self
            .labels
            .iter()
            .map(|&l| if l != 0 && keep(l) { l } else { 0 })
            .collect();
        InstanceMap {
            width: self.width,
            height: self.height,
            labels,
        }
    }

    /// Paints each instance with its class (instances missing from `classes` get 0).
    pub fn class_map(&self, classes: &InstanceClasses) -> Vec<u8> {
        self.labels
            .iter()
            .map(|l| {
                if *l == 0 {
                    0
                } else {
                    classes.get(l).copied().unwrap_or(0)
                }
            })
            .collect()
    }

    fn check_same_size(&self, other: &InstanceMap) -> Result<(), MetricsError> {
        if self.width != other.width
            || self.height != other.height
            || self.labels.len() != other.labels.len()
        {
            return Err(MetricsError::ShapeMismatch {
                what: "instance maps",
                expected: (self.width, self.height),
                found: (other.width, other.height),
            });
        }
        Ok(())
    }
}

/// Class of each instance by majority vote over `class_map` (HoVer-Net's rule): the most frequent
/// class other than background (0) and [`super::pixel::IGNORE`], the smallest class id on ties;
/// 0 when the instance covers only background / ignored pixels.
pub fn classes_from_class_map(
    inst: &InstanceMap,
    class_map: &[u8],
) -> Result<InstanceClasses, MetricsError> {
    if class_map.len() != inst.labels.len() {
        return Err(MetricsError::SizeMismatch {
            what: "class map",
            expected: inst.labels.len(),
            found: class_map.len(),
        });
    }
    let mut votes: BTreeMap<u32, [u32; 256]> = BTreeMap::new();
    for (&l, &c) in inst.labels.iter().zip(class_map) {
        if l != 0 {
            votes.entry(l).or_insert([0; 256])[c as usize] += 1;
        }
    }
    Ok(votes
        .into_iter()
        .map(|(id, v)| {
            let mut best = 0u8;
            let mut best_n = 0u32;
            for (c, &n) in v.iter().enumerate().take(255).skip(1) {
                if n > best_n {
                    best = c as u8;
                    best_n = n;
                }
            }
            (id, best)
        })
        .collect())
}

fn class_of(
    classes: &InstanceClasses,
    id: u32,
    num_classes: usize,
    side: &'static str,
) -> Result<u8, MetricsError> {
    let c = classes.get(&id).copied().unwrap_or(0);
    if c as usize >= num_classes {
        return Err(MetricsError::ClassOutOfRange {
            what: side,
            class: c,
            num_classes,
        });
    }
    Ok(c)
}

/// Areas and pairwise intersections of a ground-truth / predicted instance map pair.
#[derive(Debug, Clone)]
pub struct Overlaps {
    pub gt_areas: BTreeMap<u32, u64>,
    pub pred_areas: BTreeMap<u32, u64>,
    /// `(gt id, pred id) -> intersecting pixels`, only for overlapping pairs.
    pub inter: BTreeMap<(u32, u32), u64>,
}

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

/// PQ (DQ, SQ) of a pair of instance maps, all classes merged.
pub fn pq(gt: &InstanceMap, pred: &InstanceMap) -> Result<PqStats, MetricsError> {
    Ok(Overlaps::new(gt, pred)?.pq())
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
    let pairs: Vec<(usize, usize)> = super::hungarian::assign(&cost, n, m)
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

    fn map(w: usize, rows: &[&[u32]]) -> InstanceMap {
        let labels: Vec<u32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        InstanceMap::new(w, rows.len(), labels).unwrap()
    }

    fn classes(pairs: &[(u32, u8)]) -> InstanceClasses {
        pairs.iter().copied().collect()
    }

    #[test]
    fn instance_map_basics() {
        let m = map(4, &[&[0, 7, 7, 0], &[3, 3, 7, 0], &[3, 0, 0, 9]]);
        assert_eq!(m.ids(), vec![3, 7, 9]);
        assert_eq!(m.count(), 3);
        assert_eq!(m.areas()[&7], 3);
        let c = m.centroids();
        assert_eq!(c[0], (3, [1.0 / 3.0, 4.0 / 3.0]));
        assert_eq!(c[1], (7, [5.0 / 3.0, 1.0 / 3.0]));
        assert_eq!(m.retain(|id| id != 7).ids(), vec![3, 9]);
        assert_eq!(
            m.class_map(&classes(&[(3, 2), (9, 1)]))[..5],
            [0, 0, 0, 0, 2]
        );
        assert!(InstanceMap::new(3, 3, vec![0; 8]).is_err());
        assert_eq!(InstanceMap::empty(2, 2).count(), 0);
    }

    #[test]
    fn majority_classes() {
        let m = map(5, &[&[1, 1, 1, 1, 2], &[2, 2, 3, 3, 0]]);
        let cm = [0, 2, 2, 3, 1, 1, 0, 255, 255, 4];
        let c = classes_from_class_map(&m, &cm).unwrap();
        assert_eq!(c[&1], 2); // 0,2,2,3 -> 2 (background never wins)
        assert_eq!(c[&2], 1); // 1,1,0 -> 1
        assert_eq!(c[&3], 0); // only ignored pixels
        assert!(!c.contains_key(&0));
        let tie = map(2, &[&[5, 5]]);
        assert_eq!(classes_from_class_map(&tie, &[3, 1]).unwrap()[&5], 1);
        assert!(classes_from_class_map(&tie, &[1]).is_err());
    }

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

    #[test]
    fn mpq_absent_class_and_tissue_mean() {
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
        let v = [
            (Some(1), 1.0),
            (Some(1), 0.0),
            (Some(2), 1.0),
            (Some(2), f64::NAN),
        ];
        assert_eq!(tissue_mean(&v), 0.75);
        assert_eq!(tissue_mean(&[(None, 1.0), (None, 0.0), (None, 0.5)]), 0.5);
        assert!(tissue_mean(&[]).is_nan());
        // class out of range
        assert!(evaluate_tile(&gt, &classes(&[(1, 3)]), &pr, &classes(&[]), 3, None).is_err());
    }
}
