//! Segmenting a tile, and a large image by overlapping tiles.

use super::image::{regions_tensor, ImageView, Normalize};
use super::postprocess::{instances_from_probs, Instance, PostprocessConfig};
use crate::model::CsraNet;
use crate::{Error, Result};
use candle_core::Tensor;
use rayon::prelude::*;

/// Largest side `segment_tile` accepts; larger images go through `segment_image`.
pub const MAX_TILE_SIDE: usize = 2048;

/// Options of a segmentation.
#[derive(Clone, Debug)]
pub struct SegmentOptions {
    /// Input normalisation (ImageNet by default).
    pub normalize: Normalize,
    /// Instance post-processing.
    pub post: PostprocessConfig,
    /// Tile side for `segment_image` (rounded up to the model's size multiple).
    pub tile_size: usize,
    /// Overlap between neighbouring tiles; must exceed twice the largest nucleus
    /// diameter for seamless merging.
    pub overlap: usize,
    /// Tiles per forward pass (bounds memory).
    pub batch_size: usize,
    /// Keep the per-class probability maps in the result (`C x H x W` floats).
    pub keep_probabilities: bool,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        Self {
            normalize: Normalize::default(),
            post: PostprocessConfig::default(),
            tile_size: 512,
            overlap: 64,
            batch_size: 2,
            keep_probabilities: true,
        }
    }
}

impl SegmentOptions {
    /// Checks every field; the error ([`ErrorKind::InvalidArgument`]) names the bad one.
    pub fn validate(&self) -> Result<()> {
        self.normalize.validate()?;
        if self.tile_size < 64 || self.tile_size > MAX_TILE_SIDE {
            return Err(Error::invalid(format!(
                "tile_size must be in [64, {MAX_TILE_SIDE}], got {}",
                self.tile_size
            )));
        }
        if self.overlap * 2 >= self.tile_size {
            return Err(Error::invalid(format!(
                "overlap ({}) must be less than half the tile size ({})",
                self.overlap, self.tile_size
            )));
        }
        if self.batch_size == 0 || self.batch_size > 64 {
            return Err(Error::invalid(format!(
                "batch_size must be in [1, 64], got {}",
                self.batch_size
            )));
        }
        let p = &self.post;
        if !(p.h.is_finite() && p.h >= 0.0) {
            return Err(Error::invalid(format!(
                "post.h must be finite and >= 0, got {}",
                p.h
            )));
        }
        if !(p.polygon_tolerance.is_finite() && p.polygon_tolerance >= 0.0) {
            return Err(Error::invalid(format!(
                "post.polygon_tolerance must be finite and >= 0, got {}",
                p.polygon_tolerance
            )));
        }
        if !(p.sigma.is_finite() && (0.0..=16.0).contains(&p.sigma)) {
            return Err(Error::invalid(format!(
                "post.sigma must be in [0, 16], got {}",
                p.sigma
            )));
        }
        Ok(())
    }
}

/// The result of a segmentation.
#[derive(Clone, Debug)]
pub struct Segmentation {
    pub width: usize,
    pub height: usize,
    pub num_classes: usize,
    /// Argmax class per pixel, row-major.
    pub class_map: Vec<u8>,
    /// `num_classes x height x width` probabilities when asked for.
    pub probabilities: Option<Vec<f32>>,
    /// Instance label map: 0 = background, ids `1..=n`.
    pub labels: Vec<u32>,
    /// `instances[i].id == i + 1`, coordinates in the full image.
    pub instances: Vec<Instance>,
}

fn round_up(v: usize, m: usize) -> usize {
    v.div_ceil(m) * m
}

/// Softmax probabilities of regions, each cropped back from the padded size:
/// `Vec` of `C x h x w` per region.
fn predict(
    model: &CsraNet,
    view: &ImageView,
    regions: &[(usize, usize, usize, usize)],
    padded: (usize, usize),
    norm: &Normalize,
) -> Result<Vec<Vec<f32>>> {
    let x = regions_tensor(view, regions, padded, norm, model.device())?;
    let logits = model.forward_t(&x, false)?;
    let probs = candle_nn::ops::softmax(&logits, 1)?;
    let mut out = Vec::with_capacity(regions.len());
    for (i, &(_, _, w, h)) in regions.iter().enumerate() {
        let p: Tensor = probs.get(i)?.narrow(1, 0, h)?.narrow(2, 0, w)?;
        let v = p.flatten_all()?.to_vec1::<f32>()?;
        if v.iter().any(|x| !x.is_finite()) {
            return Err(Error::non_finite(
                "the model produced non-finite probabilities (are the weights corrupted?)",
            ));
        }
        out.push(v);
    }
    Ok(out)
}

