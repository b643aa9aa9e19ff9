//! Instances from the class probabilities and the predicted instance geometry (HoVer-Net's
//! horizontal and vertical maps), docs/METHOD.md §7.
//!
//! Unlike HoVer-Net's post-processing, nothing is normalised over the tile (HoVer-Net
//! min-max normalises the maps and their Sobel derivatives per tile), so the instances of a
//! pixel do not depend on which tile it was seen in:
//!
//! 1. foreground: `1 - p(background) >= fg_threshold`;
//! 2. boundary energy `e = max(0, -d(h)/dx, -d(v)/dy)` from 3x3 Sobel derivatives scaled to
//!    a unit ramp: inside a nucleus the maps rise (positive derivative), across the border of
//!    two touching nuclei they fall from +1 to -1;
//! 3. markers: connected foreground pixels near a centre (`max(|h|, |v|) < hv_core`) and off
//!    the borders (`e < hv_edge`), at least `hv_marker_area` pixels; a foreground component
//!    without a marker becomes one instance;
//! 4. marker-controlled watershed of the priority `1 - max(|h|, |v|) - e` within the
//!    foreground, then the usual area filter;
//! 5. each instance's class is the majority of its pixels' class probabilities (background
//!    excluded), its score the mean probability of that class.

use super::grid::Grid;
use super::labels::{components, finalize_labels};
use super::watershed::watershed;
use super::{Instances, PostprocessConfig};
use crate::infer::tiling::describe;

/// Sobel derivative along x (`dx = true`) or y of a `w x h` map, edges clamped, scaled so a
/// ramp of slope 1 gives 1.
fn sobel(m: &[f32], w: usize, h: usize, dx: bool) -> Vec<f32> {
    let at = |x: isize, y: isize| -> f32 {
        let x = x.clamp(0, w as isize - 1) as usize;
        let y = y.clamp(0, h as isize - 1) as usize;
        m[y * w + x]
    };
    let mut out = vec![0f32; w * h];
    for y in 0..h as isize {
        for x in 0..w as isize {
            let v = if dx {
                (at(x + 1, y - 1) - at(x - 1, y - 1))
                    + 2.0 * (at(x + 1, y) - at(x - 1, y))
                    + (at(x + 1, y + 1) - at(x - 1, y + 1))
            } else {
                (at(x - 1, y + 1) - at(x - 1, y - 1))
                    + 2.0 * (at(x, y + 1) - at(x, y - 1))
                    + (at(x + 1, y + 1) - at(x + 1, y - 1))
            };
            out[y as usize * w + x as usize] = v / 8.0;
        }
    }
    out
}

/// Raw instance labels (0 = background, arbitrary ids) from `probs` (`C x h x w`) and `hv`
/// (`2 x h x w`).
pub fn geometry_labels(
    probs: &[f32],
    hv: &[f32],
    w: usize,
    h: usize,
    cfg: &PostprocessConfig,
) -> Vec<u32> {
    let n = w * h;
    let fg: Vec<bool> = probs[..n]
        .iter()
        .map(|&b| 1.0 - b >= cfg.fg_threshold)
        .collect();
    let (hm, vm) = (&hv[..n], &hv[n..2 * n]);
    let dh = sobel(hm, w, h, true);
    let dv = sobel(vm, w, h, false);
    let mut energy = vec![0f32; n];
    let mut priority = vec![0f32; n];
    let mut core = vec![false; n];
    for i in 0..n {
        let e = (-dh[i]).max(-dv[i]).max(0.0);
        let r = hm[i].abs().max(vm[i].abs());
        energy[i] = e;
        priority[i] = (1.0 - r - e).max(0.0);
        core[i] = fg[i] && r < cfg.hv_core && e < cfg.hv_edge;
    }
    let (mut markers, sizes) = components(&core, w, h);
    for m in markers.iter_mut() {
        if *m != 0 && sizes[*m as usize] < cfg.hv_marker_area as usize {
            *m = 0;
        }
    }
    // Foreground components that hold no marker become instances of their own.
    let (fg_comp, fg_sizes) = components(&fg, w, h);
    let mut has_marker = vec![false; fg_sizes.len()];
    for i in 0..n {
        if markers[i] != 0 {
            has_marker[fg_comp[i] as usize] = true;
        }
    }
    let offset = sizes.len() as u32;
    for i in 0..n {
        let c = fg_comp[i];
        if c != 0 && !has_marker[c as usize] {
            markers[i] = offset + c;
        }
    }
    // Flood on the padded grid the watershed works on; levels of 1/32 of the priority's
    // scale (the priority is in [0, 1]: scaled to 8 "pixels" of the distance scale).
    let pw = w + 2;
    let cls: Vec<u32> = fg.iter().map(|&f| u32::from(f)).collect();
    let grid = Grid::new(&cls, w, h, false);
    let mut pri = vec![0f32; pw * (h + 2)];
    let mut lab = vec![0u32; pw * (h + 2)];
    for y in 0..h {
        for x in 0..w {
            let (i, p) = (y * w + x, (y + 1) * pw + x + 1);
            pri[p] = priority[i] * 8.0;
            lab[p] = markers[i];
        }
    }
    let flooded = watershed(&pri, &grid, lab);
    let mut out = vec![0u32; w * h];
    for y in 0..h {
        for x in 0..w {
            out[y * w + x] = flooded[(y + 1) * pw + x + 1];
        }
    }
    out
}

