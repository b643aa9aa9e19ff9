//! From a semantic segmentation to nucleus instances (METHOD.md section 6).
//!
//! Pipeline (shared by [`instances_from_probs`] and [`instances_from_class_map`]):
//!
//! 1. foreground = per-pixel argmax != 0 (class 0 is background);
//! 2. exact Euclidean distance transform of the foreground (distance of each foreground pixel
//!    to the nearest background pixel), Gaussian-smoothed ([`PostprocessConfig::sigma`]);
//! 3. markers = regional maxima of the h-maxima transform of that distance map
//!    (morphological reconstruction by dilation of `dist - h` under `dist`, computed inside the
//!    foreground only, so every foreground component gets at least one marker);
//! 4. marker-controlled watershed on the negated distance map, restricted to the foreground
//!    (bucket-queue flooding, 4-connectivity, first-in-first-out within a level: deterministic);
//! 5. concave-point cuts: a region whose outline has two deep notches joined by a short chord
//!    inside it is cut along that chord (nuclei pressed side by side, which leave no separate
//!    distance peaks); see [`PostprocessConfig::concave_depth`];
//! 6. objects below [`PostprocessConfig::min_area`] pixels are dropped (with
//!    [`PostprocessConfig::merge_small`], fragments touching a larger neighbour are merged into
//!    it instead);
//! 7. per instance: class = majority of its pixels' argmax (ties: lowest class id), score = mean
//!    probability of that class over its pixels, area, centroid, bounding box and an outline
//!    polygon (see [`super::polygons`]).
//!
//! Defaults were tuned on the CoNSeP ground-truth class maps (binary PQ against the
//! ground-truth instance maps; test split 0.858, train split 0.831; without step 5:
//! 0.833 / 0.806; plain connected components: 0.741 on test).
//!
//! One module per step: `distance` (2, with the blur of `blur`), `hmaxima` (3), `watershed`
//! (4), `concave` (5), `labels` (6); `grid` holds the padded pixel grid they share.
//!
//! All connectivity is 4-connectivity, so every instance is 4-connected. Instance ids are
//! `1..=n` in raster order of each instance's first pixel.
//!
//! Coordinates: `bbox` is in pixel indices `[x0, y0, x1, y1)` (exclusive ends); `centroid` and
//! `polygon` are in pixel-corner coordinates (pixel `(x, y)` covers `[x, x+1] x [y, y+1]`, so
//! the centroid of a single pixel is `(x + 0.5, y + 0.5)`). Polygons are clockwise on screen
//! (y down; positive shoelace area), implicitly closed, outer boundary only (holes filled).

mod blur;
mod concave;
mod distance;
mod geometry;

mod grid;
mod hmaxima;
mod labels;
mod watershed;

use super::polygons;
use concave::split_concave;
use distance::distance_map;
use grid::Grid;
use hmaxima::{hmax_reconstruct, regional_maxima};
use labels::finalize_labels;
use watershed::watershed;

pub use geometry::{geometry_labels, instances_from_outputs};

/// Parameters of the instance post-processing.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct PostprocessConfig {
    /// Objects with fewer pixels are dropped. Default 10.
    pub min_area: u32,
    /// Height `h` of the h-maxima transform on the (smoothed) distance map, in pixels: two
    /// distance peaks become separate markers only if the lower one rises at least `h` above
    /// the saddle between them. Default 1.5.
    pub h: f32,
    /// Douglas–Peucker tolerance of the polygon simplification, in pixels (0 = raw outline).
    /// Default 1.0.
    pub polygon_tolerance: f32,
    /// Standard deviation (pixels) of the Gaussian smoothing of the distance map before marker
    /// extraction and flooding; 0 disables it. Default 0.5.
    pub sigma: f32,
    /// Whether the outside of the image counts as background for the distance transform (a
    /// nucleus cut by the tile border then gets its distance peak inside the tile). Default false.
    pub border_is_background: bool,
    /// Merge a fragment smaller than `min_area` into the neighbouring region it shares the
    /// longest boundary with, instead of dropping it (isolated small objects are still
    /// dropped). Default true.
    pub merge_small: bool,
    /// Concave-point splitting: minimum depth (pixels) of a notch, measured from the convex
    /// hull; 0 disables the step. Default 2.5.
    pub concave_depth: f32,
    /// Concave-point splitting: a chord joining two notches is cut only if its length is at
    /// most `concave_ratio` times the sum of the two notch depths. Default 2.0.
    pub concave_ratio: f32,
    /// Concave-point splitting: only regions with solidity (area / convex hull area) below
    /// this are examined. Default 0.95.
    pub concave_solidity: f32,
    /// Treat boundaries between different foreground classes like background: instances never
    /// straddle two classes. Right for clean class maps (ground truth: bPQ 0.865 instead of
    /// 0.858 on CoNSeP test); off by default since noisy per-pixel classes inside a predicted
    /// nucleus would over-split it.
    pub split_classes: bool,
    /// Geometry path (models with the HV head): a pixel is foreground when
    /// `1 - p(background)` reaches this. Default 0.5.
    pub fg_threshold: f32,
    /// Geometry path: marker pixels lie within this of a nucleus centre on both HV maps
    /// (`max(|h|, |v|)`, maps in [-1, 1]). Default 0.5.
    pub hv_core: f32,
    /// Geometry path: marker pixels have a boundary energy (the maps' falling slope per
    /// pixel) below this. Default 0.3.
    pub hv_edge: f32,
    /// Geometry path: smallest marker, in pixels. Default 4.
    pub hv_marker_area: u32,
    /// Use the geometry path when the model predicts HV maps (default); `false` runs the
    /// class-map path (distance transform) on such models too, for comparing the two.
    pub use_geometry: bool,
}

