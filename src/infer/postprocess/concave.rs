//! Step 5 of the pipeline: concave-point cuts of regions the distance map cannot separate.

use super::labels::components;
use super::PostprocessConfig;
use crate::infer::polygons;
use std::collections::VecDeque;

/// Splits regions at pairs of concave boundary points (notches where touching nuclei meet),
/// for what the distance map cannot separate (e.g. two nuclei pressed side by side). A region
/// with solidity (area / convex hull area) below `concave_solidity` is cut along the segment
/// joining two concave points (deepest point of two convexity defects at least
/// `concave_depth` deep) when the segment runs inside the region and is short: its length is at
/// most `concave_ratio` times the sum of the two depths. Among valid pairs the one with the
/// smallest ratio is cut, both parts must have at least `min_area` pixels and 10% of the area,
/// and the parts are processed again (up to 3 levels).
pub(super) fn split_concave(
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
        let (comp, sizes) = components(&work, bw, bh);
        if sizes.len() < 3 {
            continue;
        }
        let mut order: Vec<usize> = (1..sizes.len()).collect();
        order.sort_by(|&a, &b| sizes[b].cmp(&sizes[a]).then(a.cmp(&b)));
        let (ca, cb) = (order[0] as u32, order[1] as u32);
        let smaller = sizes[cb as usize] as u32;
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

#[cfg(test)]
mod tests {
    use super::super::tests::check_valid;
    use super::super::{instances_from_class_map, PostprocessConfig};

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
}
