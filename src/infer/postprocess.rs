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
//! All connectivity is 4-connectivity, so every instance is 4-connected. Instance ids are
//! `1..=n` in raster order of each instance's first pixel.
//!
//! Coordinates: `bbox` is in pixel indices `[x0, y0, x1, y1)` (exclusive ends); `centroid` and
//! `polygon` are in pixel-corner coordinates (pixel `(x, y)` covers `[x, x+1] x [y, y+1]`, so
//! the centroid of a single pixel is `(x + 0.5, y + 0.5)`). Polygons are clockwise on screen
//! (y down; positive shoelace area), implicitly closed, outer boundary only (holes filled).

use super::polygons;
use std::collections::VecDeque;

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
        }
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

/// Splits regions at pairs of concave boundary points (notches where touching nuclei meet),
/// for what the distance map cannot separate (e.g. two nuclei pressed side by side). A region
/// with solidity (area / convex hull area) below `concave_solidity` is cut along the segment
/// joining two concave points (deepest point of two convexity defects at least
/// `concave_depth` deep) when the segment runs inside the region and is short: its length is at
/// most `concave_ratio` times the sum of the two depths. Among valid pairs the one with the
/// smallest ratio is cut, both parts must have at least `min_area` pixels and 10% of the area,
/// and the parts are processed again (up to 3 levels).
fn split_concave(
    mut labels: Vec<u32>,
    width: usize,
    height: usize,
    cfg: &PostprocessConfig,
) -> Vec<u32> {
    let mut next = labels.iter().copied().max().unwrap_or(0) + 1;
    let mut bbox = vec![[u32::MAX, u32::MAX, 0u32, 0u32]; next as usize];
    let mut area = vec![0u32; next as usize];
    for y in 0..height {
        for x in 0..width {
            let l = labels[y * width + x] as usize;
            if l != 0 {
                let b = &mut bbox[l];
                b[0] = b[0].min(x as u32);
                b[1] = b[1].min(y as u32);
                b[2] = b[2].max(x as u32 + 1);
                b[3] = b[3].max(y as u32 + 1);
                area[l] += 1;
            }
        }
    }
    let min_part = cfg.min_area.max(4);
    let mut stack: Vec<(u32, [u32; 4], u32)> = (1..next)
        .rev()
        .filter(|&l| area[l as usize] >= 2 * min_part)
        .map(|l| (l, bbox[l as usize], 0))
        .collect();
    while let Some((l, bb, level)) = stack.pop() {
        if level >= 3 {
            continue;
        }
        if let Some((ba, bb2)) = cut_region(&mut labels, width, bb, l, next, min_part, cfg) {
            stack.push((next, bb2, level + 1));
            stack.push((l, ba, level + 1));
            next += 1;
        }
    }
    labels
}