impl Default for PostprocessConfig {
    fn default() -> Self {
        PostprocessConfig {
            min_area: 10,
            h: 1.5,
            polygon_tolerance: 1.0,
            sigma: 0.5,
            border_is_background: false,
            merge_small: true,
            concave_depth: 2.5,
            concave_ratio: 2.0,
            concave_solidity: 0.95,
            split_classes: false,
            fg_threshold: 0.5,
            hv_core: 0.5,
            hv_edge: 0.3,
            hv_marker_area: 4,
            use_geometry: true,
        }
    }
}

impl PostprocessConfig {
    /// Checks every field; the error ([`crate::ErrorKind::InvalidArgument`]) names the bad
    /// one.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |what: &str| Err(crate::Error::invalid(what));
        if !(self.h.is_finite() && self.h >= 0.0) {
            return bad(&format!("post.h must be finite and >= 0, got {}", self.h));
        }
        if !(self.polygon_tolerance.is_finite() && self.polygon_tolerance >= 0.0) {
            return bad(&format!(
                "post.polygon_tolerance must be finite and >= 0, got {}",
                self.polygon_tolerance
            ));
        }
        if !(self.sigma.is_finite() && (0.0..=16.0).contains(&self.sigma)) {
            return bad(&format!(
                "post.sigma must be in [0, 16], got {}",
                self.sigma
            ));
        }
        for (name, v) in [
            ("fg_threshold", self.fg_threshold),
            ("hv_core", self.hv_core),
            ("hv_edge", self.hv_edge),
        ] {
            if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                return bad(&format!("post.{name} must be in [0, 1], got {v}"));
            }
        }
        Ok(())
    }
}

/// One nucleus instance.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Instance {
    /// 1-based id, equal to its value in [`Instances::labels`].
    pub id: u32,
    /// Majority class (argmax) of its pixels, >= 1; ties go to the lowest class id.
    pub class: u32,
    /// Mean probability of `class` over its pixels (1.0 for class maps).
    pub score: f32,
    /// Number of pixels.
    pub area: u32,
    /// Mean pixel centre `[x, y]`, pixel-corner coordinates (pixel centres at `+0.5`).
    pub centroid: [f32; 2],
    /// `[x0, y0, x1, y1]`, exclusive ends, pixel indices.
    pub bbox: [u32; 4],
    /// Outer outline `[x, y]` in pixel-corner coordinates, implicitly closed, clockwise on
    /// screen (y down), simple (no self-intersection), at least 3 distinct points.
    pub polygon: Vec<[f32; 2]>,
}

/// The instances of one image.
#[derive(Clone, Debug)]
pub struct Instances {
    pub width: usize,
    pub height: usize,
    /// Row-major label map: 0 = background, `1..=n` = instance ids.
    pub labels: Vec<u32>,
    /// `instances[i].id == i + 1`.
    pub instances: Vec<Instance>,
}

/// Instances from per-class probabilities `probs` (`num_classes x height x width`,
/// channel-major; class 0 = background). Per-pixel class = argmax (ties: lowest class id).
pub fn instances_from_probs(
    probs: &[f32],
    num_classes: usize,
    width: usize,
    height: usize,
    cfg: &PostprocessConfig,
) -> Instances {
    let n = width * height;
    assert!(num_classes >= 1, "num_classes must be >= 1");
    assert_eq!(
        probs.len(),
        num_classes * n,
        "probs must be num_classes x height x width"
    );
    let mut arg = vec![0u32; n];
    let mut best = probs[..n].to_vec();
    for c in 1..num_classes {
        let pc = &probs[c * n..(c + 1) * n];
        for i in 0..n {
            if pc[i] > best[i] {
                best[i] = pc[i];
                arg[i] = c as u32;
            }
        }
    }
    instances_core(&arg, num_classes, width, height, Some(probs), cfg)
}

