//! Segmenting a tile, and a large image by overlapping tiles ([`super::tiling`]).

use super::postprocess::{instances_from_outputs, Instance, PostprocessConfig};
use super::tiling::{predict_regions, run_tiles, FullLabels, TileDone};
use crate::imaging::{ImageView, Normalize};
use crate::model::{Config, CsraNet};
use crate::{Error, Result};

/// Largest side `segment_tile` accepts; larger images go through `segment_image`.
pub const MAX_TILE_SIDE: usize = 2048;

/// Options of a segmentation.
#[derive(Clone, Debug)]
pub struct SegmentOptions {
    /// Input normalisation (ImageNet by default).
    pub normalize: Normalize,
    /// Instance post-processing.
    pub post: PostprocessConfig,
    /// Tile side for `segment_image` (rounded up to the model's grid,
    /// [`Config::size_multiple`]).
    pub tile_size: usize,
    /// Pixels shared by neighbouring tiles, at most half the tile; 0 = the model's
    /// ([`Config::default_overlap`]: none for tile-invariant networks, whose context holds
    /// the nuclei cut by a tile edge, else 64). Without context it must exceed twice the
    /// largest nucleus diameter for seamless merging. The tile step (tile less overlap) is
    /// rounded down to the model's grid.
    pub overlap: usize,
    /// Context read around every tile of `segment_image`, beyond its overlap, in pixels
    /// (rounded up to the model's grid): the network sees it, the tile's nuclei are taken
    /// from the tile only. `None` = the model's ([`Config::default_context`]).
    pub context: Option<usize>,
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
            overlap: 0,
            context: None,
            batch_size: 2,
            keep_probabilities: true,
        }
    }
}

impl SegmentOptions {
    /// Checks every field; the error names the bad one.
    pub fn validate(&self) -> Result<()> {
        self.normalize.validate()?;
        if self.tile_size < 64 || self.tile_size > MAX_TILE_SIDE {
            return Err(Error::invalid(format!(
                "tile_size must be in [64, {MAX_TILE_SIDE}], got {}",
                self.tile_size
            )));
        }
        if self.overlap * 2 > self.tile_size {
            return Err(Error::invalid(format!(
                "overlap ({}) must be at most half the tile size ({} is half of {})",
                self.overlap,
                self.tile_size / 2,
                self.tile_size
            )));
        }
        if let Some(c) = self.context.filter(|&c| c > 1024) {
            return Err(Error::invalid(format!(
                "context must be at most 1024 px, got {c}"
            )));
        }
        if self.batch_size == 0 || self.batch_size > 64 {
            return Err(Error::invalid(format!(
                "batch_size must be in [1, 64], got {}",
                self.batch_size
            )));
        }
        self.post.validate()
    }

    /// The options with the overlap resolved for `cfg` (0 = the model's default, capped at
    /// half the tile).
    pub fn resolved(&self, cfg: &Config) -> SegmentOptions {
        let mut o = self.clone();
        if o.overlap == 0 {
            let tile = o.tile_size.div_ceil(cfg.size_multiple()) * cfg.size_multiple();
            o.overlap = cfg.default_overlap().min(tile / 2);
        }
        if o.context.is_none() {
            o.context = Some(cfg.default_context());
        }
        o
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

/// The most probable class at pixel `i` of `C x n` probabilities (ties: the lower class).
fn argmax_at(probs: &[f32], c: usize, n: usize, i: usize) -> u8 {
    let mut best = 0;
    for k in 1..c {
        if probs[k * n + i] > probs[best * n + i] {
            best = k;
        }
    }
    best as u8
}

fn argmax_map(probs: &[f32], c: usize, n: usize) -> Vec<u8> {
    (0..n).map(|i| argmax_at(probs, c, n, i)).collect()
}

/// A zeroed buffer of `n` values, or an error (instead of an abort) when it cannot be had.
fn zeroed<T: Clone + Default>(n: usize, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        Error::invalid(format!(
            "cannot allocate the {what} ({:.1} GiB) for an image this large: segment it in \
             parts, or with segment_stream, which holds no whole-image maps",
            (n * std::mem::size_of::<T>()) as f64 / (1u64 << 30) as f64
        ))
    })?;
    v.resize(n, T::default());
    Ok(v)
}

/// Segments a whole image as one tile (up to `MAX_TILE_SIDE` per side), padded internally
/// to the model's grid and cropped back.
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
    let cfg = model.config();
    let c = cfg.num_classes;
    let out = predict_regions(
        model,
        view,
        &[(0, 0, w, h)],
        cfg.size_multiple(),
        &opts.normalize,
    )?
    .pop()
    .expect("one region");
    let inst = instances_from_outputs(&out.probs, out.geometry.as_deref(), c, w, h, &opts.post);
    Ok(Segmentation {
        width: w,
        height: h,
        num_classes: c,
        class_map: argmax_map(&out.probs, c, w * h),
        probabilities: opts.keep_probabilities.then_some(out.probs),
        labels: inst.labels,
        instances: inst.instances,
    })
}

/// Segments a large image by overlapping tiles, `opts.batch_size` tiles per forward pass
/// (tiling and seams: [`super::tiling`]). `progress(done, total)` is called after every batch;
/// returning `false` cancels, and the function returns `Ok(None)` having freed everything.
/// The result holds whole-image maps (5 bytes per pixel, plus `4 x classes` with
/// probabilities); an image too large for them is an error, not an abort.
pub fn segment_image(
    model: &CsraNet,
    view: &ImageView,
    opts: &SegmentOptions,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Option<Segmentation>> {
    let opts = opts.resolved(model.config());
    opts.validate()?;
    let (w, h) = (view.width(), view.height());
    let c = model.config().num_classes;
    let n = w
        .checked_mul(h)
        .ok_or_else(|| Error::invalid("image size overflows"))?;
    let mut class_map: Vec<u8> = zeroed(n, "class map")?;
    let mut labels = FullLabels {
        width: w,
        labels: zeroed(n, "label map")?,
    };
    let mut probabilities: Option<Vec<f32>> = if opts.keep_probabilities {
        let cn = n
            .checked_mul(c)
            .ok_or_else(|| Error::invalid("image size overflows"))?;
        Some(zeroed(cn, "probability maps")?)
    } else {
        None
    };
    let mut instances: Vec<Instance> = Vec::new();
    let mut on_tile = |t: TileDone| {
        let (x0, y0) = (t.x.start, t.y.start);
        let rw = t.x.end - t.x.start;
        let rn = rw * (t.y.end - t.y.start);
        let p = &t.output.probs;
        for gy in t.y.lo..t.y.hi {
            for gx in t.x.lo..t.x.hi {
                let li = (gy - y0) * rw + gx - x0;
                class_map[gy * w + gx] = argmax_at(p, c, rn, li);
                if let Some(pr) = probabilities.as_mut() {
                    for k in 0..c {
                        pr[k * n + gy * w + gx] = p[k * rn + li];
                    }
                }
            }
        }
    };
    let done = run_tiles(
        model,
        view,
        &opts,
        &|_, _, _, _| true,
        &mut labels,
        &mut |v| {
            instances.extend(v);
            Ok(())
        },
        &mut on_tile,
        progress,
    )?;
    if !done {
        return Ok(None);
    }
    Ok(Some(Segmentation {
        width: w,
        height: h,
        num_classes: c,
        class_map,
        probabilities,
        labels: labels.labels,
        instances,
    }))
}