/// One concave-point cut of region `l` (inside `bb`); on success the second part gets label
/// `new` and the parts' bounding boxes are returned.
fn cut_region(
    labels: &mut [u32],
    width: usize,
    bb: [u32; 4],
    l: u32,
    new: u32,
    min_part: u32,
    cfg: &PostprocessConfig,
) -> Option<([u32; 4], [u32; 4])> {
    let [x0, y0, x1, y1] = bb.map(|v| v as usize);
    let (bw, bh) = (x1 - x0, y1 - y0);
    let mut mask = vec![false; bw * bh];
    let mut area = 0u32;
    // Corners of the leftmost and rightmost pixel of each row: their convex hull is the hull of
    // the region's pixel-corner outline.
    let mut extreme: Vec<[i32; 2]> = Vec::with_capacity(4 * bh);
    for y in 0..bh {
        let mut lo = usize::MAX;
        let mut hi = 0;
        for x in 0..bw {
            if labels[(y0 + y) * width + x0 + x] == l {
                mask[y * bw + x] = true;
                area += 1;
                lo = lo.min(x);
                hi = x;
            }
        }
        if lo != usize::MAX {
            let (yy, a, b) = (y as i32, lo as i32, hi as i32 + 1);
            extreme.extend([[a, yy], [b, yy], [a, yy + 1], [b, yy + 1]]);
        }
    }
    if area < 2 * min_part {
        return None;
    }
    let hull = polygons::convex_hull(extreme);
    let hull_area = polygons::area_i(&hull).abs();
    if hull_area <= 0.0 || area as f64 / hull_area >= cfg.concave_solidity as f64 {
        return None;
    }
    let ring = polygons::trace_outline(&mask, bw, bh);
    let n = ring.len();
    if n < 6 {
        return None;
    }
    // Ring indices that are hull vertices, in ring order.
    let is_hull: Vec<bool> = ring.iter().map(|p| hull.contains(p)).collect();
    let start = is_hull.iter().position(|&h| h)?;
    let mut concave: Vec<([f64; 2], f64)> = Vec::new();
    let mut a = start;
    loop {
        let mut b = (a + 1) % n;
        while !is_hull[b] {
            b = (b + 1) % n;
        }
        // Deepest vertex of the chain strictly between hull vertices a and b.
        let pa = [ring[a][0] as f64, ring[a][1] as f64];
        let pb = [ring[b][0] as f64, ring[b][1] as f64];
        let (dx, dy) = (pb[0] - pa[0], pb[1] - pa[1]);
        let len = (dx * dx + dy * dy).sqrt();
        if len > 0.0 {
            let mut best: Option<([f64; 2], f64)> = None;
            let mut k = (a + 1) % n;
            while k != b {
                let p = [ring[k][0] as f64, ring[k][1] as f64];
                let d = ((p[0] - pa[0]) * dy - (p[1] - pa[1]) * dx).abs() / len;
                if best.is_none_or(|(_, bd)| d > bd) {
                    best = Some((p, d));
                }
                k = (k + 1) % n;
            }
            if let Some((p, d)) = best {
                if d >= cfg.concave_depth as f64 {
                    concave.push((p, d));
                }
            }
        }
        a = b;
        if a == start {
            break;
        }
    }
    if concave.len() < 2 {
        return None;
    }
    let inside = |px: f64, py: f64| -> bool {
        let (x, y) = (px.floor(), py.floor());
        x >= 0.0
            && y >= 0.0
            && (x as usize) < bw
            && (y as usize) < bh
            && mask[y as usize * bw + x as usize]
    };
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for i in 0..concave.len() {
        for j in i + 1..concave.len() {
            let (p, dp) = concave[i];
            let (q, dq) = concave[j];
            let len = ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt();
            let ratio = len / (dp + dq);
            if ratio <= cfg.concave_ratio as f64 {
                pairs.push((ratio, i, j));
            }
        }
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    for &(_, i, j) in &pairs {
        let (p, q) = (concave[i].0, concave[j].0);
        let len = ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt();
        let steps = (len * 8.0).ceil().max(1.0) as usize;
        // The segment must run inside the region (samples a little away from its ends).
        let mut n_in = 0;
        let mut n_all = 0;
        let mut barrier = Vec::new();
        for k in 0..=steps {
            let t = k as f64 / steps as f64;
            let (sx, sy) = (p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1]));
            // Pixels touched by the sample point (points on pixel edges touch two or four).
            for (ex, ey) in [(-1e-6, -1e-6), (1e-6, -1e-6), (-1e-6, 1e-6), (1e-6, 1e-6)] {
                if inside(sx + ex, sy + ey) {
                    barrier.push(((sy + ey).floor() as usize) * bw + (sx + ex).floor() as usize);
                }
            }
            let m = 0.5 / len.max(1.0);
            if t > m && t < 1.0 - m {
                n_all += 1;
                if inside(sx, sy) {
                    n_in += 1;
                }
            }
        }
        if n_all > 0 && (n_in as f64) < 0.9 * n_all as f64 {
            continue;
        }
        let mut work = mask.clone();
        for &b in &barrier {
            work[b] = false;
        }
        // 4-connected components of the region minus the barrier.
        let mut comp = vec![0u32; bw * bh];
        let mut sizes = vec![0u32];
        for s0 in 0..bw * bh {
            if !work[s0] || comp[s0] != 0 {
                continue;
            }
            let c = sizes.len() as u32;
            sizes.push(0);
            let mut st = vec![s0];
            comp[s0] = c;
            while let Some(u) = st.pop() {
                sizes[c as usize] += 1;
                let (ux, uy) = (u % bw, u / bw);
                let mut visit = |v: usize| {
                    if work[v] && comp[v] == 0 {
                        comp[v] = c;
                        st.push(v);
                    }
                };
                if ux > 0 {
                    visit(u - 1);
                }
                if ux + 1 < bw {
                    visit(u + 1);
                }
                if uy > 0 {
                    visit(u - bw);
                }
                if uy + 1 < bh {
                    visit(u + bw);
                }
            }
        }
        if sizes.len() < 3 {
            continue;
        }
        let mut order: Vec<usize> = (1..sizes.len()).collect();
        order.sort_by(|&a, &b| sizes[b].cmp(&sizes[a]).then(a.cmp(&b)));
        let (ca, cb) = (order[0] as u32, order[1] as u32);
        let smaller = sizes[cb as usize];
        if smaller < min_part || (smaller as f64) < 0.1 * area as f64 {
            continue;
        }
        // Grow the two parts over the rest of the region (barrier, small pieces), FIFO.
        let mut part = vec![0u8; bw * bh];
        let mut queue = VecDeque::new();
        for u in 0..bw * bh {
            if comp[u] == ca {
                part[u] = 1;
                queue.push_back(u);
            } else if comp[u] == cb {
                part[u] = 2;
                queue.push_back(u);
            }
        }
        while let Some(u) = queue.pop_front() {
            let (ux, uy) = (u % bw, u / bw);
            let pu = part[u];
            let mut visit = |v: usize| {
                if mask[v] && part[v] == 0 {
                    part[v] = pu;
                    queue.push_back(v);
                }
            };
            if ux > 0 {
                visit(u - 1);
            }
            if ux + 1 < bw {
                visit(u + 1);
            }
            if uy > 0 {
                visit(u - bw);
            }
            if uy + 1 < bh {
                visit(u + bw);
            }
        }
        let mut bba = [u32::MAX, u32::MAX, 0, 0];
        let mut bbb = [u32::MAX, u32::MAX, 0, 0];
        for y in 0..bh {
            for x in 0..bw {
                let u = y * bw + x;
                let (gx, gy) = ((x0 + x) as u32, (y0 + y) as u32);
                let t = match part[u] {
                    1 => &mut bba,
                    2 => {
                        labels[(y0 + y) * width + x0 + x] = new;
                        &mut bbb
                    }
                    _ => continue,
                };
                t[0] = t[0].min(gx);
                t[1] = t[1].min(gy);
                t[2] = t[2].max(gx + 1);
                t[3] = t[3].max(gy + 1);
            }
        }
        return Some((bba, bbb));
    }
    None
}

