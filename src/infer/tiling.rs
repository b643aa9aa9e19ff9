//! The one tiler every host uses: tiles on a grid anchored at the image origin, batched
//! forward passes, seams, progress and cancel, over any pixel source (an image in memory, a
//! host callback, a slide reader).
//!
//! - **Grid.** Tile starts are multiples of the tile step, itself a multiple of the model's
//!   grid ([`Config::size_multiple`](crate::model::Config::size_multiple)); an edge tile is
//!   cut at the image border and padded exactly as a one-pass segmentation pads the image.
//!   With a tile-invariant network the windows of its attention then fall on the same
//!   image pixels in every tiling.
//! - **Context.** Each tile is read with `SegmentOptions::context` more pixels on every
//!   side inside the image (by default the model's, [`Config::default_context`](crate::model::Config::default_context)):
//!   the network sees what lies around the tile, so its outputs on the tile match a
//!   one-pass segmentation's, and a nucleus cut by the tile's edge is seen whole.
//! - **Seams.** Each tile owns a core (the midpoints of its overlaps). An instance is kept by
//!   the tile whose core holds its centroid, unless it touches one of the tile's inner edges
//!   (the neighbour sees it whole). An instance more than half covered by one already placed is
//!   a duplicate and dropped; otherwise it keeps its free pixels, and its area, centroid, box,
//!   polygon, class and score are computed from the pixels it keeps.
//! - **Memory.** Placed labels are remembered only where tiles overlap ([`SeamStore`]): a
//!   band of `overlap` rows across the image and the overlap columns of the current tile row,
//!   so a slide costs `width x overlap` labels besides one batch of tiles, whatever its
//!   height.

use super::polygons::region_polygon;
use super::postprocess::{instances_from_outputs, Instance, Instances};
use super::segment::SegmentOptions;
use crate::imaging::{rgb_chw, ImageView, Normalize};
use crate::model::CsraNet;
use crate::{Error, Result};
use candle_core::{Device, Tensor};
use rayon::prelude::*;

/// A source of pixels for the tiler: an image in memory, a host callback or a slide.
pub trait RegionSource: Sync {
    /// Width and height in pixels.
    fn size(&self) -> (usize, usize);
    /// RGB8 pixels of `[x, x + w) x [y, y + h)` (inside the image), row-major, into `out`
    /// (`w * h * 3` bytes).
    fn read_rgb(&self, x: usize, y: usize, w: usize, h: usize, out: &mut [u8]) -> Result<()>;
}

impl RegionSource for ImageView<'_> {
    fn size(&self) -> (usize, usize) {
        (self.width(), self.height())
    }

    fn read_rgb(&self, x: usize, y: usize, w: usize, h: usize, out: &mut [u8]) -> Result<()> {
        if x + w > self.width() || y + h > self.height() || out.len() != w * h * 3 {
            return Err(Error::invalid(format!(
                "region {x},{y} {w}x{h} is outside the image or the buffer is too small"
            )));
        }
        for yy in 0..h {
            for xx in 0..w {
                let p = self.rgb(x + xx, y + yy);
                out[(yy * w + xx) * 3..(yy * w + xx) * 3 + 3].copy_from_slice(&p);
            }
        }
        Ok(())
    }
}

/// One tile along an axis: `[start, end)` read from the image (the tile and its context,
/// `end <= len`), the core `[lo, hi)` it owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AxisTile {
    pub start: usize,
    pub end: usize,
    pub lo: usize,
    pub hi: usize,
}

/// Tiles along an axis of `len` pixels: tiles of `t` pixels starting at multiples of
/// `step` (`0 < step <= t`), the last one cut at `len`, each read with `ctx` more pixels of
/// context on both sides (cut at the image); cores split each overlap in the middle.
pub fn axis_tiles(len: usize, t: usize, step: usize, ctx: usize) -> Vec<AxisTile> {
    assert!(step > 0 && step <= t && len > 0);
    let mut starts = vec![0];
    while starts.last().unwrap() + t < len {
        starts.push(starts.last().unwrap() + step);
    }
    let n = starts.len();
    (0..n)
        .map(|i| {
            let start = starts[i];
            let end = (start + t).min(len);
            let lo = if i == 0 {
                0
            } else {
                (starts[i - 1] + t + start).div_ceil(2).min(len)
            };
            let hi = if i + 1 == n {
                len
            } else {
                (start + t + starts[i + 1]).div_ceil(2).min(len)
            };
            AxisTile {
                start: start.saturating_sub(ctx),
                end: (end + ctx).min(len),
                lo,
                hi,
            }
        })
        .collect()
}

