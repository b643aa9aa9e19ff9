//! Outline polygons of label-map regions: tracing, simplification and validity checks.
//!
//! # Coordinate convention
//!
//! All polygons use **pixel-corner coordinates**: pixel (column `x`, row `y`) covers the unit
//! square `[x, x+1] x [y, y+1]`, so its centre is at `(x + 0.5, y + 0.5)`. An outline traced
//! around a region therefore runs along pixel edges and its shoelace area equals the region's
//! pixel count (a 1-pixel object is the unit square, area 1).
//!
//! Points are `[x, y]` with `x` to the right and `y` downwards (image coordinates). Rings are
//! closed implicitly (the first point is not repeated at the end) and are oriented **clockwise
//! as displayed on screen** (y down), i.e. their shoelace sum `sum(x_i*y_{i+1} - x_{i+1}*y_i)/2`
//! is **positive** (this is counter-clockwise in a y-up mathematical frame).
//!
//! # What is traced
//!
//! Only the outer boundary of a region is traced. Holes are filled first (a background pixel
//! counts as outside only if it is 4-connected to the outside of the region's bounding box), so
//! the ring's area is the area of the region plus its holes. The region is taken as
//! 4-connected: the tracer follows the 4-connected component of the first pixel in raster order
//! (the post-processing produces 4-connected instances, so that is the whole instance). With holes
//! filled this way and a 4-connected region, the raw outline is always a simple polygon (it never
//! touches itself, not even at a vertex).
//!
//! # Simplification
//!
//! [`simplify_valid`] applies Douglas–Peucker (imageproc's `approximate_polygon_dp`) and checks
//! the result with [`is_simple_polygon`] (exact segment-intersection tests) and against an area
//! change of at most [`MAX_AREA_CHANGE`], reducing the tolerance (ultimately keeping the raw
//! outline) until both hold. Vertices stay on integer pixel corners.

use imageproc::geometry::approximate_polygon_dp;
use imageproc::point::Point;

/// Directions in clockwise screen order: east, south, west, north.
const DIRS: [(i32, i32); 4] = [(1, 0), (0, 1), (-1, 0), (0, -1)];

/// Traces the outer outline of the 4-connected component containing the first (raster order)
/// `true` pixel of `mask` (`width x height`, row-major), after filling that mask's holes.
///
/// Returns the corner vertices (only where the direction changes) in pixel-corner coordinates,
/// clockwise on screen, starting at the top-left corner of the first pixel. Empty if the mask is
/// empty.
pub fn trace_outline(mask: &[bool], width: usize, height: usize) -> Vec<[i32; 2]> {
    assert_eq!(mask.len(), width * height, "mask size mismatch");
    let first = match mask.iter().position(|&m| m) {
        Some(i) => i,
        None => return Vec::new(),
    };
    // Padded copy (1 px of outside all round) with holes filled.
    let pw = width + 2;
    let ph = height + 2;
    let filled = fill_holes_padded(pw, ph, |x, y| mask[y * width + x]);
    let inside = |x: i32, y: i32| -> bool {
        // (x, y) in padded pixel coordinates; the padding is outside.
        x >= 0
            && y >= 0
            && (x as usize) < pw
            && (y as usize) < ph
            && filled[y as usize * pw + x as usize]
    };
    let (sx, sy) = ((first % width) as i32 + 1, (first / width) as i32 + 1);
    let mut out: Vec<[i32; 2]> = Vec::new();
    let (mut vx, mut vy) = (sx, sy);
    let mut dir = 0usize; // heading east, inside on the right (below)
    out.push([sx - 1, sy - 1]);
    let limit = 4 * (pw * ph) + 8;
    for _ in 0..limit {
        // Step along the current heading.
        vx += DIRS[dir].0;
        vy += DIRS[dir].1;
        // Pixels ahead-right and ahead-left of vertex (vx, vy) for heading `dir`.
        let (dx, dy) = DIRS[dir];
        let (rx, ry) = (-dy, dx);
        let ar = inside(vx + (dx + rx - 1) / 2, vy + (dy + ry - 1) / 2);
        let al = inside(vx + (dx - rx - 1) / 2, vy + (dy - ry - 1) / 2);
        let new_dir = if ar {
            if al {
                (dir + 3) % 4 // turn left
            } else {
                dir // straight
            }
        } else {
            (dir + 1) % 4 // turn right (also at a saddle: inside is 4-connected)
        };
        if vx == sx && vy == sy && new_dir == 0 {
            return out;
        }
        if new_dir != dir {
            out.push([vx - 1, vy - 1]);
            dir = new_dir;
        }
    }
    unreachable!("outline tracing did not close");
}