/// Instances of one tile from its outputs: the geometry path when `hv` is given, else the
/// class-map path ([`instances_from_probs`](super::instances_from_probs)).
pub fn instances_from_outputs(
    probs: &[f32],
    hv: Option<&[f32]>,
    num_classes: usize,
    width: usize,
    height: usize,
    cfg: &PostprocessConfig,
) -> Instances {
    let Some(hv) = hv.filter(|_| cfg.use_geometry) else {
        return super::instances_from_probs(probs, num_classes, width, height, cfg);
    };
    let raw = geometry_labels(probs, hv, width, height, cfg);
    let mut labels = finalize_labels(&raw, width, height, cfg);
    let count = labels.iter().copied().max().unwrap_or(0) as usize;
    let mut pixels: Vec<Vec<usize>> = vec![Vec::new(); count];
    for (i, &l) in labels.iter().enumerate() {
        if l > 0 {
            pixels[l as usize - 1].push(i);
        }
    }
    let n = width * height;
    let mut instances = Vec::with_capacity(count);
    let mut renumber = vec![0u32; count + 1];
    for (k, pix) in pixels.iter().enumerate() {
        if let Some(mut inst) = describe(pix, width, probs, n, num_classes, cfg.polygon_tolerance) {
            inst.id = instances.len() as u32 + 1;
            renumber[k + 1] = inst.id;
            instances.push(inst);
        }
    }
    for l in labels.iter_mut() {
        *l = renumber[*l as usize];
    }
    Instances {
        width,
        height,
        labels,
        instances,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Synthetic outputs for two touching discs: probabilities (2 classes: background,
    /// nucleus) and ideal HV maps.
    fn two_discs(w: usize, h: usize) -> (Vec<f32>, Vec<f32>, Vec<u32>) {
        let n = w * h;
        let mut inst = vec![0u32; n];
        for (id, cx) in [(1u32, 12.0f32), (2, 23.0)] {
            for y in 0..h {
                for x in 0..w {
                    let d = ((x as f32 - cx).powi(2) + (y as f32 - 10.0).powi(2)).sqrt();
                    if d < 6.0 && inst[y * w + x] == 0 {
                        inst[y * w + x] = id;
                    }
                }
            }
        }
        let hv = crate::train::geometry::hv_targets(&inst, w, h, 1);
        let mut probs = vec![0f32; 2 * n];
        for i in 0..n {
            let fg = if inst[i] > 0 { 0.95 } else { 0.05 };
            probs[i] = 1.0 - fg;
            probs[n + i] = fg;
        }
        (probs, hv, inst)
    }

    #[test]
    fn touching_nuclei_come_out_separate() {
        let (w, h) = (36, 21);
        let (probs, hv, truth) = two_discs(w, h);
        let cfg = PostprocessConfig::default();
        let r = instances_from_outputs(&probs, Some(&hv), 2, w, h, &cfg);
        assert_eq!(r.instances.len(), 2, "two nuclei expected");
        // Each found nucleus matches one true nucleus with IoU > 0.8.
        for inst in &r.instances {
            let mine: Vec<usize> = (0..w * h).filter(|&i| r.labels[i] == inst.id).collect();
            let best = [1u32, 2]
                .iter()
                .map(|&t| {
                    let inter = mine.iter().filter(|&&i| truth[i] == t).count();
                    let union = mine.len() + truth.iter().filter(|&&v| v == t).count() - inter;
                    inter as f64 / union as f64
                })
                .fold(0f64, f64::max);
            assert!(best > 0.8, "IoU {best}");
            assert_eq!(inst.class, 1);
            assert!(inst.score > 0.9);
        }
        // Without the geometry the class map alone merges... or not; the geometry path must
        // not depend on the distance transform: a flat HV map gives one blob.
        let flat = vec![0f32; 2 * w * h];
        let r = instances_from_outputs(&probs, Some(&flat), 2, w, h, &cfg);
        assert_eq!(r.instances.len(), 1);
    }

    #[test]
    fn sobel_of_a_unit_ramp_is_one() {
        let (w, h) = (7, 5);
        let m: Vec<f32> = (0..w * h).map(|i| (i % w) as f32).collect();
        let d = sobel(&m, w, h, true);
        assert!((d[2 * w + 3] - 1.0).abs() < 1e-6);
        let d = sobel(&m, w, h, false);
        assert!(d[2 * w + 3].abs() < 1e-6);
    }
}