/// Instances from a class map (e.g. ground truth; 0 = background). Scores are 1.0.
pub fn instances_from_class_map(
    class_map: &[u8],
    width: usize,
    height: usize,
    cfg: &PostprocessConfig,
) -> Instances {
    assert_eq!(
        class_map.len(),
        width * height,
        "class map must be height x width"
    );
    let arg: Vec<u32> = class_map.iter().map(|&c| c as u32).collect();
    let num_classes = arg.iter().copied().max().unwrap_or(0) as usize + 1;
    instances_core(&arg, num_classes, width, height, None, cfg)
}

/// Shared implementation: `arg` = per-pixel class (< `num_classes`), `probs` optional
/// channel-major probabilities used for scores.
fn instances_core(
    arg: &[u32],
    num_classes: usize,
    width: usize,
    height: usize,
    probs: Option<&[f32]>,
    cfg: &PostprocessConfig,
) -> Instances {
    let n = width * height;
    let raw = split_foreground(arg, width, height, cfg);
    let labels = finalize_labels(&raw, width, height, cfg);
    let count = labels.iter().copied().max().unwrap_or(0) as usize;

    // Per-instance statistics in one pass.
    let mut area = vec![0u32; count + 1];
    let mut sx = vec![0f64; count + 1];
    let mut sy = vec![0f64; count + 1];
    let mut bbox = vec![[u32::MAX, u32::MAX, 0u32, 0u32]; count + 1];
    let mut class_counts = vec![0u32; (count + 1) * num_classes];
    for y in 0..height {
        for x in 0..width {
            let i = y * width + x;
            let l = labels[i] as usize;
            if l == 0 {
                continue;
            }
            area[l] += 1;
            sx[l] += x as f64;
            sy[l] += y as f64;
            let b = &mut bbox[l];
            b[0] = b[0].min(x as u32);
            b[1] = b[1].min(y as u32);
            b[2] = b[2].max(x as u32 + 1);
            b[3] = b[3].max(y as u32 + 1);
            class_counts[l * num_classes + arg[i] as usize] += 1;
        }
    }
    let class_of: Vec<u32> = (0..=count)
        .map(|l| {
            let cc = &class_counts[l * num_classes..(l + 1) * num_classes];
            let mut best = 0usize;
            for c in 1..num_classes {
                if cc[c] > cc[best] {
                    best = c;
                }
            }
            best as u32
        })
        .collect();
    let mut score = vec![1.0f32; count + 1];
    if let Some(p) = probs {
        let mut sum = vec![0f64; count + 1];
        for i in 0..n {
            let l = labels[i] as usize;
            if l != 0 {
                sum[l] += p[class_of[l] as usize * n + i] as f64;
            }
        }
        for l in 1..=count {
            score[l] = (sum[l] / area[l] as f64) as f32;
        }
    }
    let instances = (1..=count)
        .map(|l| Instance {
            id: l as u32,
            class: class_of[l],
            score: score[l],
            area: area[l],
            centroid: [
                (sx[l] / area[l] as f64 + 0.5) as f32,
                (sy[l] / area[l] as f64 + 0.5) as f32,
            ],
            bbox: bbox[l],
            polygon: polygons::region_polygon(
                &labels,
                width,
                bbox[l],
                l as u32,
                cfg.polygon_tolerance,
            ),
        })
        .collect();
    Instances {
        width,
        height,
        labels,
        instances,
    }
}

/// Splits the foreground (`cls != 0`) into regions: distance transform, h-maxima markers,
/// watershed, then concave-point cuts. Returns a label map (0 = background, other values
/// arbitrary region labels, each region 4-connected). No area filtering.
pub fn split_foreground(
    cls: &[u32],
    width: usize,
    height: usize,
    cfg: &PostprocessConfig,
) -> Vec<u32> {
    let n = width * height;
    assert_eq!(cls.len(), n);
    if !cls.iter().any(|&c| c != 0) {
        return vec![0; n];
    }
    let g = Grid::new(cls, width, height, cfg.split_classes);
    let dist = distance_map(&g, cfg);
    let rec = hmax_reconstruct(&dist, &g, cfg.h.max(0.0));
    let markers = regional_maxima(&rec, &g);
    let padded = watershed(&dist, &g, markers);
    let mut labels = vec![0u32; n];
    for y in 0..height {
        let row = (y + 1) * g.pw + 1;
        labels[y * width..(y + 1) * width].copy_from_slice(&padded[row..row + width]);
    }
    if cfg.concave_depth > 0.0 && cfg.concave_ratio > 0.0 {
        split_concave(labels, width, height, cfg)
    } else {
        labels
    }
}

#[cfg(test)]
mod tests;