/// Fills the holes of a mask given through `get(x, y)` on the unpadded grid, returning a padded
/// (`pw x ph`, one pixel of outside all round) boolean mask. Background pixels that are not
/// 4-connected to the padding become inside.
fn fill_holes_padded(pw: usize, ph: usize, get: impl Fn(usize, usize) -> bool) -> Vec<bool> {
    let mut fg = vec![false; pw * ph];
    for y in 1..ph - 1 {
        for x in 1..pw - 1 {
            fg[y * pw + x] = get(x - 1, y - 1);
        }
    }
    // Flood the outside from the padding ring (all outside, so that every pixel popped below
    // is an interior one whose 4 neighbours are valid indices).
    let mut outside = vec![false; pw * ph];
    let mut stack = Vec::new();
    for y in 0..ph {
        for x in 0..pw {
            if x == 0 || y == 0 || x == pw - 1 || y == ph - 1 {
                outside[y * pw + x] = true;
            }
        }
    }
    for y in 1..ph - 1 {
        for x in 1..pw - 1 {
            let i = y * pw + x;
            if (x == 1 || y == 1 || x == pw - 2 || y == ph - 2) && !fg[i] {
                outside[i] = true;
                stack.push(i);
            }
        }
    }
    while let Some(i) = stack.pop() {
        for j in [i - pw, i - 1, i + 1, i + pw] {
            if !fg[j] && !outside[j] {
                outside[j] = true;
                stack.push(j);
            }
        }
    }
    outside.iter().map(|&o| !o).collect()
}

/// Outline of the pixels with value `id` in `labels` (row-major, `width` wide) inside the bounding
/// box `bbox = [x0, y0, x1, y1)` (exclusive ends), as integer pixel-corner vertices (see
/// [`trace_outline`]) in image coordinates.
pub fn region_outline(labels: &[u32], width: usize, bbox: [u32; 4], id: u32) -> Vec<[i32; 2]> {
    let [x0, y0, x1, y1] = bbox.map(|v| v as usize);
    let bw = x1 - x0;
    let bh = y1 - y0;
    let mut mask = vec![false; bw * bh];
    for y in 0..bh {
        let row = &labels[(y0 + y) * width + x0..(y0 + y) * width + x1];
        for (x, &l) in row.iter().enumerate() {
            mask[y * bw + x] = l == id;
        }
    }
    let mut ring = trace_outline(&mask, bw, bh);
    for p in ring.iter_mut() {
        p[0] += x0 as i32;
        p[1] += y0 as i32;
    }
    ring
}

/// Douglas–Peucker simplification of a closed ring (implicitly closed, no repeated end point)
/// with tolerance `epsilon` (pixels). The ring is split at its first point and the point
/// farthest from it, and each half is simplified with imageproc's `approximate_polygon_dp`;
/// both split points are kept. Rings with fewer than 4 points, or `epsilon <= 0`, are returned
/// unchanged. The result is not guaranteed to be simple: see [`simplify_valid`].
pub fn simplify_ring(ring: &[[i32; 2]], epsilon: f64) -> Vec<[i32; 2]> {
    if ring.len() < 4 || epsilon <= 0.0 {
        return ring.to_vec();
    }
    let p0 = ring[0];
    let d2 = |p: &[i32; 2]| {
        let dx = (p[0] - p0[0]) as i64;
        let dy = (p[1] - p0[1]) as i64;
        dx * dx + dy * dy
    };
    let mut k = 1;
    for (i, p) in ring.iter().enumerate().skip(1) {
        if d2(p) > d2(&ring[k]) {
            k = i;
        }
    }
    if d2(&ring[k]) == 0 {
        return ring.to_vec();
    }
    let to_pt = |p: &[i32; 2]| Point::new(p[0], p[1]);
    let half1: Vec<Point<i32>> = ring[..=k].iter().map(to_pt).collect();
    let mut half2: Vec<Point<i32>> = ring[k..].iter().map(to_pt).collect();
    half2.push(to_pt(&ring[0]));
    let s1 = approximate_polygon_dp(&half1, epsilon, false);
    let s2 = approximate_polygon_dp(&half2, epsilon, false);
    let mut out: Vec<[i32; 2]> = Vec::with_capacity(s1.len() + s2.len());
    out.extend(s1[..s1.len() - 1].iter().map(|p| [p.x, p.y]));
    out.extend(s2[..s2.len() - 1].iter().map(|p| [p.x, p.y]));
    out
}