fn argmax_map(probs: &[f32], c: usize, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| {
            let mut best = 0;
            for k in 1..c {
                if probs[k * n + i] > probs[best * n + i] {
                    best = k;
                }
            }
            best as u8
        })
        .collect()
}

/// Segments a whole image as one tile (up to `MAX_TILE_SIDE` per side), padded internally
/// to the model's size multiple and cropped back.
pub fn segment_tile(
    model: &CsraNet,
    view: &ImageView,
    opts: &SegmentOptions,
) -> Result<Segmentation> {
    opts.validate()?;
    let (w, h) = (view.width(), view.height());
    if w > MAX_TILE_SIDE || h > MAX_TILE_SIDE {
        return Err(Error::invalid(format!(
            "a tile is at most {MAX_TILE_SIDE}x{MAX_TILE_SIDE} (got {w}x{h}); use segment_image"
        )));
    }
    let m = model.config().size_multiple();
    let c = model.config().num_classes;
    let probs = predict(
        model,
        view,
        &[(0, 0, w, h)],
        (round_up(w, m), round_up(h, m)),
        &opts.normalize,
    )?
    .pop()
    .expect("one region");
    let inst = instances_from_probs(&probs, c, w, h, &opts.post);
    Ok(Segmentation {
        width: w,
        height: h,
        num_classes: c,
        class_map: argmax_map(&probs, c, w * h),
        probabilities: opts.keep_probabilities.then_some(probs),
        labels: inst.labels,
        instances: inst.instances,
    })
}

/// Tile starts along one axis and the core interval `[lo, hi)` each tile owns.
fn axis_tiles(len: usize, t: usize, overlap: usize) -> Vec<(usize, usize, usize, usize)> {
    if len <= t {
        return vec![(0, len, 0, len)];
    }
    let step = t - overlap;
    let mut starts = vec![];
    let mut s = 0;
    while s + t < len {
        starts.push(s);
        s += step;
    }
    starts.push(len - t);
    starts.dedup();
    let n = starts.len();
    (0..n)
        .map(|i| {
            let (s, e) = (starts[i], starts[i] + t);
            let lo = if i == 0 {
                0
            } else {
                (starts[i - 1] + t + s) / 2
            };
            let hi = if i + 1 == n {
                len
            } else {
                (e + starts[i + 1]) / 2
            };
            (s, e, lo, hi)
        })
        .collect()
}