/// The pixel grid, padded with one pixel of background all round (so that the 4 neighbours of
/// any foreground pixel are valid indices), with its classes (0 = background) and the
/// connectivity used throughout: 4-neighbours that are foreground and, with `by_class`, of the
/// same class. All per-pixel buffers of the splitting stage use this padded indexing.
struct Grid {
    cls: Vec<u32>,
    pw: usize,
    ph: usize,
    by_class: bool,
}

impl Grid {
    fn new(cls: &[u32], width: usize, height: usize, by_class: bool) -> Grid {
        let (pw, ph) = (width + 2, height + 2);
        let mut padded = vec![0u32; pw * ph];
        for y in 0..height {
            let row = (y + 1) * pw + 1;
            padded[row..row + width].copy_from_slice(&cls[y * width..(y + 1) * width]);
        }
        Grid {
            cls: padded,
            pw,
            ph,
            by_class,
        }
    }

    #[inline]
    fn len(&self) -> usize {
        self.pw * self.ph
    }

    #[inline]
    fn fg(&self, i: usize) -> bool {
        self.cls[i] != 0
    }

    /// Whether foreground pixel `p` is connected to its 4-neighbour `q`.
    #[inline]
    fn linked(&self, p: usize, q: usize) -> bool {
        let c = self.cls[q];
        c != 0 && (!self.by_class || c == self.cls[p])
    }

    /// The 4 neighbours of a non-padding pixel `i`.
    #[inline]
    fn nbrs(&self, i: usize) -> [usize; 4] {
        [i - self.pw, i - 1, i + 1, i + self.pw]
    }
}

/// Euclidean distance of each foreground pixel to the nearest background pixel (0 on the
/// background), optionally Gaussian-smoothed. Padded indexing.
fn distance_map(g: &Grid, cfg: &PostprocessConfig) -> Vec<f32> {
    let (pw, ph) = (g.pw, g.ph);
    // Pixels that get a positive distance: foreground, and with `split_classes` not 4-adjacent
    // to a different foreground class (those are seeds of the transform, like the background).
    let inner: Vec<bool> = (0..g.len())
        .map(|i| {
            if !g.fg(i) {
                return false;
            }
            !g.by_class || g.nbrs(i).iter().all(|&q| !g.fg(q) || g.cls[q] == g.cls[i])
        })
        .collect();
    let mut has_seed = false;
    for y in 1..ph - 1 {
        has_seed |= inner[y * pw + 1..(y + 1) * pw - 1].iter().any(|&v| !v);
    }
    let pad_is_seed = cfg.border_is_background || !has_seed;
    // Squared distance to the nearest seed.
    let mut seed: Vec<bool> = inner.iter().map(|&v| !v).collect();
    if !pad_is_seed {
        for y in 0..ph {
            for x in 0..pw {
                if x == 0 || y == 0 || x == pw - 1 || y == ph - 1 {
                    seed[y * pw + x] = false;
                }
            }
        }
    }
    let d2 = squared_edt(&seed, pw, ph);
    let mut dist: Vec<f32> = d2
        .iter()
        .zip(&inner)
        .map(|(&d, &inn)| if inn { d.sqrt() } else { 0.0 })
        .collect();
    if cfg.sigma > 0.0 {
        gaussian_blur(&mut dist, pw, ph, cfg.sigma);
        for (d, &c) in dist.iter_mut().zip(&g.cls) {
            if c == 0 {
                *d = 0.0;
            }
        }
    }
    dist
}

/// "Infinite" squared distance for the transform below (finite, so no NaN arises).
const EDT_INF: f32 = 1e20;

/// Exact squared Euclidean distance to the nearest `seed` pixel (`EDT_INF` where there is no
/// seed at all). Meijster-style: vertical distances by two row sweeps (contiguous, vectorisable),
/// then along each row Felzenszwalb & Huttenlocher's lower envelope of parabolas. (imageproc's
/// `euclidean_squared_distance_transform` computes the same in f64 through per-pixel
/// accessors; this version is several times faster.)
fn squared_edt(seed: &[bool], w: usize, h: usize) -> Vec<f32> {
    let inf = (w + h + 1) as u32;
    let mut g = vec![inf; w * h];
    for x in 0..w {
        if seed[x] {
            g[x] = 0;
        }
    }
    for y in 1..h {
        let (prev, cur) = g.split_at_mut(y * w);
        let prev = &prev[(y - 1) * w..];
        let cur = &mut cur[..w];
        let sd = &seed[y * w..(y + 1) * w];
        for x in 0..w {
            cur[x] = if sd[x] { 0 } else { (prev[x] + 1).min(inf) };
        }
    }
    for y in (0..h.saturating_sub(1)).rev() {
        let (cur, next) = g.split_at_mut((y + 1) * w);
        let cur = &mut cur[y * w..];
        let next = &next[..w];
        for x in 0..w {
            cur[x] = cur[x].min(next[x] + 1);
        }
    }
    let mut out = vec![0f32; w * h];
    let mut f = vec![0f32; w];
    let mut v = vec![0usize; w];
    let mut z = vec![0f32; w + 1];
    for y in 0..h {
        for x in 0..w {
            let gv = g[y * w + x];
            f[x] = if gv >= inf { EDT_INF } else { (gv * gv) as f32 };
        }
        edt_1d(&f, &mut out[y * w..(y + 1) * w], &mut v, &mut z);
    }
    out
}

