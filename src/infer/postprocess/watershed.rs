//! Step 4 of the pipeline: marker-controlled watershed on the negated distance map.

use super::grid::Grid;

/// Marker-controlled watershed of `-dist`, restricted to the foreground, 4-connectivity, no
/// watershed lines: every foreground pixel connected to a marker gets a marker's label.
/// Flooding uses a hierarchical (bucket) queue on `dist` quantised to 1/32 px, processed from
/// the highest level down, first-in-first-out within a level (deterministic, linear time).
pub(super) fn watershed(dist: &[f32], g: &Grid, mut labels: Vec<u32>) -> Vec<u32> {
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