/// The tiling of an image for a model and options: tile side (a multiple of the model's
/// grid) and step (tile side less the overlap, rounded down to the grid, at least one cell).
#[derive(Clone, Debug)]
pub struct TilePlan {
    pub tile: usize,
    pub step: usize,
    /// The model's size multiple (grid cell).
    pub grid: usize,
    pub xs: Vec<AxisTile>,
    pub ys: Vec<AxisTile>,
}

impl TilePlan {
    pub fn new(width: usize, height: usize, grid: usize, opts: &SegmentOptions) -> Self {
        let tile = opts.tile_size.div_ceil(grid) * grid;
        let step = ((tile.saturating_sub(opts.overlap)) / grid * grid).max(grid);
        let ctx = opts.context.unwrap_or(0).div_ceil(grid) * grid;
        Self {
            tile,
            step,
            grid,
            xs: axis_tiles(width, tile, step, ctx),
            ys: axis_tiles(height, tile, step, ctx),
        }
    }

    /// Number of tiles.
    pub fn len(&self) -> usize {
        self.xs.len() * self.ys.len()
    }

    /// Always false: an image has at least one tile.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The network's outputs for one tile, cropped to the tile: `C x h x w` probabilities and,
/// for models with the geometry head, `2 x h x w` HV maps.
pub struct TileOutput {
    pub probs: Vec<f32>,
    pub geometry: Option<Vec<f32>>,
}

/// Forward passes over `regions` (`x, y, w, h`), grouped by padded size (each padded to a
/// multiple of `grid` by edge replication, as a one-pass segmentation pads the image).
pub fn predict_regions(
    model: &CsraNet,
    src: &dyn RegionSource,
    regions: &[(usize, usize, usize, usize)],
    grid: usize,
    norm: &Normalize,
) -> Result<Vec<TileOutput>> {
    let padded: Vec<(usize, usize)> = regions
        .iter()
        .map(|r| (r.2.div_ceil(grid) * grid, r.3.div_ceil(grid) * grid))
        .collect();
    let mut out: Vec<Option<TileOutput>> = (0..regions.len()).map(|_| None).collect();
    let mut sizes = padded.clone();
    sizes.sort_unstable();
    sizes.dedup();
    for size in sizes {
        let idx: Vec<usize> = (0..regions.len()).filter(|&i| padded[i] == size).collect();
        let x = regions_tensor(
            src,
            &idx.iter().map(|&i| regions[i]).collect::<Vec<_>>(),
            size,
            norm,
            model.device(),
        )?;
        let parts = model.forward_parts(&x, false)?;
        let probs = candle_nn::ops::softmax(&parts.logits, 1)?;
        for (k, &i) in idx.iter().enumerate() {
            let (_, _, w, h) = regions[i];
            let crop = |t: &Tensor| -> Result<Vec<f32>> {
                Ok(t.get(k)?
                    .narrow(1, 0, h)?
                    .narrow(2, 0, w)?
                    .to_dtype(candle_core::DType::F32)?
                    .flatten_all()?
                    .to_vec1::<f32>()?)
            };
            let p = crop(&probs)?;
            let g = match &parts.geometry {
                Some(g) => Some(crop(g)?),
                None => None,
            };
            if p.iter().chain(g.iter().flatten()).any(|v| !v.is_finite()) {
                return Err(Error::non_finite(
                    "the model produced non-finite outputs (are the weights corrupted?)",
                ));
            }
            out[i] = Some(TileOutput {
                probs: p,
                geometry: g,
            });
        }
    }
    Ok(out
        .into_iter()
        .map(|o| o.expect("every region predicted"))
        .collect())
}

/// A batch of regions as one normalised `[B, 3, ph, pw]` tensor, padded by edge replication.
fn regions_tensor(
    src: &dyn RegionSource,
    regions: &[(usize, usize, usize, usize)],
    (pw, ph): (usize, usize),
    norm: &Normalize,
    device: &Device,
) -> Result<Tensor> {
    let plane = 3 * pw * ph;
    let mut buf = vec![0f32; plane * regions.len()];
    let mut rgb = Vec::new();
    for (i, &(x0, y0, w, h)) in regions.iter().enumerate() {
        rgb.resize(w * h * 3, 0);
        src.read_rgb(x0, y0, w, h, &mut rgb)?;
        rgb_chw(
            &rgb,
            (w, h),
            (pw, ph),
            norm,
            &mut buf[i * plane..(i + 1) * plane],
        );
    }
    Ok(Tensor::from_vec(buf, (regions.len(), 3, ph, pw), device)?)
}

/// Where placed instance labels are remembered for the seam checks.
pub trait LabelStore {
    /// The label placed at image pixel `(x, y)` (0 = none). Only pixels inside two or more
    /// tiles are asked for.
    fn get(&self, x: usize, y: usize) -> u32;
    /// Places `id` at `(x, y)`.
    fn set(&mut self, x: usize, y: usize, id: u32);
    /// Called before the tiles of tile row `row` are placed.
    fn begin_row(&mut self, _plan: &TilePlan, _row: usize) {}
}

/// A whole label map (in-memory images: it is the result).
pub struct FullLabels {
    pub width: usize,
    pub labels: Vec<u32>,
}

impl LabelStore for FullLabels {
    fn get(&self, x: usize, y: usize) -> u32 {
        self.labels[y * self.width + x]
    }
    fn set(&mut self, x: usize, y: usize, id: u32) {
        self.labels[y * self.width + x] = id;
    }
}

/// Labels only where tiles overlap, for the current tile row: the band shared with the row
/// above, the band shared with the row below, and the full current row's height for the
/// column overlaps. Memory: `width x (tile + overlap)` at most, whatever the image height.
pub struct SeamStore {
    width: usize,
    /// Image rows `[y0, y0 + rows)` held, row-major.
    y0: usize,
    rows: usize,
    labels: Vec<u32>,
}

impl SeamStore {
    pub fn new(width: usize) -> Self {
        Self {
            width,
            y0: 0,
            rows: 0,
            labels: Vec::new(),
        }
    }
}

impl LabelStore for SeamStore {
    fn get(&self, x: usize, y: usize) -> u32 {
        if y < self.y0 || y >= self.y0 + self.rows {
            return 0;
        }
        self.labels[(y - self.y0) * self.width + x]
    }
    fn set(&mut self, x: usize, y: usize, id: u32) {
        if y >= self.y0 && y < self.y0 + self.rows {
            self.labels[(y - self.y0) * self.width + x] = id;
        }
    }
    fn begin_row(&mut self, plan: &TilePlan, row: usize) {
        // Keep the rows of this tile row that the previous tile row placed (its overlap);
        // drop everything above.
        let t = plan.ys[row];
        let keep_from = t.start;
        let new_rows = t.end - t.start;
        let mut labels = vec![0u32; new_rows * self.width];
        for y in keep_from..t.end {
            if y >= self.y0 && y < self.y0 + self.rows {
                let src = (y - self.y0) * self.width;
                let dst = (y - keep_from) * self.width;
                labels[dst..dst + self.width].copy_from_slice(&self.labels[src..src + self.width]);
            }
        }
        self.y0 = keep_from;
        self.rows = new_rows;
        self.labels = labels;
    }
}

/// What the tiler hands back per tile: its place and outputs (the in-memory path copies the
/// core's class map and probabilities out of it).
pub struct TileDone<'a> {
    pub x: AxisTile,
    pub y: AxisTile,
    pub output: &'a TileOutput,
}