/// Segments a large image by overlapping tiles, `opts.batch_size` tiles per forward pass.
///
/// Seams: each tile owns a core (the midpoints of its overlaps); a tile contributes the
/// class map and probabilities of its core, and the instances whose centroid lies in its
/// core and that do not touch one of its inner edges (such objects are cut; the
/// neighbouring tile holds them whole). An instance overlapping an already placed one by
/// more than half its area is a duplicate and is dropped; otherwise it takes the free
/// pixels. `progress(done, total)` is called after every batch; returning `false`
/// cancels, and the function returns `Ok(None)` having freed everything.
pub fn segment_image(
    model: &CsraNet,
    view: &ImageView,
    opts: &SegmentOptions,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Option<Segmentation>> {
    opts.validate()?;
    let (w, h) = (view.width(), view.height());
    let m = model.config().size_multiple();
    let c = model.config().num_classes;
    let t = round_up(opts.tile_size, m);
    let xs = axis_tiles(w, t, opts.overlap);
    let ys = axis_tiles(h, t, opts.overlap);
    let mut tiles = Vec::with_capacity(xs.len() * ys.len());
    for y in &ys {
        for x in &xs {
            tiles.push((*x, *y));
        }
    }
    let total = tiles.len();
    let n = w * h;
    let mut class_map = vec![0u8; n];
    let mut labels = vec![0u32; n];
    let mut probabilities = if opts.keep_probabilities {
        Some(vec![0f32; c * n])
    } else {
        None
    };
    let mut instances: Vec<Instance> = Vec::new();
    for (bi, batch) in tiles.chunks(opts.batch_size).enumerate() {
        let regions: Vec<_> = batch
            .iter()
            .map(|((x0, x1, ..), (y0, y1, ..))| (*x0, *y0, x1 - x0, y1 - y0))
            .collect();
        let tw = regions.iter().map(|r| r.2).max().unwrap_or(0);
        let th = regions.iter().map(|r| r.3).max().unwrap_or(0);
        let probs = predict(
            model,
            view,
            &regions,
            (round_up(tw, m), round_up(th, m)),
            &opts.normalize,
        )?;
        // Instances of every tile of the batch, in parallel (the merge below is sequential
        // and in tile order, so the result does not depend on the thread count).
        let locals: Vec<_> = probs
            .par_iter()
            .zip(&regions)
            .map(|(p, r)| instances_from_probs(p, c, r.2, r.3, &opts.post))
            .collect();
        for ((((xt, yt), r), p), local) in batch.iter().zip(&regions).zip(probs).zip(locals) {
            let (x0, y0, rw, rh) = *r;
            let (_, _, cx0, cx1) = *xt;
            let (_, _, cy0, cy1) = *yt;
            let rn = rw * rh;
            // Semantic maps from the core.
            let cls = argmax_map(&p, c, rn);
            for gy in cy0..cy1 {
                let ly = gy - y0;
                for gx in cx0..cx1 {
                    let lx = gx - x0;
                    class_map[gy * w + gx] = cls[ly * rw + lx];
                    if let Some(pr) = probabilities.as_mut() {
                        for k in 0..c {
                            pr[k * n + gy * w + gx] = p[k * rn + ly * rw + lx];
                        }
                    }
                }
            }
            // Instances owned by this tile.
            let inner_left = x0 > 0;
            let inner_top = y0 > 0;
            let inner_right = x0 + rw < w;
            let inner_bottom = y0 + rh < h;
            let mut pixels: Vec<Vec<usize>> = vec![Vec::new(); local.instances.len()];
            for (i, &l) in local.labels.iter().enumerate() {
                if l > 0 {
                    pixels[l as usize - 1].push(i);
                }
            }
            for (inst, pix) in local.instances.into_iter().zip(pixels) {
                let [bx0, by0, bx1, by1] = inst.bbox;
                let touches = (inner_left && bx0 == 0)
                    || (inner_top && by0 == 0)
                    || (inner_right && bx1 as usize == rw)
                    || (inner_bottom && by1 as usize == rh);
                let gcx = inst.centroid[0] + x0 as f32;
                let gcy = inst.centroid[1] + y0 as f32;
                let owned =
                    gcx >= cx0 as f32 && gcx < cx1 as f32 && gcy >= cy0 as f32 && gcy < cy1 as f32;
                if touches || !owned {
                    continue;
                }
                let global: Vec<usize> = pix
                    .iter()
                    .map(|&i| (y0 + i / rw) * w + x0 + i % rw)
                    .collect();
                let taken = global.iter().filter(|&&g| labels[g] != 0).count();
                if taken * 2 > global.len() {
                    continue;
                }
                let id = instances.len() as u32 + 1;
                let mut area = 0;
                for &g in &global {
                    if labels[g] == 0 {
                        labels[g] = id;
                        area += 1;
                    }
                }
                let dx = x0 as f32;
                let dy = y0 as f32;
                instances.push(Instance {
                    id,
                    area,
                    centroid: [gcx, gcy],
                    bbox: [
                        bx0 + x0 as u32,
                        by0 + y0 as u32,
                        bx1 + x0 as u32,
                        by1 + y0 as u32,
                    ],
                    polygon: inst
                        .polygon
                        .iter()
                        .map(|[px, py]| [px + dx, py + dy])
                        .collect(),
                    ..inst
                });
            }
        }
        let done = ((bi + 1) * opts.batch_size).min(total);
        if !progress(done, total) {
            return Ok(None);
        }
    }
    Ok(Some(Segmentation {
        width: w,
        height: h,
        num_classes: c,
        class_map,
        probabilities,
        labels,
        instances,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_and_cores_partition() {
        for len in [100, 512, 513, 1000, 4096, 777] {
            let t = axis_tiles(len, 256, 64);
            assert_eq!(t[0].2, 0);
            assert_eq!(t.last().unwrap().3, len);
            for w in t.windows(2) {
                assert_eq!(w[0].3, w[1].2, "cores must abut");
                assert!(w[1].0 < w[0].1, "tiles must overlap");
            }
            for (s, e, lo, hi) in t {
                assert!(s <= lo && lo < hi && hi <= e.min(len));
            }
        }
    }
}
