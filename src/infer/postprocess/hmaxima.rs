//! Step 3 of the pipeline: markers, the regional maxima of the h-maxima transform.

use super::grid::Grid;
use std::collections::VecDeque;

/// Morphological reconstruction by dilation of `f - h` under `f`, with 4-connectivity, inside
/// the foreground only (background pixels neither carry nor receive values). Vincent's hybrid
/// algorithm: a forward and a backward raster scan, then FIFO propagation.
pub(super) fn hmax_reconstruct(f: &[f32], g: &Grid, h: f32) -> Vec<f32> {
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
pub(super) fn regional_maxima(r: &[f32], g: &Grid) -> Vec<u32> {
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