/// Largest relative change of the enclosed area accepted from simplification.
pub const MAX_AREA_CHANGE: f64 = 0.1;

/// Simplifies a raw outline with tolerance `epsilon`, guaranteeing a valid and faithful
/// result: if the simplified ring is not simple (see [`is_simple_polygon`]) or its area differs
/// from the raw ring's by more than [`MAX_AREA_CHANGE`] (small objects), the tolerance is halved
/// (down to 1/8 of a pixel), and as a last resort the raw ring is returned (raw outlines from
/// [`trace_outline`] are simple). Output is `f32` pixel-corner coordinates.
pub fn simplify_valid(ring: &[[i32; 2]], epsilon: f32) -> Vec<[f32; 2]> {
    let to_f = |r: &[[i32; 2]]| {
        r.iter()
            .map(|p| [p[0] as f32, p[1] as f32])
            .collect::<Vec<_>>()
    };
    let raw_area = area_i(ring).abs();
    let mut eps = epsilon as f64;
    while eps >= 0.125 {
        let s = simplify_ring(ring, eps);
        if (area_i(&s).abs() - raw_area).abs() <= MAX_AREA_CHANGE * raw_area
            && is_simple_polygon_i(&s)
        {
            return to_f(&s);
        }
        eps *= 0.5;
    }
    to_f(ring)
}

/// Full pipeline for one region: outline of `id` within `bbox`, simplified with `epsilon` and
/// validated (see [`simplify_valid`]).
pub fn region_polygon(
    labels: &[u32],
    width: usize,
    bbox: [u32; 4],
    id: u32,
    epsilon: f32,
) -> Vec<[f32; 2]> {
    let ring = region_outline(labels, width, bbox, id);
    simplify_valid(&ring, epsilon)
}

/// Convex hull of integer points (Andrew's monotone chain), without collinear points,
/// clockwise on screen (positive shoelace area, like the outlines). Fewer than 3 distinct
/// points are returned as they are (deduplicated).
pub fn convex_hull(mut pts: Vec<[i32; 2]>) -> Vec<[i32; 2]> {
    pts.sort_unstable();
    pts.dedup();
    if pts.len() < 3 {
        return pts;
    }
    let cross = |o: [i32; 2], a: [i32; 2], b: [i32; 2]| -> i64 {
        (a[0] - o[0]) as i64 * (b[1] - o[1]) as i64 - (a[1] - o[1]) as i64 * (b[0] - o[0]) as i64
    };
    let mut hull: Vec<[i32; 2]> = Vec::with_capacity(2 * pts.len());
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &[i32; 2]>> = if pass == 0 {
            Box::new(pts.iter())
        } else {
            Box::new(pts.iter().rev())
        };
        for &p in iter {
            while hull.len() >= start + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0
            {
                hull.pop();
            }
            hull.push(p);
        }
        hull.pop();
    }
    // Counter-clockwise in a y-up frame, i.e. positive shoelace sum: clockwise on screen.
    hull
}

/// Shoelace (signed) area of an integer ring (see [`signed_area`]).
pub fn area_i(ring: &[[i32; 2]]) -> f64 {
    let n = ring.len();
    let mut s = 0i64;
    for k in 0..n {
        let (p, q) = (ring[k], ring[(k + 1) % n]);
        s += p[0] as i64 * q[1] as i64 - q[0] as i64 * p[1] as i64;
    }
    s as f64 * 0.5
}

/// Shoelace (signed) area of an implicitly closed ring; positive for rings that are clockwise
/// on screen (y down), as produced here.
pub fn signed_area(ring: &[[f32; 2]]) -> f64 {
    if ring.len() < 3 {
        return 0.0;
    }
    let mut s = 0.0f64;
    for i in 0..ring.len() {
        let a = ring[i];
        let b = ring[(i + 1) % ring.len()];
        s += a[0] as f64 * b[1] as f64 - b[0] as f64 * a[1] as f64;
    }
    0.5 * s
}