fn edt_1d(f: &[f32], out: &mut [f32], v: &mut [usize], z: &mut [f32]) {
    let n = f.len();
    if n == 0 {
        return;
    }
    let mut k = 0usize;
    v[0] = 0;
    z[0] = f32::NEG_INFINITY;
    z[1] = f32::INFINITY;
    for q in 1..n {
        let fq = f[q] + (q * q) as f32;
        let mut s;
        loop {
            let p = v[k];
            s = (fq - (f[p] + (p * p) as f32)) / (2.0 * (q - p) as f32);
            if s <= z[k] && k > 0 {
                k -= 1;
            } else {
                break;
            }
        }
        if s <= z[k] {
            // k == 0 and the new parabola dominates everywhere.
            v[0] = q;
            z[0] = f32::NEG_INFINITY;
            z[1] = f32::INFINITY;
            continue;
        }
        k += 1;
        v[k] = q;
        z[k] = s;
        z[k + 1] = f32::INFINITY;
    }
    k = 0;
    for (q, o) in out.iter_mut().enumerate() {
        while z[k + 1] < q as f32 {
            k += 1;
        }
        let p = v[k];
        let dq = q as f32 - p as f32;
        *o = dq * dq + f[p];
    }
}

/// Separable Gaussian blur in place (kernel radius ceil(3 sigma), edges clamped).
fn gaussian_blur(img: &mut [f32], w: usize, h: usize, sigma: f32) {
    let r = (3.0 * sigma).ceil().max(1.0) as usize;
    let mut k: Vec<f32> = (0..=2 * r)
        .map(|i| {
            let d = i as f32 - r as f32;
            (-(d * d) / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let sum: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    // Horizontal pass on a clamped, padded copy of each row.
    let mut line = vec![0f32; w.max(h) + 2 * r];
    let mut tmp = vec![0f32; w * h];
    for y in 0..h {
        let row = &img[y * w..(y + 1) * w];
        line[r..r + w].copy_from_slice(row);
        for j in 0..r {
            line[j] = row[0];
            line[r + w + j] = row[w - 1];
        }
        let out = &mut tmp[y * w..(y + 1) * w];
        for (x, o) in out.iter_mut().enumerate() {
            *o = k
                .iter()
                .zip(&line[x..x + 2 * r + 1])
                .map(|(a, b)| a * b)
                .sum();
        }
    }
    // Vertical pass: accumulate whole rows (vectorises).
    for y in 0..h {
        let out = &mut img[y * w..(y + 1) * w];
        out.iter_mut().for_each(|v| *v = 0.0);
        for (j, &kv) in k.iter().enumerate() {
            let yy = (y as isize + j as isize - r as isize).clamp(0, h as isize - 1) as usize;
            let src = &tmp[yy * w..(yy + 1) * w];
            for (o, &sv) in out.iter_mut().zip(src) {
                *o += kv * sv;
            }
        }
    }
}

/// Morphological reconstruction by dilation of `f - h` under `f`, with 4-connectivity, inside
/// the foreground only (background pixels neither carry nor receive values). Vincent's hybrid
/// algorithm: a forward and a backward raster scan, then FIFO propagation.
fn hmax_reconstruct(f: &[f32], g: &Grid, h: f32) -> Vec<f32> {
    let n = g.len();
    let pw = g.pw;
    let mut r: Vec<f32> = f.iter().map(|&v| v - h).collect();
    // Forward scan: up and left neighbours.
    for i in 0..n {
        if !g.fg(i) {
            continue;
        }
        let mut m = r[i];
        if g.linked(i, i - pw) {
            m = m.max(r[i - pw]);
        }
        if g.linked(i, i - 1) {
            m = m.max(r[i - 1]);
        }
        r[i] = m.min(f[i]);
    }
    // Backward scan: down and right neighbours; queue pixels that can still propagate.
    let mut queue = VecDeque::new();
    for i in (0..n).rev() {
        if !g.fg(i) {
            continue;
        }
        let mut m = r[i];
        if g.linked(i, i + pw) {
            m = m.max(r[i + pw]);
        }
        if g.linked(i, i + 1) {
            m = m.max(r[i + 1]);
        }
        let ri = m.min(f[i]);
        r[i] = ri;
        let can = |q: usize| g.linked(i, q) && r[q] < ri && r[q] < f[q];
        if can(i + pw) || can(i + 1) {
            queue.push_back(i);
        }
    }
    while let Some(p) = queue.pop_front() {
        let rp = r[p];
        for q in g.nbrs(p) {
            if g.linked(p, q) && r[q] < rp && r[q] != f[q] {
                r[q] = rp.min(f[q]);
                queue.push_back(q);
            }
        }
    }
    r
}

/// Labels the regional maxima of `r` inside the foreground: 4-connected plateaus with no
/// strictly higher connected neighbour. Returns a marker map (0 = no marker, labels 1..).
fn regional_maxima(r: &[f32], g: &Grid) -> Vec<u32> {
    let n = g.len();
    let mut markers = vec![0u32; n];
    let mut visited = vec![false; n];
    let mut next = 1u32;
    let mut plateau = Vec::new();
    let mut stack = Vec::new();
    for s in 0..n {
        if !g.fg(s) || visited[s] {
            continue;
        }
        let v = r[s];
        plateau.clear();
        stack.push(s);
        visited[s] = true;
        let mut is_max = true;
        while let Some(p) = stack.pop() {
            plateau.push(p);
            for q in g.nbrs(p) {
                if !g.linked(p, q) {
                    continue;
                }
                let rq = r[q];
                if rq > v {
                    is_max = false;
                } else if rq == v && !visited[q] {
                    visited[q] = true;
                    stack.push(q);
                }
            }
        }
        if is_max {
            for &p in &plateau {
                markers[p] = next;
            }
            next += 1;
        }
    }
    markers
}

/// Marker-controlled watershed of `-dist`, restricted to the foreground, 4-connectivity, no
/// watershed lines: every foreground pixel connected to a marker gets a marker's label.
/// Flooding uses a hierarchical (bucket) queue on `dist` quantised to 1/32 px, processed from
/// the highest level down, first-in-first-out within a level (deterministic, linear time).
fn watershed(dist: &[f32], g: &Grid, mut labels: Vec<u32>) -> Vec<u32> {
    const STEPS_PER_PX: f32 = 32.0;
    let maxv = dist.iter().copied().fold(0f32, f32::max);
    let nb = ((maxv * STEPS_PER_PX) as usize + 1).min(1 << 22);
    let level = |v: f32| ((v.max(0.0) * STEPS_PER_PX) as usize).min(nb - 1);
    let mut buckets: Vec<Vec<u32>> = vec![Vec::new(); nb];
    for (i, &l) in labels.iter().enumerate() {
        if l != 0 {
            buckets[level(dist[i])].push(i as u32);
        }
    }
    for cur in (0..nb).rev() {
        let mut head = 0;
        while head < buckets[cur].len() {
            let p = buckets[cur][head] as usize;
            head += 1;
            let lp = labels[p];
            for q in g.nbrs(p) {
                if labels[q] == 0 && g.linked(p, q) {
                    labels[q] = lp;
                    let lq = level(dist[q]).min(cur);
                    buckets[lq].push(q as u32);
                }
            }
        }
        buckets[cur] = Vec::new();
    }
    labels
}

/// Area filtering (optionally merging small fragments into a touching neighbour) and
/// renumbering `1..=n` in raster order of the first pixel.
fn finalize_labels(raw: &[u32], width: usize, height: usize, cfg: &PostprocessConfig) -> Vec<u32> {
    let n = width * height;
    let nl = raw.iter().copied().max().unwrap_or(0) as usize;
    let mut area = vec![0u32; nl + 1];
    for &l in raw {
        area[l as usize] += 1;
    }
    // `target[l]`: what raw label l becomes (0 = dropped).
    let mut target: Vec<u32> = (0..=nl as u32).collect();
    target[0] = 0;
    if cfg.merge_small {
        // Merge small regions into the (non-small) neighbour with the longest shared boundary,
        // smallest regions first; neighbours are counted on the raw map.
        let mut small: Vec<u32> = (1..=nl as u32)
            .filter(|&l| area[l as usize] > 0 && area[l as usize] < cfg.min_area)
            .collect();
        small.sort_by_key(|&l| (area[l as usize], l));
        if !small.is_empty() {
            let is_small = {
                let mut v = vec![false; nl + 1];
                for &l in &small {
                    v[l as usize] = true;
                }
                v
            };
            // Shared boundary counts between small regions and their neighbours.
            let mut contacts: std::collections::HashMap<(u32, u32), u32> =
                std::collections::HashMap::new();
            for y in 0..height {
                for x in 0..width {
                    let i = y * width + x;
                    let a = raw[i];
                    if a == 0 {
                        continue;
                    }
                    let mut add = |b: u32| {
                        if b != 0 && b != a && (is_small[a as usize] || is_small[b as usize]) {
                            *contacts.entry((a, b)).or_insert(0) += 1;
                            *contacts.entry((b, a)).or_insert(0) += 1;
                        }
                    };
                    if x + 1 < width {
                        add(raw[i + 1]);
                    }
                    if y + 1 < height {
                        add(raw[i + width]);
                    }
                }
            }
            let mut sorted_contacts: Vec<((u32, u32), u32)> = contacts.into_iter().collect();
            sorted_contacts.sort_unstable();
            for &s in &small {
                // Best neighbour: longest contact, then lowest label, among neighbours that are
                // not small (after their own resolution).
                let mut best: Option<(u32, u32)> = None;
                let lo = sorted_contacts.partition_point(|&((a, _), _)| a < s);
                for &((a, b), c) in &sorted_contacts[lo..] {
                    if a != s {
                        break;
                    }
                    if is_small[b as usize] {
                        continue;
                    }
                    if best.is_none_or(|(bc, bl)| c > bc || (c == bc && b < bl)) {
                        best = Some((c, b));
                    }
                }
                if let Some((_, b)) = best {
                    target[s as usize] = b;
                    area[b as usize] += area[s as usize];
                    area[s as usize] = 0;
                }
            }
        }
    }
    for l in 1..=nl {
        if target[l] as usize == l && area[l] < cfg.min_area {
            target[l] = 0;
        }
    }
    // Renumber in raster order of first pixel (of the merged region).
    let mut new_id = vec![0u32; nl + 1];
    let mut next = 1u32;
    let mut out = vec![0u32; n];
    for i in 0..n {
        let t = target[raw[i] as usize] as usize;
        if t == 0 {
            continue;
        }
        if new_id[t] == 0 {
            new_id[t] = next;
            next += 1;
        }
        out[i] = new_id[t];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use polygons::{is_simple_polygon, signed_area};

    fn disc(map: &mut [u8], w: usize, cx: f32, cy: f32, r: f32, class: u8) {
        let h = map.len() / w;
        for y in 0..h {
            for x in 0..w {
                let dx = x as f32 - cx;
                let dy = y as f32 - cy;
                if dx * dx + dy * dy <= r * r {
                    map[y * w + x] = class;
                }
            }
        }
    }

    fn check_valid(inst: &Instances) {
        let w = inst.width;
        for (k, it) in inst.instances.iter().enumerate() {
            assert_eq!(it.id as usize, k + 1);
            assert!(it.area > 0);
            assert!(
                it.polygon.len() >= 3,
                "instance {} polygon {:?}",
                it.id,
                it.polygon
            );
            assert!(
                is_simple_polygon(&it.polygon),
                "instance {} polygon {:?}",
                it.id,
                it.polygon
            );
            assert!(signed_area(&it.polygon) > 0.0);
            let [x0, y0, x1, y1] = it.bbox;
            assert!(x0 < x1 && y0 < y1 && x1 as usize <= w && y1 as usize <= inst.height);
            for p in &it.polygon {
                assert!(
                    p[0] >= x0 as f32
                        && p[0] <= x1 as f32
                        && p[1] >= y0 as f32
                        && p[1] <= y1 as f32
                );
            }
            // Area, centroid, 4-connectivity of the instance.
            let mut px = Vec::new();
            for y in y0..y1 {
                for x in x0..x1 {
                    if inst.labels[y as usize * w + x as usize] == it.id {
                        px.push((x as usize, y as usize));
                    }
                }
            }
            assert_eq!(px.len() as u32, it.area);
            assert!(it.centroid[0] > x0 as f32 && it.centroid[0] < x1 as f32);
            assert!(it.centroid[1] > y0 as f32 && it.centroid[1] < y1 as f32);
            let mut seen = std::collections::HashSet::new();
            let mut stack = vec![px[0]];
            seen.insert(px[0]);
            while let Some((x, y)) = stack.pop() {
                for (nx, ny) in [
                    (x.wrapping_sub(1), y),
                    (x + 1, y),
                    (x, y.wrapping_sub(1)),
                    (x, y + 1),
                ] {
                    if nx < w
                        && ny < inst.height
                        && inst.labels[ny * w + nx] == it.id
                        && seen.insert((nx, ny))
                    {
                        stack.push((nx, ny));
                    }
                }
            }
            assert_eq!(
                seen.len(),
                px.len(),
                "instance {} is not 4-connected",
                it.id
            );
            // Raw outline area equals pixel area plus any holes.
            let raw = polygons::region_outline(&inst.labels, w, it.bbox, it.id);
            let raw_f: Vec<[f32; 2]> = raw.iter().map(|p| [p[0] as f32, p[1] as f32]).collect();
            assert!(polygons::is_simple_polygon(&raw_f));
            assert!(signed_area(&raw_f) >= it.area as f64);
        }
        // Ids in raster order of first pixel.
        let mut seen = 0u32;
        for &l in &inst.labels {
            if l > seen {
                assert_eq!(l, seen + 1);
                seen = l;
            }
        }
        assert_eq!(seen as usize, inst.instances.len());
    }

    #[test]
    fn edt_matches_brute_force() {
        let (w, h) = (37, 23);
        let mut state = 7u64;
        let seed: Vec<bool> = (0..w * h)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 60) == 0
            })
            .collect();
        let d = squared_edt(&seed, w, h);
        for y in 0..h {
            for x in 0..w {
                let mut best = f32::INFINITY;
                for sy in 0..h {
                    for sx in 0..w {
                        if seed[sy * w + sx] {
                            let (dx, dy) = (sx as f32 - x as f32, sy as f32 - y as f32);
                            best = best.min(dx * dx + dy * dy);
                        }
                    }
                }
                assert_eq!(d[y * w + x], best, "at ({x}, {y})");
            }
        }
        // No seed at all: "infinite" everywhere.
        assert!(squared_edt(&[false; 12], 4, 3)
            .iter()
            .all(|&v| v >= EDT_INF));
    }

    #[test]
    fn side_by_side_nuclei_are_cut_at_the_notches() {
        // Two flattened ellipses pressed together along their long sides: the distance map has
        // a single ridge, the concave-point step separates them.
        let (w, h) = (60, 60);
        let mut m = vec![0u8; w * h];
        for y in 0..h {
            for x in 0..w {
                let (fx, fy) = (x as f32 - 30.0, y as f32 - 30.0);
                let e1 = (fx / 12.0).powi(2) + ((fy + 5.0) / 5.5).powi(2) <= 1.0;
                let e2 = (fx / 12.0).powi(2) + ((fy - 5.0) / 5.5).powi(2) <= 1.0;
                if e1 || e2 {
                    m[y * w + x] = 1;
                }
            }
        }
        let cfg = PostprocessConfig::default();
        let r = instances_from_class_map(&m, w, h, &cfg);
        check_valid(&r);
        assert_eq!(r.instances.len(), 2);
        assert!(r.instances[0].centroid[1] < 29.0 && r.instances[1].centroid[1] > 31.0);
        let (a0, a1) = (r.instances[0].area as i32, r.instances[1].area as i32);
        assert!((a0 - a1).abs() <= a0 / 10, "{a0} vs {a1}");
        let no_cut = PostprocessConfig {
            concave_depth: 0.0,
            ..cfg
        };
        assert_eq!(
            instances_from_class_map(&m, w, h, &no_cut).instances.len(),
            1
        );
    }

    #[test]
    fn split_classes_option() {
        // A 10 x 20 block, left half class 1, right half class 2.
        let (w, h) = (30, 16);
        let mut m = vec![0u8; w * h];
        for y in 3..13 {
            for x in 5..25 {
                m[y * w + x] = if x < 15 { 1 } else { 2 };
            }
        }
        let cfg = PostprocessConfig::default();
        let r = instances_from_class_map(&m, w, h, &cfg);
        assert_eq!(r.instances.len(), 1);
        assert_eq!(r.instances[0].class, 1); // tie -> lowest class id
        let cfg = PostprocessConfig {
            split_classes: true,
            ..cfg
        };
        let r = instances_from_class_map(&m, w, h, &cfg);
        check_valid(&r);
        assert_eq!(r.instances.len(), 2);
        assert_eq!((r.instances[0].class, r.instances[0].area), (1, 100));
        assert_eq!((r.instances[1].class, r.instances[1].area), (2, 100));
    }

    #[test]
    fn all_background() {
        let cfg = PostprocessConfig::default();
        let r = instances_from_class_map(&vec![0u8; 64 * 48], 64, 48, &cfg);
        assert!(r.instances.is_empty());
        assert!(r.labels.iter().all(|&l| l == 0));
        let probs = vec![0.25f32; 4 * 10 * 10];
        let r = instances_from_probs(&probs, 4, 10, 10, &cfg); // ties -> background
        assert!(r.instances.is_empty());
    }

    #[test]
    fn all_foreground_is_one_instance() {
        let cfg = PostprocessConfig::default();
        let r = instances_from_class_map(&vec![2u8; 20 * 20], 20, 20, &cfg);
        assert_eq!(r.instances.len(), 1);
        assert_eq!(r.instances[0].area, 400);
        assert_eq!(r.instances[0].polygon.len(), 4);
        check_valid(&r);
    }

    #[test]
    fn single_disc_stays_one() {
        let (w, h) = (64, 64);
        let mut m = vec![0u8; w * h];
        disc(&mut m, w, 30.0, 31.0, 12.0, 1);
        let r = instances_from_class_map(&m, w, h, &PostprocessConfig::default());
        assert_eq!(r.instances.len(), 1);
        let it = &r.instances[0];
        let px = m.iter().filter(|&&c| c != 0).count() as u32;
        assert_eq!(it.area, px);
        assert!((it.centroid[0] - 30.5).abs() < 0.01 && (it.centroid[1] - 31.5).abs() < 0.01);
        let a = signed_area(&it.polygon);
        assert!(
            (a - px as f64).abs() / (px as f64) < 0.05,
            "polygon area {a} vs {px}"
        );
        check_valid(&r);
    }

    #[test]
    fn overlapping_discs_split_in_two() {
        let (w, h) = (80, 60);
        let mut m = vec![0u8; w * h];
        disc(&mut m, w, 25.0, 30.0, 12.0, 1);
        disc(&mut m, w, 45.0, 30.0, 12.0, 2);
        let r = instances_from_class_map(&m, w, h, &PostprocessConfig::default());
        assert_eq!(r.instances.len(), 2);
        // The split line lies near x = 35; each part takes its class.
        assert_eq!(r.instances[0].class, 1);
        assert_eq!(r.instances[1].class, 2);
        assert!(r.instances[0].centroid[0] < 33.0 && r.instances[1].centroid[0] > 37.0);
        let total: u32 = r.instances.iter().map(|i| i.area).sum();
        assert_eq!(total as usize, m.iter().filter(|&&c| c != 0).count());
        check_valid(&r);
        // Slightly different radii too.
        let mut m = vec![0u8; w * h];
        disc(&mut m, w, 24.0, 30.0, 10.0, 1);
        disc(&mut m, w, 44.0, 28.0, 13.0, 1);
        let r = instances_from_class_map(&m, w, h, &PostprocessConfig::default());
        assert_eq!(r.instances.len(), 2);
        check_valid(&r);
    }

    #[test]
    fn min_area_drop_and_one_pixel_objects() {
        let (w, h) = (20, 20);
        let mut m = vec![0u8; w * h];
        m[2 * w + 3] = 1; // 1 pixel
        disc(&mut m, w, 12.0, 12.0, 3.0, 1); // 29 px
        let r = instances_from_class_map(&m, w, h, &PostprocessConfig::default());
        assert_eq!(r.instances.len(), 1);
        assert_eq!(r.labels[2 * w + 3], 0);
        let cfg = PostprocessConfig {
            min_area: 1,
            ..Default::default()
        };
        let r = instances_from_class_map(&m, w, h, &cfg);
        assert_eq!(r.instances.len(), 2);
        let one = &r.instances[0];
        assert_eq!((one.area, one.bbox), (1, [3, 2, 4, 3]));
        assert_eq!(one.centroid, [3.5, 2.5]);
        assert_eq!(signed_area(&one.polygon), 1.0);
        check_valid(&r);
    }

    #[test]
    fn class_majority_and_score() {
        // 3 classes + background; a 4x4 block with 9 px class 2, 7 px class 1.
        let (w, h) = (8, 8);
        let n = w * h;
        let nc = 3;
        let mut probs = vec![0f32; nc * n];
        probs[..n].fill(1.0);
        for y in 2..6 {
            for x in 2..6 {
                let i = y * w + x;
                probs[i] = 0.0;
                let k = (y - 2) * 4 + (x - 2);
                if k < 9 {
                    probs[2 * n + i] = 0.8;
                    probs[n + i] = 0.2;
                } else {
                    probs[n + i] = 0.6;
                    probs[2 * n + i] = 0.4;
                }
            }
        }
        let r = instances_from_probs(&probs, nc, w, h, &PostprocessConfig::default());
        assert_eq!(r.instances.len(), 1);
        let it = &r.instances[0];
        assert_eq!(it.class, 2);
        let expect = (9.0 * 0.8 + 7.0 * 0.4) / 16.0;
        assert!((it.score - expect).abs() < 1e-5);
        assert_eq!(it.bbox, [2, 2, 6, 6]);
        // Tie -> lowest class id.
        let mut m = vec![0u8; n];
        for (k, y) in (2..6).enumerate() {
            for x in 2..6 {
                m[y * w + x] = if k < 2 { 3 } else { 2 };
            }
        }
        let r = instances_from_class_map(&m, w, h, &PostprocessConfig::default());
        assert_eq!(r.instances.len(), 1);
        assert_eq!(r.instances[0].class, 2);
        assert_eq!(r.instances[0].score, 1.0);
    }

    #[test]
    fn border_objects_and_thin_shapes() {
        let (w, h) = (40, 30);
        let mut m = vec![0u8; w * h];
        disc(&mut m, w, 0.0, 0.0, 8.0, 1); // corner quarter disc
        disc(&mut m, w, 39.0, 15.0, 6.0, 2); // right border half disc
        for x in 5..30 {
            m[25 * w + x] = 1; // 1-px thick line
        }
        for y in 10..29 {
            m[y * w + 15] = 3; // 1-px thick vertical line, touching the horizontal one
        }
        // Ring with a hole.
        for y in 8..16 {
            for x in 22..30 {
                if !(10..14).contains(&y) || !(24..28).contains(&x) {
                    m[y * w + x] = 1;
                }
            }
        }
        let r = instances_from_class_map(&m, w, h, &PostprocessConfig::default());
        check_valid(&r);
        assert!(r.instances.len() >= 4, "{}", r.instances.len());
        assert_eq!(r.instances[0].bbox[0], 0);
        assert_eq!(r.instances[0].bbox[1], 0);
        assert!(r.instances.iter().any(|i| i.bbox[2] as usize == w));
    }

    #[test]
    fn random_blobs_give_valid_polygons_and_are_deterministic() {
        // Many random overlapping discs and speckle: polygons must be simple.
        let (w, h) = (128, 96);
        let mut state = 12345u64;
        let mut rnd = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f32) / (1u64 << 31) as f32
        };
        let mut total = 0;
        for _round in 0..6 {
            let mut m = vec![0u8; w * h];
            for _ in 0..40 {
                let (cx, cy, r) = (rnd() * w as f32, rnd() * h as f32, 1.0 + rnd() * 9.0);
                let c = 1 + (rnd() * 4.0) as u8;
                disc(&mut m, w, cx, cy, r, c);
            }
            for _ in 0..800 {
                let i = (rnd() * (w * h) as f32) as usize % (w * h);
                m[i] = if rnd() < 0.5 {
                    0
                } else {
                    1 + (rnd() * 4.0) as u8
                };
            }
            for min_area in [1, 10] {
                let cfg = PostprocessConfig {
                    min_area,
                    ..Default::default()
                };
                let r = instances_from_class_map(&m, w, h, &cfg);
                check_valid(&r);
                total += r.instances.len();
                let r2 = instances_from_class_map(&m, w, h, &cfg);
                assert_eq!(r.labels, r2.labels);
            }
        }
        assert!(total > 100);
    }

    fn fixture_dir() -> std::path::PathBuf {
        let root = std::env::var("CSRANET_ROOT")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
        std::path::Path::new(&root).join("tests/fixtures/tiles")
    }

    #[test]
    fn fixture_tiles_instance_count() {
        let dir = fixture_dir();
        for k in 1..=3 {
            let t = image::open(dir.join(format!("patch{k}_type.png")))
                .expect("type png")
                .to_luma8();
            let gt = image::open(dir.join(format!("patch{k}_inst.png")))
                .expect("inst png")
                .to_luma16();
            let (w, h) = (t.width() as usize, t.height() as usize);
            let mut ids: Vec<u16> = gt.as_raw().iter().copied().filter(|&v| v != 0).collect();
            ids.sort_unstable();
            ids.dedup();
            let cfg = PostprocessConfig::default();
            let r = instances_from_class_map(t.as_raw(), w, h, &cfg);
            check_valid(&r);
            let (got, want) = (r.instances.len() as f64, ids.len() as f64);
            assert!(
                (got - want).abs() <= (0.2 * want).max(3.0),
                "patch{k}: {got} instances vs {want} in GT"
            );
        }
    }
}