/// Runs the tiling: every tile whose core `wanted(x0, y0, x1, y1)` accepts is predicted
/// (`opts.batch_size` per forward pass) and post-processed; its owned instances are placed in
/// `store` and passed to `sink` (image coordinates, ids from 1 in placement order); `on_tile`
/// sees each tile's outputs. `progress(done, total)` after every batch; `false` cancels and
/// the function returns `Ok(false)`.
#[allow(clippy::too_many_arguments)]
pub fn run_tiles(
    model: &CsraNet,
    src: &dyn RegionSource,
    opts: &SegmentOptions,
    wanted: &dyn Fn(usize, usize, usize, usize) -> bool,
    store: &mut dyn LabelStore,
    sink: &mut dyn FnMut(Vec<Instance>) -> Result<()>,
    on_tile: &mut dyn FnMut(TileDone),
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<bool> {
    let opts = &opts.resolved(model.config());
    opts.validate()?;
    let (w, h) = src.size();
    if w == 0 || h == 0 {
        return Err(Error::invalid(format!("the image is empty ({w}x{h})")));
    }
    let cfg = model.config();
    let c = cfg.num_classes;
    let plan = TilePlan::new(w, h, cfg.size_multiple(), opts);
    let mut tiles = Vec::with_capacity(plan.len());
    for (r, ty) in plan.ys.iter().enumerate() {
        for tx in &plan.xs {
            if wanted(tx.lo, ty.lo, tx.hi, ty.hi) {
                tiles.push((r, *tx, *ty));
            }
        }
    }
    let total = tiles.len();
    let mut next_id = 1u32;
    let mut done = 0;
    let mut row = usize::MAX;
    // Batches never span two tile rows, so the seam store can move on row by row.
    let mut batches: Vec<&[(usize, AxisTile, AxisTile)]> = Vec::new();
    for chunk in tiles.chunk_by(|a, b| a.0 == b.0) {
        batches.extend(chunk.chunks(opts.batch_size));
    }
    for batch in batches {
        if batch[0].0 != row {
            row = batch[0].0;
            store.begin_row(&plan, row);
        }
        let regions: Vec<_> = batch
            .iter()
            .map(|(_, x, y)| (x.start, y.start, x.end - x.start, y.end - y.start))
            .collect();
        let outs = predict_regions(model, src, &regions, plan.grid, &opts.normalize)?;
        let locals: Vec<Instances> = outs
            .par_iter()
            .zip(&regions)
            .map(|(o, r)| {
                instances_from_outputs(&o.probs, o.geometry.as_deref(), c, r.2, r.3, &opts.post)
            })
            .collect();
        for (((_, tx, ty), out), local) in batch.iter().zip(&outs).zip(locals) {
            let placed = place_tile(*tx, *ty, (w, h), out, &local, c, opts, store, &mut next_id);
            on_tile(TileDone {
                x: *tx,
                y: *ty,
                output: out,
            });
            sink(placed)?;
        }
        done += batch.len();
        if !progress(done, total) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Places the instances a tile owns (see the module's seams rule); returns them in image
/// coordinates with their final ids.
#[allow(clippy::too_many_arguments)]
fn place_tile(
    tx: AxisTile,
    ty: AxisTile,
    (w, h): (usize, usize),
    out: &TileOutput,
    local: &Instances,
    c: usize,
    opts: &SegmentOptions,
    store: &mut dyn LabelStore,
    next_id: &mut u32,
) -> Vec<Instance> {
    let (x0, y0) = (tx.start, ty.start);
    let (rw, rh) = (tx.end - tx.start, ty.end - ty.start);
    let rn = rw * rh;
    let inner = [x0 > 0, y0 > 0, tx.end < w, ty.end < h];
    let mut pixels: Vec<Vec<usize>> = vec![Vec::new(); local.instances.len()];
    for (i, &l) in local.labels.iter().enumerate() {
        if l > 0 {
            pixels[l as usize - 1].push(i);
        }
    }
    let mut placed = Vec::new();
    for (inst, pix) in local.instances.iter().zip(pixels) {
        let [bx0, by0, bx1, by1] = inst.bbox;
        let touches = (inner[0] && bx0 == 0)
            || (inner[1] && by0 == 0)
            || (inner[2] && bx1 as usize == rw)
            || (inner[3] && by1 as usize == rh);
        let gcx = inst.centroid[0] + x0 as f32;
        let gcy = inst.centroid[1] + y0 as f32;
        let owned =
            gcx >= tx.lo as f32 && gcx < tx.hi as f32 && gcy >= ty.lo as f32 && gcy < ty.hi as f32;
        if touches || !owned {
            continue;
        }
        let free: Vec<usize> = pix
            .iter()
            .copied()
            .filter(|&i| store.get(x0 + i % rw, y0 + i / rw) == 0)
            .collect();
        if free.len() * 2 < pix.len() || free.is_empty() {
            continue;
        }
        let id = *next_id;
        for &i in &free {
            store.set(x0 + i % rw, y0 + i / rw, id);
        }
        if let Some(mut d) = describe(&free, rw, &out.probs, rn, c, opts.post.polygon_tolerance) {
            *next_id += 1;
            d.id = id;
            d.centroid[0] += x0 as f32;
            d.centroid[1] += y0 as f32;
            d.bbox = [
                d.bbox[0] + x0 as u32,
                d.bbox[1] + y0 as u32,
                d.bbox[2] + x0 as u32,
                d.bbox[3] + y0 as u32,
            ];
            for p in &mut d.polygon {
                p[0] += x0 as f32;
                p[1] += y0 as f32;
            }
            placed.push(d);
        } else {
            for &i in &free {
                store.set(x0 + i % rw, y0 + i / rw, 0);
            }
        }
    }
    placed
}

/// An instance from the pixels it keeps (indices into a `rw`-wide tile): area, centroid,
/// box, polygon, class by the majority of its pixels' class probabilities (background
/// excluded) and score (the mean probability of that class). `None` when the kept pixels
/// do not make a polygon (fewer than 3 distinct outline points).
pub fn describe(
    pix: &[usize],
    rw: usize,
    probs: &[f32],
    rn: usize,
    c: usize,
    tolerance: f32,
) -> Option<Instance> {
    let mut b = [u32::MAX, u32::MAX, 0u32, 0u32];
    let (mut sx, mut sy) = (0f64, 0f64);
    let mut sums = vec![0f64; c];
    for &i in pix {
        let (x, y) = ((i % rw) as u32, (i / rw) as u32);
        b = [b[0].min(x), b[1].min(y), b[2].max(x + 1), b[3].max(y + 1)];
        sx += x as f64;
        sy += y as f64;
        for (k, s) in sums.iter_mut().enumerate().skip(1) {
            *s += probs[k * rn + i] as f64;
        }
    }
    let n = pix.len() as f64;
    let class = (1..c).fold(1, |best, k| if sums[k] > sums[best] { k } else { best });
    // Polygon of the kept pixels: a local mask over the box.
    let (bw, bh) = ((b[2] - b[0]) as usize, (b[3] - b[1]) as usize);
    let mut mask = vec![0u32; bw * bh];
    for &i in pix {
        let (x, y) = (i % rw - b[0] as usize, i / rw - b[1] as usize);
        mask[y * bw + x] = 1;
    }
    let polygon: Vec<[f32; 2]> =
        region_polygon(&mask, bw, [0, 0, bw as u32, bh as u32], 1, tolerance)
            .into_iter()
            .map(|[x, y]| [x + b[0] as f32, y + b[1] as f32])
            .collect();
    if polygon.len() < 3 {
        return None;
    }
    Some(Instance {
        id: 0,
        class: class as u32,
        score: (sums[class] / n) as f32,
        area: pix.len() as u32,
        centroid: [(sx / n + 0.5) as f32, (sy / n + 0.5) as f32],
        bbox: b,
        polygon,
    })
}

/// Segments a source of any size tile by tile without holding its label map: each tile
/// row's finished instances go to `sink` (image coordinates); memory is one batch of tiles
/// plus `width x tile` seam labels. Tiles whose core `wanted(x0, y0, x1, y1)` rejects (e.g.
/// no tissue) are skipped. Returns `Ok(false)` when `progress(done, total)` cancels.
pub fn segment_stream(
    model: &CsraNet,
    src: &dyn RegionSource,
    opts: &SegmentOptions,
    wanted: &dyn Fn(usize, usize, usize, usize) -> bool,
    sink: &mut dyn FnMut(Vec<Instance>) -> Result<()>,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<bool> {
    let mut store = SeamStore::new(src.size().0);
    run_tiles(
        model,
        src,
        opts,
        wanted,
        &mut store,
        sink,
        &mut |_| {},
        progress,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tiles_cover_align_and_partition() {
        for len in [100, 256, 257, 512, 513, 1000, 4096, 777] {
            for (t, step) in [(256, 128), (512, 384), (1024, 896), (128, 64)] {
                let tiles = axis_tiles(len, t, step, 0);
                assert_eq!(tiles[0].lo, 0);
                assert_eq!(tiles.last().unwrap().hi, len);
                assert!(tiles.last().unwrap().end == len);
                for a in &tiles {
                    assert_eq!(a.start % step, 0, "tile starts on the grid");
                    assert!(a.start <= a.lo && a.lo < a.hi && a.hi <= a.end && a.end <= len);
                }
                for p in tiles.windows(2) {
                    assert_eq!(p[0].hi, p[1].lo, "cores must abut");
                    assert!(p[1].start < p[0].end, "tiles must overlap");
                }
            }
        }
    }

    #[test]
    fn seam_store_keeps_only_the_band_shared_with_the_previous_row() {
        let opts = SegmentOptions {
            tile_size: 256,
            overlap: 128,
            ..Default::default()
        };
        let plan = TilePlan::new(300, 700, 64, &opts);
        assert_eq!(plan.step, 128);
        let mut s = SeamStore::new(300);
        s.begin_row(&plan, 0);
        s.set(5, 200, 7); // inside row 1's tile too (row 1 starts at 128)
        s.set(5, 100, 8); // above row 1
        s.begin_row(&plan, 1);
        assert_eq!(s.get(5, 200), 7);
        assert_eq!(s.get(5, 100), 0);
        assert!(s.labels.len() <= 300 * 256);
    }
}