fn orient(a: [f64; 2], b: [f64; 2], c: [f64; 2]) -> f64 {
    (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
}

fn on_segment(a: [f64; 2], b: [f64; 2], p: [f64; 2]) -> bool {
    p[0] >= a[0].min(b[0])
        && p[0] <= a[0].max(b[0])
        && p[1] >= a[1].min(b[1])
        && p[1] <= a[1].max(b[1])
}

/// Whether closed segments `a-b` and `c-d` share at least one point (proper crossings, touching
/// at an end point and collinear overlaps all count). Exact for integer-valued coordinates of
/// moderate size (as all coordinates here are).
pub fn segments_intersect(a: [f64; 2], b: [f64; 2], c: [f64; 2], d: [f64; 2]) -> bool {
    let o1 = orient(a, b, c);
    let o2 = orient(a, b, d);
    let o3 = orient(c, d, a);
    let o4 = orient(c, d, b);
    if ((o1 > 0.0 && o2 < 0.0) || (o1 < 0.0 && o2 > 0.0))
        && ((o3 > 0.0 && o4 < 0.0) || (o3 < 0.0 && o4 > 0.0))
    {
        return true;
    }
    (o1 == 0.0 && on_segment(a, b, c))
        || (o2 == 0.0 && on_segment(a, b, d))
        || (o3 == 0.0 && on_segment(c, d, a))
        || (o4 == 0.0 && on_segment(c, d, b))
}

/// Whether an implicitly closed ring is a valid simple polygon: at least 3 vertices, all
/// vertices distinct, non-zero area, non-adjacent edges share no point, and adjacent edges share
/// only their common vertex (no fold-back spikes). O(n^2) in the number of vertices.
pub fn is_simple_polygon(ring: &[[f32; 2]]) -> bool {
    let pts: Vec<[f64; 2]> = ring.iter().map(|p| [p[0] as f64, p[1] as f64]).collect();
    is_simple_f64(&pts)
}

fn is_simple_polygon_i(ring: &[[i32; 2]]) -> bool {
    let pts: Vec<[f64; 2]> = ring.iter().map(|p| [p[0] as f64, p[1] as f64]).collect();
    is_simple_f64(&pts)
}

fn is_simple_f64(p: &[[f64; 2]]) -> bool {
    let n = p.len();
    if n < 3 {
        return false;
    }
    // Distinct vertices.
    let mut sorted: Vec<[f64; 2]> = p.to_vec();
    sorted.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return false;
    }
    let mut area2 = 0.0;
    for i in 0..n {
        let a = p[i];
        let b = p[(i + 1) % n];
        area2 += a[0] * b[1] - b[0] * a[1];
    }
    if area2 == 0.0 {
        return false;
    }
    for i in 0..n {
        let a = p[i];
        let b = p[(i + 1) % n];
        // Adjacent edge (i+1): b -> c must not fold back over a -> b.
        let c = p[(i + 2) % n];
        if orient(a, b, c) == 0.0 {
            // Collinear: fold-back if c lies on the a side of b.
            let dot = (a[0] - b[0]) * (c[0] - b[0]) + (a[1] - b[1]) * (c[1] - b[1]);
            if dot > 0.0 {
                return false;
            }
        }
        // Non-adjacent edges j > i + 1 (and not the edge before i, which closes the ring).
        for j in (i + 2)..n {
            if i == 0 && j == n - 1 {
                continue;
            }
            let c = p[j];
            let d = p[(j + 1) % n];
            if segments_intersect(a, b, c, d) {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_from(rows: &[&str]) -> (Vec<bool>, usize, usize) {
        let h = rows.len();
        let w = rows[0].len();
        let m = rows
            .iter()
            .flat_map(|r| r.chars().map(|c| c == '#'))
            .collect();
        (m, w, h)
    }

    #[test]
    fn convex_hull_of_square_and_l() {
        let h = convex_hull(vec![[0, 0], [2, 0], [1, 1], [2, 2], [0, 2], [1, 0], [0, 2]]);
        assert_eq!(h.len(), 4);
        assert_eq!(area_i(&h), 4.0);
        let (m, w, hh) = mask_from(&["#..", "#..", "###"]);
        let r = trace_outline(&m, w, hh);
        let h = convex_hull(r.clone());
        assert_eq!(area_i(&h), 7.0); // L of area 5; hull = 3x3 square minus a triangle of 2
        assert!(h.iter().all(|p| r.contains(p)));
    }

    #[test]
    fn single_pixel_is_unit_square() {
        let (m, w, h) = mask_from(&["...", ".#.", "..."]);
        let r = trace_outline(&m, w, h);
        assert_eq!(r, vec![[1, 1], [2, 1], [2, 2], [1, 2]]);
        assert_eq!(area_i(&r), 1.0);
        let p = simplify_valid(&r, 1.0);
        assert!(is_simple_polygon(&p));
        assert_eq!(signed_area(&p), 1.0);
    }

    #[test]
    fn empty_mask_gives_empty_outline() {
        assert!(trace_outline(&[false; 6], 3, 2).is_empty());
    }

    #[test]
    fn outline_area_equals_pixels_and_holes_are_filled() {
        let (m, w, h) = mask_from(&[
            "#####.", //
            "#...#.", //
            "#.#.##", //
            "#...#.", //
            "#####.", //
        ]);
        let r = trace_outline(&m, w, h);
        // 5x5 block with a filled hole, plus the one pixel at (5, 2).
        assert_eq!(area_i(&r), 26.0);
        assert!(is_simple_polygon_i(&r));
    }

    #[test]
    fn touches_image_border() {
        let (m, w, h) = mask_from(&["##", "##"]);
        let r = trace_outline(&m, w, h);
        assert_eq!(r, vec![[0, 0], [2, 0], [2, 2], [0, 2]]);
    }

    #[test]
    fn diagonal_pinch_is_filled_and_simple() {
        // A ring closed only through a diagonal contact: the enclosed pixel is not 4-connected
        // to the outside, so it is filled and the outline does not touch itself.
        let (m, w, h) = mask_from(&[
            "###..", //
            "#.#..", //
            "##.#.", //
            "..###", //
            "..#.#", //
            "..###", //
        ]);
        let r = trace_outline(&m, w, h);
        assert!(is_simple_polygon_i(&r), "{r:?}");
    }

    #[test]
    fn thin_line_and_l_shape() {
        let (m, w, h) = mask_from(&["#######"]);
        let r = trace_outline(&m, w, h);
        assert_eq!(area_i(&r), 7.0);
        let p = simplify_valid(&r, 1.0);
        assert!(is_simple_polygon(&p) && p.len() >= 3);
        let (m, w, h) = mask_from(&["#....", "#....", "#....", "#####"]);
        let r = trace_outline(&m, w, h);
        assert_eq!(area_i(&r), 8.0);
        let p = simplify_valid(&r, 1.0);
        assert!(is_simple_polygon(&p));
    }

    #[test]
    fn segment_intersection_cases() {
        let s = |a: [f64; 2], b: [f64; 2], c: [f64; 2], d: [f64; 2]| segments_intersect(a, b, c, d);
        assert!(s([0., 0.], [2., 2.], [0., 2.], [2., 0.])); // cross
        assert!(!s([0., 0.], [1., 0.], [0., 1.], [1., 1.])); // parallel
        assert!(s([0., 0.], [2., 0.], [1., 0.], [1., 1.])); // T touch
        assert!(s([0., 0.], [2., 0.], [1., 0.], [3., 0.])); // collinear overlap
        assert!(!s([0., 0.], [1., 0.], [2., 0.], [3., 0.])); // collinear disjoint
        assert!(!is_simple_polygon(&[
            [0., 0.],
            [2., 2.],
            [2., 0.],
            [0., 2.]
        ])); // bow-tie
        assert!(is_simple_polygon(&[[0., 0.], [2., 0.], [2., 2.], [0., 2.]]));
        assert!(!is_simple_polygon(&[
            [0., 0.],
            [2., 0.],
            [1., 0.],
            [0., 2.]
        ])); // spike
        assert!(!is_simple_polygon(&[[0., 0.], [1., 1.], [2., 2.]])); // zero area
    }
}
