//! Weak and strong views for semi-supervised training, METHOD.md section 2.
//!
//! Images are RGB, planar (CHW), `f32` in `[0, 1]`, before normalisation ([`Image`]). Labels
//! are `H x W` class maps of `u8` with [`IGNORE`] marking pixels that carry no label.
//!
//! Every random operation is split into *sampling* its parameters from a caller-supplied RNG
//! (`&mut impl Rng`, a seeded `ChaCha8Rng` in training) and *applying* them with a small
//! deterministic function, so the same seed always gives the same view and the same geometry
//! can be applied to any other per-pixel map ([`apply_weak_plane`]).
//!
//! Weak view ([`weak_view`], [`WeakConfig`]), in this order:
//! 1. random 90-degree rotation `k` in {0,1,2,3} counter-clockwise (switch `rot90`, on);
//! 2. random scale, factor uniform in `[scale_min, scale_max]` = [0.5, 2.0] (the output size is
//!    `round(s * size)`); image resampled with a bilinear (triangle) filter, pixel centres at
//!    half-integers (`align_corners=False`), antialiased when shrinking like PIL's `BILINEAR`;
//!    labels with nearest neighbour (`src = floor((dst + 0.5) * in / out)`);
//! 3. random crop to `crop_width x crop_height`; along an axis where the scaled image is smaller
//!    than the crop it is placed at a uniformly random offset and the rest padded (image with
//!    `pad_value` = 0, labels with [`IGNORE`]); scale and crop are fused (only the kept window is
//!    resampled);
//! 4. horizontal flip with `hflip_p` = 0.5; vertical flip with `vflip_p` = 0.5 (switch `vflip`, on).
//!
//! Strong view ([`strong_view`], [`StrongConfig`]), photometric only (labels unchanged), applied
//! to a weak view, in this order: colour jitter (p 0.8; brightness, contrast, saturation 0.5,
//! hue 0.25; torchvision `ColorJitter` semantics: the four in random order, factors uniform in
//! `[max(0, 1 - x), 1 + x]`, hue shift uniform in `[-h, h]` of the hue circle, contrast blended
//! with the mean of the grayscale image, clamped to [0, 1] after each), grayscale (p 0.2, ITU-R
//! 601 weights 0.2989/0.587/0.114 as torchvision), Gaussian blur (p 0.5, sigma uniform in
//! [0.1, 2.0], kernel `2 * ceil(3 sigma) + 1`, reflect padding), H&E stain jitter (p 1.0 (our
//! reading: METHOD gives it no probability); Ruifrok-Johnston deconvolution with skimage's
//! `rgb_from_hed`, optical density `-ln(max(rgb, 1e-6))`, per-stain scale in `[1 - s, 1 + s]`
//! and shift in `[-s, s]`, s = 0.05, back to RGB, clamped). `stain_first = true` moves the
//! stain jitter before the colour jitter.
//!
//! CutMix is separate, because it needs a second image and the trainer pastes pseudo-labels and
//! masks with the same box: [`cutmix_box`] (p 0.5; area fraction uniform in [0.02, 0.4]; aspect
//! `h / w` uniform in [0.3, 3.3] as UniMatch, or log-uniform with `cutmix_log_aspect`), then
//! [`paste_box_image`] / [`paste_box`] for any plane.

use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Label value of pixels without a label (padding); losses skip it.
pub const IGNORE: u8 = 255;

/// Number of channels of an [`Image`].
pub const CHANNELS: usize = 3;

/// RGB image, planar CHW (`data[c * height * width + y * width + x]`), values in `[0, 1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl Image {
    /// Checks that `data` holds `3 * width * height` values.
    pub fn new(width: usize, height: usize, data: Vec<f32>) -> Result<Self, String> {
        if width == 0 || height == 0 {
            return Err(format!("image size must be positive, got {width}x{height}"));
        }
        if data.len() != CHANNELS * width * height {
            return Err(format!(
                "image data has {} values, a {width}x{height} RGB image needs {}",
                data.len(),
                CHANNELS * width * height
            ));
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// An image of one colour.
    pub fn filled(width: usize, height: usize, rgb: [f32; 3]) -> Self {
        let n = width * height;
        let mut data = Vec::with_capacity(CHANNELS * n);
        for v in rgb {
            data.extend(std::iter::repeat_n(v, n));
        }
        Self {
            width,
            height,
            data,
        }
    }

    /// From interleaved 8-bit RGB (HWC), scaled to [0, 1].
    pub fn from_rgb8(width: usize, height: usize, rgb: &[u8]) -> Result<Self, String> {
        let n = width * height;
        if rgb.len() != CHANNELS * n {
            return Err(format!(
                "rgb8 buffer has {} bytes, {width}x{height} needs {}",
                rgb.len(),
                3 * n
            ));
        }
        let mut data = vec![0.0f32; CHANNELS * n];
        for (p, px) in rgb.chunks_exact(3).enumerate() {
            for c in 0..CHANNELS {
                data[c * n + p] = px[c] as f32 / 255.0;
            }
        }
        Self::new(width, height, data)
    }

    /// Pixels per channel.
    pub fn plane_len(&self) -> usize {
        self.width * self.height
    }

    /// Channel `c` (0 = R, 1 = G, 2 = B).
    pub fn plane(&self, c: usize) -> &[f32] {
        let n = self.plane_len();
        &self.data[c * n..(c + 1) * n]
    }

    /// Channel `c`, mutable.
    pub fn plane_mut(&mut self, c: usize) -> &mut [f32] {
        let n = self.plane_len();
        &mut self.data[c * n..(c + 1) * n]
    }

    /// Value at channel `c`, row `y`, column `x`.
    pub fn get(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data[c * self.plane_len() + y * self.width + x]
    }

    /// The three planes, mutable.
    fn planes_mut(&mut self) -> (&mut [f32], &mut [f32], &mut [f32]) {
        let n = self.plane_len();
        let (r, gb) = self.data.split_at_mut(n);
        let (g, b) = gb.split_at_mut(n);
        (r, g, b)
    }

    /// True when every value is finite and in `[0, 1]`.
    pub fn is_valid_unit(&self) -> bool {
        self.data
            .iter()
            .all(|v| v.is_finite() && (0.0..=1.0).contains(v))
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// Weak (geometric) view. Defaults follow METHOD.md section 2.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WeakConfig {
    /// Output width (training size). Default 256.
    pub crop_width: usize,
    /// Output height (training size). Default 256.
    pub crop_height: usize,
    /// Smallest scale factor. Default 0.5.
    pub scale_min: f64,
    /// Largest scale factor. Default 2.0.
    pub scale_max: f64,
    /// Probability of a horizontal flip. Default 0.5.
    pub hflip_p: f64,
    /// Vertical flips on/off (histology is orientation-free). Default true.
    pub vflip: bool,
    /// Probability of a vertical flip when `vflip`. Default 0.5.
    pub vflip_p: f64,
    /// Random 90-degree rotations (k uniform in 0..4) on/off. Default true.
    pub rot90: bool,
    /// Image value in padded pixels. Default 0.0.
    pub pad_value: f32,
}

impl Default for WeakConfig {
    fn default() -> Self {
        Self {
            crop_width: 256,
            crop_height: 256,
            scale_min: 0.5,
            scale_max: 2.0,
            hflip_p: 0.5,
            vflip: true,
            vflip_p: 0.5,
            rot90: true,
            pad_value: 0.0,
        }
    }
}

fn check_p(name: &str, p: f64) -> Result<(), String> {
    if !(0.0..=1.0).contains(&p) {
        return Err(format!("{name} must be a probability in [0, 1], got {p}"));
    }
    Ok(())
}

fn check_range(name: &str, lo: f64, hi: f64, min_allowed: f64) -> Result<(), String> {
    if !(lo.is_finite() && hi.is_finite() && lo >= min_allowed && lo <= hi) {
        return Err(format!(
            "{name} range [{lo}, {hi}] is invalid (need {min_allowed} <= min <= max, finite)"
        ));
    }
    Ok(())
}

impl WeakConfig {
    /// Checks sizes, ranges and probabilities.
    pub fn validate(&self) -> Result<(), String> {
        if self.crop_width == 0 || self.crop_height == 0 {
            return Err(format!(
                "crop size must be positive, got {}x{}",
                self.crop_width, self.crop_height
            ));
        }
        check_range("scale", self.scale_min, self.scale_max, f64::MIN_POSITIVE)?;
        check_p("hflip_p", self.hflip_p)?;
        check_p("vflip_p", self.vflip_p)?;
        if !self.pad_value.is_finite() {
            return Err("pad_value must be finite".into());
        }
        Ok(())
    }
}

/// Strong (photometric) view and CutMix. Defaults follow METHOD.md section 2.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StrongConfig {
    /// Probability of colour jitter. Default 0.8.
    pub jitter_p: f64,
    /// Brightness strength `x` (factor in `[max(0, 1 - x), 1 + x]`). Default 0.5.
    pub brightness: f64,
    /// Contrast strength. Default 0.5.
    pub contrast: f64,
    /// Saturation strength. Default 0.5.
    pub saturation: f64,
    /// Hue strength `h` (shift in `[-h, h]` of the hue circle, `h <= 0.5`). Default 0.25.
    pub hue: f64,
    /// Probability of grayscale. Default 0.2.
    pub grayscale_p: f64,
    /// Probability of Gaussian blur. Default 0.5.
    pub blur_p: f64,
    /// Smallest blur sigma (pixels). Default 0.1.
    pub blur_sigma_min: f64,
    /// Largest blur sigma (pixels). Default 2.0.
    pub blur_sigma_max: f64,
    /// Probability of H&E stain jitter. Default 1.0 (our reading: METHOD gives none).
    pub stain_p: f64,
    /// Stain scale strength `s` (factor in `[1 - s, 1 + s]` per stain). Default 0.05.
    pub stain_scale: f64,
    /// Stain shift strength `s` (shift in `[-s, s]` per stain). Default 0.05.
    pub stain_shift: f64,
    /// Units of the stain shift (our reading). Default optical density.
    pub stain_units: StainUnits,
    /// Apply the stain jitter first instead of last. Default false (METHOD's listed order).
    pub stain_first: bool,
    /// Probability of a CutMix box. Default 0.5.
    pub cutmix_p: f64,
    /// Smallest box area as a fraction of the image. Default 0.02.
    pub cutmix_area_min: f64,
    /// Largest box area as a fraction of the image. Default 0.4.
    pub cutmix_area_max: f64,
    /// Smallest aspect ratio `h / w`. Default 0.3.
    pub cutmix_aspect_min: f64,
    /// Largest aspect ratio `h / w`. Default 3.3.
    pub cutmix_aspect_max: f64,
    /// Aspect drawn log-uniformly instead of uniformly (UniMatch). Default false.
    pub cutmix_log_aspect: bool,
}

/// Units of the stain concentrations in which the stain shift is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StainUnits {
    /// Natural-log optical density, `-ln(rgb)`, deconvolved (a shift of 0.05 is about a 5%
    /// intensity change).
    #[default]
    OpticalDensity,
    /// skimage's `rgb2hed` units, OD divided by `-ln(1e-6)` (a shift of 0.05 is 0.69 OD, as the
    /// widely copied `HEDJitter` transform does).
    Skimage,
}

impl Default for StrongConfig {
    fn default() -> Self {
        Self {
            jitter_p: 0.8,
            brightness: 0.5,
            contrast: 0.5,
            saturation: 0.5,
            hue: 0.25,
            grayscale_p: 0.2,
            blur_p: 0.5,
            blur_sigma_min: 0.1,
            blur_sigma_max: 2.0,
            stain_p: 1.0,
            stain_scale: 0.05,
            stain_shift: 0.05,
            stain_units: StainUnits::OpticalDensity,
            stain_first: false,
            cutmix_p: 0.5,
            cutmix_area_min: 0.02,
            cutmix_area_max: 0.4,
            cutmix_aspect_min: 0.3,
            cutmix_aspect_max: 3.3,
            cutmix_log_aspect: false,
        }
    }
}

impl StrongConfig {
    /// Checks ranges and probabilities.
    pub fn validate(&self) -> Result<(), String> {
        for (n, p) in [
            ("jitter_p", self.jitter_p),
            ("grayscale_p", self.grayscale_p),
            ("blur_p", self.blur_p),
            ("stain_p", self.stain_p),
            ("cutmix_p", self.cutmix_p),
        ] {
            check_p(n, p)?;
        }
        for (n, v) in [
            ("brightness", self.brightness),
            ("contrast", self.contrast),
            ("saturation", self.saturation),
            ("stain_scale", self.stain_scale),
            ("stain_shift", self.stain_shift),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{n} must be finite and >= 0, got {v}"));
            }
        }
        if !(0.0..=0.5).contains(&self.hue) {
            return Err(format!("hue must be in [0, 0.5], got {}", self.hue));
        }
        check_range(
            "blur_sigma",
            self.blur_sigma_min,
            self.blur_sigma_max,
            f64::MIN_POSITIVE,
        )?;
        check_range(
            "cutmix_area",
            self.cutmix_area_min,
            self.cutmix_area_max,
            f64::MIN_POSITIVE,
        )?;
        if self.cutmix_area_max > 1.0 {
            return Err(format!(
                "cutmix_area_max must be <= 1, got {}",
                self.cutmix_area_max
            ));
        }
        check_range(
            "cutmix_aspect",
            self.cutmix_aspect_min,
            self.cutmix_aspect_max,
            f64::MIN_POSITIVE,
        )?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Random helpers with a fixed RNG consumption
// ---------------------------------------------------------------------------------------------

/// True with probability `p` (always consumes one `f64`).
fn coin(rng: &mut impl Rng, p: f64) -> bool {
    rng.random::<f64>() < p
}

/// Uniform in `[lo, hi]` (always consumes one `f64`).
fn uniform(rng: &mut impl Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

// ---------------------------------------------------------------------------------------------
// Geometry on planes
// ---------------------------------------------------------------------------------------------

/// Rotates a `w x h` plane by `k` counter-clockwise quarter turns (as `numpy.rot90`); returns
/// the plane and its new width and height.
pub fn rot90_plane<T: Copy>(src: &[T], w: usize, h: usize, k: u8) -> (Vec<T>, usize, usize) {
    debug_assert_eq!(src.len(), w * h);
    match k % 4 {
        0 => (src.to_vec(), w, h),
        1 => {
            // out(y, x) = in(x, w - 1 - y); out is h wide, w high.
            let (nw, nh) = (h, w);
            let mut out = Vec::with_capacity(w * h);
            for y in 0..nh {
                for x in 0..nw {
                    out.push(src[x * w + (w - 1 - y)]);
                }
            }
            (out, nw, nh)
        }
        2 => {
            let mut out = src.to_vec();
            out.reverse();
            (out, w, h)
        }
        _ => {
            // out(y, x) = in(h - 1 - x, y).
            let (nw, nh) = (h, w);
            let mut out = Vec::with_capacity(w * h);
            for y in 0..nh {
                for x in 0..nw {
                    out.push(src[(h - 1 - x) * w + y]);
                }
            }
            (out, nw, nh)
        }
    }
}

/// Mirrors a `w x h` plane left-right, in place.
pub fn hflip_plane<T>(p: &mut [T], w: usize) {
    for row in p.chunks_exact_mut(w) {
        row.reverse();
    }
}

/// Mirrors a `w x h` plane top-bottom, in place.
pub fn vflip_plane<T>(p: &mut [T], w: usize, h: usize) {
    for y in 0..h / 2 {
        let (top, bottom) = p.split_at_mut((h - 1 - y) * w);
        top[y * w..(y + 1) * w].swap_with_slice(&mut bottom[..w]);
    }
}

/// Rotates an image by `k` counter-clockwise quarter turns.
pub fn rot90_image(img: &Image, k: u8) -> Image {
    if k.is_multiple_of(4) {
        return img.clone();
    }
    let mut data = Vec::with_capacity(img.data.len());
    let (mut nw, mut nh) = (img.width, img.height);
    for c in 0..CHANNELS {
        let (p, w2, h2) = rot90_plane(img.plane(c), img.width, img.height, k);
        data.extend_from_slice(&p);
        nw = w2;
        nh = h2;
    }
    Image {
        width: nw,
        height: nh,
        data,
    }
}

/// Mirrors an image left-right, in place.
pub fn hflip_image(img: &mut Image) {
    let w = img.width;
    hflip_plane(&mut img.data, w); // rows of all planes are rows of width w
}

/// Mirrors an image top-bottom, in place.
pub fn vflip_image(img: &mut Image) {
    let (w, h) = (img.width, img.height);
    for c in 0..CHANNELS {
        vflip_plane(img.plane_mut(c), w, h);
    }
}

/// Separable resampling coefficients for output coordinates `start..start + count` of an
/// axis resized from `in_size` to `out_size` (PIL-style triangle filter).
struct Coeffs {
    first: Vec<usize>,
    len: Vec<usize>,
    ksize: usize,
    w: Vec<f32>,
}

fn bilinear_coeffs(in_size: usize, out_size: usize, start: usize, count: usize) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // triangle filter support 1, widened when shrinking
    let ksize = (support.ceil() as usize) * 2 + 1;
    let mut first = Vec::with_capacity(count);
    let mut len = Vec::with_capacity(count);
    let mut w = vec![0.0f32; count * ksize];
    for (i, xx) in (start..start + count).enumerate() {
        let center = (xx as f64 + 0.5) * scale;
        let xmin = ((center - support + 0.5).floor().max(0.0)) as usize;
        let xmax = (((center + support + 0.5).floor()) as usize).min(in_size);
        let n = xmax.saturating_sub(xmin).min(ksize);
        let mut total = 0.0;
        let mut k = vec![0.0f64; n];
        for (j, kj) in k.iter_mut().enumerate() {
            let t = ((xmin + j) as f64 - center + 0.5) / filterscale;
            let v = (1.0 - t.abs()).max(0.0);
            *kj = v;
            total += v;
        }
        if total <= 0.0 {
            // Degenerate (cannot happen for positive sizes); fall back to nearest.
            let src = ((center.floor() as usize).min(in_size - 1)).saturating_sub(xmin);
            for (j, kj) in k.iter_mut().enumerate() {
                *kj = if j == src { 1.0 } else { 0.0 };
            }
            total = 1.0;
        }
        for (j, kj) in k.iter().enumerate() {
            w[i * ksize + j] = (kj / total) as f32;
        }
        first.push(xmin);
        len.push(n);
    }
    Coeffs {
        first,
        len,
        ksize,
        w,
    }
}

/// Nearest-neighbour source indices for output coordinates `start..start + count`.
fn nearest_index(in_size: usize, out_size: usize, start: usize, count: usize) -> Vec<usize> {
    let scale = in_size as f64 / out_size as f64;
    (start..start + count)
        .map(|x| (((x as f64 + 0.5) * scale).floor() as usize).min(in_size - 1))
        .collect()
}

/// Resizes an image to `out_w x out_h` (bilinear, `align_corners=False`, antialiased when
/// shrinking).
pub fn resize_bilinear(img: &Image, out_w: usize, out_h: usize) -> Image {
    let data = resample_window(img, out_w, out_h, 0, out_w, 0, out_h);
    Image {
        width: out_w,
        height: out_h,
        data,
    }
}

/// Resizes a plane to `out_w x out_h` with nearest neighbour (for labels and masks).
pub fn resize_nearest<T: Copy>(
    src: &[T],
    w: usize,
    h: usize,
    out_w: usize,
    out_h: usize,
) -> Vec<T> {
    nearest_window(src, w, h, out_w, out_h, 0, out_w, 0, out_h)
}

/// Bilinear resampling of the window `[x0, x0 + cw) x [y0, y0 + ch)` of the image resized to
/// `sw x sh`; returns `3 x ch x cw` planar values.
#[allow(clippy::too_many_arguments)]
fn resample_window(
    img: &Image,
    sw: usize,
    sh: usize,
    x0: usize,
    cw: usize,
    y0: usize,
    ch: usize,
) -> Vec<f32> {
    let (w, h) = (img.width, img.height);
    let cx = bilinear_coeffs(w, sw, x0, cw);
    let cy = bilinear_coeffs(h, sh, y0, ch);
    let row_lo = cy.first.iter().copied().min().unwrap_or(0);
    let row_hi = cy
        .first
        .iter()
        .zip(&cy.len)
        .map(|(f, l)| f + l)
        .max()
        .unwrap_or(0);
    let rows = row_hi - row_lo;
    let mut out = vec![0.0f32; CHANNELS * cw * ch];
    let mut tmp = vec![0.0f32; rows * cw];
    for c in 0..CHANNELS {
        let plane = img.plane(c);
        // Horizontal pass over the input rows that the window needs.
        for r in 0..rows {
            let src = &plane[(row_lo + r) * w..(row_lo + r + 1) * w];
            let dst = &mut tmp[r * cw..(r + 1) * cw];
            for (i, d) in dst.iter_mut().enumerate() {
                let f = cx.first[i];
                let ws = &cx.w[i * cx.ksize..i * cx.ksize + cx.len[i]];
                let mut acc = 0.0f32;
                for (j, wj) in ws.iter().enumerate() {
                    acc += wj * src[f + j];
                }
                *d = acc;
            }
        }
        // Vertical pass.
        let o = &mut out[c * cw * ch..(c + 1) * cw * ch];
        for i in 0..ch {
            let dst = &mut o[i * cw..(i + 1) * cw];
            let f = cy.first[i] - row_lo;
            let ws = &cy.w[i * cy.ksize..i * cy.ksize + cy.len[i]];
            for (j, &wj) in ws.iter().enumerate() {
                let src = &tmp[(f + j) * cw..(f + j + 1) * cw];
                for (d, s) in dst.iter_mut().zip(src) {
                    *d += wj * s;
                }
            }
            for d in dst.iter_mut() {
                *d = d.clamp(0.0, 1.0);
            }
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn nearest_window<T: Copy>(
    src: &[T],
    w: usize,
    h: usize,
    sw: usize,
    sh: usize,
    x0: usize,
    cw: usize,
    y0: usize,
    ch: usize,
) -> Vec<T> {
    let ix = nearest_index(w, sw, x0, cw);
    let iy = nearest_index(h, sh, y0, ch);
    let mut out = Vec::with_capacity(cw * ch);
    for &y in &iy {
        let row = &src[y * w..(y + 1) * w];
        out.extend(ix.iter().map(|&x| row[x]));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Weak view
// ---------------------------------------------------------------------------------------------

/// Geometry of one weak view, sampled by [`sample_weak_params`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeakParams {
    /// Input size the parameters were drawn for.
    pub in_width: usize,
    pub in_height: usize,
    /// Counter-clockwise quarter turns, applied first.
    pub rot90: u8,
    /// Scale factor.
    pub scale: f64,
    /// Size after rotation and scaling.
    pub scaled_width: usize,
    pub scaled_height: usize,
    /// Window of the scaled image that is kept: top-left corner and size.
    pub src_x: usize,
    pub src_y: usize,
    pub copy_width: usize,
    pub copy_height: usize,
    /// Where that window lands in the output (non-zero only where padding is needed).
    pub dst_x: usize,
    pub dst_y: usize,
    /// Output size.
    pub out_width: usize,
    pub out_height: usize,
    pub hflip: bool,
    pub vflip: bool,
}

/// Draws the geometry of a weak view of a `width x height` input.
pub fn sample_weak_params(
    width: usize,
    height: usize,
    cfg: &WeakConfig,
    rng: &mut impl Rng,
) -> WeakParams {
    let rot90: u8 = if cfg.rot90 {
        rng.random_range(0..4u8)
    } else {
        0
    };
    let (rw, rh) = if rot90 % 2 == 1 {
        (height, width)
    } else {
        (width, height)
    };
    let scale = uniform(rng, cfg.scale_min, cfg.scale_max);
    let sw = ((rw as f64 * scale).round() as usize).max(1);
    let sh = ((rh as f64 * scale).round() as usize).max(1);
    let (tw, th) = (cfg.crop_width, cfg.crop_height);
    let mut axis = |s: usize, t: usize| -> (usize, usize, usize) {
        // (src offset, dst offset, copy length)
        if s >= t {
            (rng.random_range(0..=s - t), 0, t)
        } else {
            (0, rng.random_range(0..=t - s), s)
        }
    };
    let (src_x, dst_x, copy_width) = axis(sw, tw);
    let (src_y, dst_y, copy_height) = axis(sh, th);
    let hflip = coin(rng, cfg.hflip_p);
    let vflip = if cfg.vflip {
        coin(rng, cfg.vflip_p)
    } else {
        false
    };
    WeakParams {
        in_width: width,
        in_height: height,
        rot90,
        scale,
        scaled_width: sw,
        scaled_height: sh,
        src_x,
        src_y,
        copy_width,
        copy_height,
        dst_x,
        dst_y,
        out_width: tw,
        out_height: th,
        hflip,
        vflip,
    }
}

/// Applies weak geometry to an image (bilinear; padding with `pad_value`).
pub fn apply_weak_image(img: &Image, p: &WeakParams, pad_value: f32) -> Image {
    assert_eq!(
        (img.width, img.height),
        (p.in_width, p.in_height),
        "weak params drawn for another size"
    );
    let rotated;
    let src = if p.rot90.is_multiple_of(4) {
        img
    } else {
        rotated = rot90_image(img, p.rot90);
        &rotated
    };
    let win = resample_window(
        src,
        p.scaled_width,
        p.scaled_height,
        p.src_x,
        p.copy_width,
        p.src_y,
        p.copy_height,
    );
    let (tw, th) = (p.out_width, p.out_height);
    let mut out = if p.copy_width == tw && p.copy_height == th {
        Image {
            width: tw,
            height: th,
            data: win,
        }
    } else {
        let mut o = Image {
            width: tw,
            height: th,
            data: vec![pad_value; CHANNELS * tw * th],
        };
        for c in 0..CHANNELS {
            let wp = &win[c * p.copy_width * p.copy_height..(c + 1) * p.copy_width * p.copy_height];
            let op = o.plane_mut(c);
            for y in 0..p.copy_height {
                let d = (p.dst_y + y) * tw + p.dst_x;
                op[d..d + p.copy_width]
                    .copy_from_slice(&wp[y * p.copy_width..(y + 1) * p.copy_width]);
            }
        }
        o
    };
    if p.hflip {
        hflip_image(&mut out);
    }
    if p.vflip {
        vflip_image(&mut out);
    }
    out
}

/// Applies weak geometry to any per-pixel map (labels, masks): nearest neighbour, padding with
/// `fill`.
pub fn apply_weak_plane<T: Copy>(src: &[T], p: &WeakParams, fill: T) -> Vec<T> {
    assert_eq!(
        src.len(),
        p.in_width * p.in_height,
        "plane size does not match the weak params"
    );
    let (r, rw, rh) = rot90_plane(src, p.in_width, p.in_height, p.rot90);
    let win = nearest_window(
        &r,
        rw,
        rh,
        p.scaled_width,
        p.scaled_height,
        p.src_x,
        p.copy_width,
        p.src_y,
        p.copy_height,
    );
    let (tw, th) = (p.out_width, p.out_height);
    let mut out = if p.copy_width == tw && p.copy_height == th {
        win
    } else {
        let mut o = vec![fill; tw * th];
        for y in 0..p.copy_height {
            let d = (p.dst_y + y) * tw + p.dst_x;
            o[d..d + p.copy_width].copy_from_slice(&win[y * p.copy_width..(y + 1) * p.copy_width]);
        }
        o
    };
    if p.hflip {
        hflip_plane(&mut out, tw);
    }
    if p.vflip {
        vflip_plane(&mut out, tw, th);
    }
    out
}

/// A weak view of an image and its optional label (`H x W`, padded with [`IGNORE`]).
pub fn weak_view(
    img: &Image,
    label: Option<&[u8]>,
    cfg: &WeakConfig,
    rng: &mut impl Rng,
) -> Result<(Image, Option<Vec<u8>>), String> {
    cfg.validate()?;
    if img.data.len() != CHANNELS * img.width * img.height || img.width == 0 || img.height == 0 {
        return Err(format!(
            "malformed {}x{} image with {} values",
            img.width,
            img.height,
            img.data.len()
        ));
    }
    if let Some(l) = label {
        if l.len() != img.width * img.height {
            return Err(format!(
                "label has {} pixels, image {}x{} has {}",
                l.len(),
                img.width,
                img.height,
                img.width * img.height
            ));
        }
    }
    let p = sample_weak_params(img.width, img.height, cfg, rng);
    let out = apply_weak_image(img, &p, cfg.pad_value);
    let lab = label.map(|l| apply_weak_plane(l, &p, IGNORE));
    Ok((out, lab))
}

// ---------------------------------------------------------------------------------------------
// Photometric operations (in place, deterministic)
// ---------------------------------------------------------------------------------------------

const GRAY_W: [f32; 3] = [0.2989, 0.587, 0.114];

/// Grayscale value per pixel (ITU-R 601, torchvision weights).
pub fn gray_plane(img: &Image) -> Vec<f32> {
    let (r, g, b) = (img.plane(0), img.plane(1), img.plane(2));
    r.iter()
        .zip(g)
        .zip(b)
        .map(|((r, g), b)| GRAY_W[0] * r + GRAY_W[1] * g + GRAY_W[2] * b)
        .collect()
}

/// Brightness: `clamp(f * img)`.
pub fn adjust_brightness(img: &mut Image, f: f32) {
    for v in img.data.iter_mut() {
        *v = (f * *v).clamp(0.0, 1.0);
    }
}

/// Contrast: `clamp(f * img + (1 - f) * mean(gray(img)))`.
pub fn adjust_contrast(img: &mut Image, f: f32) {
    let g = gray_plane(img);
    let mean = (g.iter().map(|&v| v as f64).sum::<f64>() / g.len() as f64) as f32;
    let m = (1.0 - f) * mean;
    for v in img.data.iter_mut() {
        *v = (f * *v + m).clamp(0.0, 1.0);
    }
}

/// Saturation: `clamp(f * img + (1 - f) * gray(img))`.
pub fn adjust_saturation(img: &mut Image, f: f32) {
    let g = gray_plane(img);
    let n = g.len();
    for c in 0..CHANNELS {
        let p = &mut img.data[c * n..(c + 1) * n];
        for (v, gv) in p.iter_mut().zip(&g) {
            *v = (f * *v + (1.0 - f) * gv).clamp(0.0, 1.0);
        }
    }
}

#[inline]
fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    // torchvision _rgb2hsv
    let maxc = r.max(g).max(b);
    let minc = r.min(g).min(b);
    let eqc = maxc == minc;
    let cr = maxc - minc;
    let s = cr / if eqc { 1.0 } else { maxc };
    let crd = if eqc { 1.0 } else { cr };
    let rc = (maxc - r) / crd;
    let gc = (maxc - g) / crd;
    let bc = (maxc - b) / crd;
    let h = if maxc == r {
        bc - gc
    } else if maxc == g {
        2.0 + rc - bc
    } else {
        4.0 + gc - rc
    };
    let h = (h / 6.0 + 1.0).rem_euclid(1.0);
    (h, s, maxc)
}

#[inline]
fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
    // torchvision _hsv2rgb
    let h6 = h * 6.0;
    let i = h6.floor();
    let f = h6 - i;
    let i = (i as i32).rem_euclid(6);
    let p = (v * (1.0 - s)).clamp(0.0, 1.0);
    let q = (v * (1.0 - s * f)).clamp(0.0, 1.0);
    let t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0);
    match i {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}

/// Hue: rotate the hue by `shift` (fraction of the circle, `[-0.5, 0.5]`).
pub fn adjust_hue(img: &mut Image, shift: f32) {
    let (r, g, b) = img.planes_mut();
    for ((r, g), b) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()) {
        let (h, s, v) = rgb_to_hsv(*r, *g, *b);
        let h = (h + shift).rem_euclid(1.0);
        let (nr, ng, nb) = hsv_to_rgb(h, s, v);
        *r = nr.clamp(0.0, 1.0);
        *g = ng.clamp(0.0, 1.0);
        *b = nb.clamp(0.0, 1.0);
    }
}

/// Replaces every channel with the grayscale value.
pub fn grayscale(img: &mut Image) {
    let g = gray_plane(img);
    for c in 0..CHANNELS {
        img.plane_mut(c).copy_from_slice(&g);
    }
}

/// Colour-jitter parameters: order of the four operations (0 brightness, 1 contrast,
/// 2 saturation, 3 hue) and their factors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JitterParams {
    pub order: [u8; 4],
    pub brightness: f32,
    pub contrast: f32,
    pub saturation: f32,
    pub hue: f32,
}

impl JitterParams {
    /// Factors that leave the image unchanged.
    pub fn identity() -> Self {
        Self {
            order: [0, 1, 2, 3],
            brightness: 1.0,
            contrast: 1.0,
            saturation: 1.0,
            hue: 0.0,
        }
    }
}

/// Applies colour jitter in `p.order`.
pub fn color_jitter(img: &mut Image, p: &JitterParams) {
    for &op in &p.order {
        match op {
            0 => adjust_brightness(img, p.brightness),
            1 => adjust_contrast(img, p.contrast),
            2 => adjust_saturation(img, p.saturation),
            _ => adjust_hue(img, p.hue),
        }
    }
}

/// Gaussian kernel of size `2 * ceil(3 sigma) + 1`, normalised.
pub fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    let sigma = sigma.max(1e-6);
    let r = (3.0 * sigma).ceil() as usize;
    let k: Vec<f64> = (0..=2 * r)
        .map(|i| {
            let x = i as f64 - r as f64;
            (-(x * x) / (2.0 * (sigma as f64) * (sigma as f64))).exp()
        })
        .collect();
    let s: f64 = k.iter().sum();
    k.iter().map(|v| (v / s) as f32).collect()
}

/// Reflect index (`torch` 'reflect': the edge is not repeated), periodic for any offset.
#[inline]
fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    (if m >= n as isize { period - m } else { m }) as usize
}

/// Separable Gaussian blur with reflect padding, in place.
pub fn gaussian_blur(img: &mut Image, sigma: f32) {
    let k = gaussian_kernel(sigma);
    let r = k.len() / 2;
    let (w, h) = (img.width, img.height);
    let mut padded = vec![0.0f32; w + 2 * r];
    let mut tmp = vec![0.0f32; w * h];
    for c in 0..CHANNELS {
        let p = img.plane_mut(c);
        // Horizontal.
        for y in 0..h {
            let row = &p[y * w..(y + 1) * w];
            padded[r..r + w].copy_from_slice(row);
            for i in 0..r {
                padded[i] = row[reflect(i as isize - r as isize, w)];
                padded[r + w + i] = row[reflect((w + i) as isize, w)];
            }
            let out = &mut tmp[y * w..(y + 1) * w];
            for (x, o) in out.iter_mut().enumerate() {
                let win = &padded[x..x + k.len()];
                *o = win.iter().zip(&k).map(|(a, b)| a * b).sum();
            }
        }
        // Vertical, row by row.
        for y in 0..h {
            let out = &mut p[y * w..(y + 1) * w];
            out.fill(0.0);
            for (j, &kj) in k.iter().enumerate() {
                let sy = reflect(y as isize + j as isize - r as isize, h);
                let src = &tmp[sy * w..(sy + 1) * w];
                for (o, s) in out.iter_mut().zip(src) {
                    *o += kj * s;
                }
            }
            for o in out.iter_mut() {
                *o = o.clamp(0.0, 1.0);
            }
        }
    }
}

/// skimage's `rgb_from_hed` (Ruifrok & Johnston): row `k` is the RGB optical density of stain
/// `k` (haematoxylin, eosin, DAB).
pub const RGB_FROM_HED: [[f64; 3]; 3] =
    [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]];

/// Lower bound of RGB values before the logarithm (skimage's 1e-6).
pub const OD_EPS: f32 = 1e-6;

fn inverse3(m: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    let mut inv = [[0.0; 3]; 3];
    for (i, row) in inv.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            let (a, b) = ((j + 1) % 3, (j + 2) % 3);
            let (c, d) = ((i + 1) % 3, (i + 2) % 3);
            *v = (m[a][c] * m[b][d] - m[a][d] * m[b][c]) / det;
        }
    }
    inv
}

/// skimage's `hed_from_rgb`, the inverse of [`RGB_FROM_HED`].
pub fn hed_from_rgb() -> [[f64; 3]; 3] {
    inverse3(&RGB_FROM_HED)
}

/// Stain concentrations (HED, optical-density units, not clamped) per pixel: three planes.
pub fn rgb_to_hed(img: &Image) -> [Vec<f32>; 3] {
    let m = hed_from_rgb();
    let m: [[f32; 3]; 3] = m.map(|r| r.map(|v| v as f32));
    let n = img.plane_len();
    let mut out = [vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]];
    let (r, g, b) = (img.plane(0), img.plane(1), img.plane(2));
    for i in 0..n {
        let od = [
            -r[i].max(OD_EPS).ln(),
            -g[i].max(OD_EPS).ln(),
            -b[i].max(OD_EPS).ln(),
        ];
        for (k, o) in out.iter_mut().enumerate() {
            o[i] = od[0] * m[0][k] + od[1] * m[1][k] + od[2] * m[2][k];
        }
    }
    out
}

/// RGB from stain concentrations (optical-density units), clamped to [0, 1].
pub fn hed_to_rgb(hed: &[Vec<f32>; 3], width: usize, height: usize) -> Image {
    let m: [[f32; 3]; 3] = RGB_FROM_HED.map(|r| r.map(|v| v as f32));
    let n = width * height;
    let mut img = Image {
        width,
        height,
        data: vec![0.0; CHANNELS * n],
    };
    let (r, g, b) = img.planes_mut();
    for i in 0..n {
        let s = [hed[0][i], hed[1][i], hed[2][i]];
        let od = |c: usize| s[0] * m[0][c] + s[1] * m[1][c] + s[2] * m[2][c];
        r[i] = (-od(0)).exp().clamp(0.0, 1.0);
        g[i] = (-od(1)).exp().clamp(0.0, 1.0);
        b[i] = (-od(2)).exp().clamp(0.0, 1.0);
    }
    img
}

/// Stain-jitter parameters: per stain (H, E, D) `c' = scale * c + shift`, in optical density.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StainParams {
    pub scale: [f32; 3],
    /// Shift in natural-log optical-density units.
    pub shift_od: [f32; 3],
}

/// H&E stain jitter, in place: deconvolve to HED, scale and shift, recombine, clamp.
pub fn stain_jitter(img: &mut Image, p: &StainParams) {
    let mut f = [[0.0f32; 3]; 3];
    // Fused: od' = (od @ hed_from_rgb * scale + shift) @ rgb_from_hed = od @ A + bias.
    let inv = hed_from_rgb();
    for (i, row) in f.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = (0..3)
                .map(|k| inv[i][k] * p.scale[k] as f64 * RGB_FROM_HED[k][j])
                .sum::<f64>() as f32;
        }
    }
    let bias: [f32; 3] = std::array::from_fn(|j| {
        (0..3)
            .map(|k| p.shift_od[k] as f64 * RGB_FROM_HED[k][j])
            .sum::<f64>() as f32
    });
    let (r, g, b) = img.planes_mut();
    for ((r, g), b) in r.iter_mut().zip(g.iter_mut()).zip(b.iter_mut()) {
        let od = [
            -r.max(OD_EPS).ln(),
            -g.max(OD_EPS).ln(),
            -b.max(OD_EPS).ln(),
        ];
        let o = |j: usize| od[0] * f[0][j] + od[1] * f[1][j] + od[2] * f[2][j] + bias[j];
        *r = (-o(0)).exp().clamp(0.0, 1.0);
        *g = (-o(1)).exp().clamp(0.0, 1.0);
        *b = (-o(2)).exp().clamp(0.0, 1.0);
    }
}

// ---------------------------------------------------------------------------------------------
// Strong view
// ---------------------------------------------------------------------------------------------

/// The photometric operations of one strong view, sampled by [`sample_strong_params`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StrongParams {
    pub jitter: Option<JitterParams>,
    pub grayscale: bool,
    pub blur_sigma: Option<f32>,
    pub stain: Option<StainParams>,
    pub stain_first: bool,
}

/// Draws the photometric operations of a strong view. Every decision consumes the RNG whether
/// or not the operation fires, so the stream does not depend on earlier outcomes.
pub fn sample_strong_params(cfg: &StrongConfig, rng: &mut impl Rng) -> StrongParams {
    fn fac(rng: &mut impl Rng, x: f64) -> f32 {
        uniform(rng, (1.0 - x).max(0.0), 1.0 + x) as f32
    }
    let jitter_on = coin(rng, cfg.jitter_p);
    let mut order = [0u8, 1, 2, 3];
    order.shuffle(rng);
    let jitter = JitterParams {
        order,
        brightness: fac(rng, cfg.brightness),
        contrast: fac(rng, cfg.contrast),
        saturation: fac(rng, cfg.saturation),
        hue: uniform(rng, -cfg.hue, cfg.hue) as f32,
    };
    let gray = coin(rng, cfg.grayscale_p);
    let blur_on = coin(rng, cfg.blur_p);
    let sigma = uniform(rng, cfg.blur_sigma_min, cfg.blur_sigma_max) as f32;
    let stain_on = coin(rng, cfg.stain_p);
    let unit = match cfg.stain_units {
        StainUnits::OpticalDensity => 1.0,
        StainUnits::Skimage => -(OD_EPS as f64).ln(),
    };
    let scale: [f32; 3] =
        std::array::from_fn(|_| uniform(rng, 1.0 - cfg.stain_scale, 1.0 + cfg.stain_scale) as f32);
    let shift_od: [f32; 3] =
        std::array::from_fn(|_| (uniform(rng, -cfg.stain_shift, cfg.stain_shift) * unit) as f32);
    StrongParams {
        jitter: jitter_on.then_some(jitter),
        grayscale: gray,
        blur_sigma: blur_on.then_some(sigma),
        stain: stain_on.then_some(StainParams { scale, shift_od }),
        stain_first: cfg.stain_first,
    }
}

/// Applies the photometric operations of a strong view, in place.
pub fn apply_strong(img: &mut Image, p: &StrongParams) {
    if p.stain_first {
        if let Some(s) = &p.stain {
            stain_jitter(img, s);
        }
    }
    if let Some(j) = &p.jitter {
        color_jitter(img, j);
    }
    if p.grayscale {
        grayscale(img);
    }
    if let Some(s) = p.blur_sigma {
        gaussian_blur(img, s);
    }
    if !p.stain_first {
        if let Some(s) = &p.stain {
            stain_jitter(img, s);
        }
    }
}

/// A strong view of an (already weak) image: photometric only, so labels are unchanged.
/// CutMix is drawn separately with [`cutmix_box`].
pub fn strong_view(img: &Image, cfg: &StrongConfig, rng: &mut impl Rng) -> Result<Image, String> {
    cfg.validate()?;
    let p = sample_strong_params(cfg, rng);
    let mut out = img.clone();
    apply_strong(&mut out, &p);
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// CutMix
// ---------------------------------------------------------------------------------------------

/// A CutMix box, `[x0, x1) x [y0, y1)` in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CutBox {
    pub x0: usize,
    pub y0: usize,
    pub x1: usize,
    pub y1: usize,
}

impl CutBox {
    pub fn width(&self) -> usize {
        self.x1 - self.x0
    }
    pub fn height(&self) -> usize {
        self.y1 - self.y0
    }
    pub fn area(&self) -> usize {
        self.width() * self.height()
    }
    pub fn contains(&self, x: usize, y: usize) -> bool {
        (self.x0..self.x1).contains(&x) && (self.y0..self.y1).contains(&y)
    }
}

/// Draws a CutMix box for a `width x height` image: `None` with probability `1 - cutmix_p`.
/// Consumes one `f64` for the decision, then draws the box only when it fires.
pub fn cutmix_box(
    width: usize,
    height: usize,
    cfg: &StrongConfig,
    rng: &mut impl Rng,
) -> Option<CutBox> {
    if !coin(rng, cfg.cutmix_p) {
        return None;
    }
    Some(sample_cut_box(width, height, cfg, rng))
}

/// Draws a box unconditionally: area fraction uniform in `[cutmix_area_min, cutmix_area_max]`,
/// aspect `h / w` uniform (or log-uniform) in `[cutmix_aspect_min, cutmix_aspect_max]`,
/// `w = round(sqrt(A / aspect))`, `h = round(sqrt(A * aspect))`; an aspect that does not fit
/// the image is redrawn (as UniMatch does), up to 100 times, then the box is clamped; the
/// position is uniform over the positions where the box fits.
pub fn sample_cut_box(
    width: usize,
    height: usize,
    cfg: &StrongConfig,
    rng: &mut impl Rng,
) -> CutBox {
    let area = uniform(rng, cfg.cutmix_area_min, cfg.cutmix_area_max) * (width * height) as f64;
    let (mut bw, mut bh) = (width, height);
    for _ in 0..100 {
        let aspect = if cfg.cutmix_log_aspect {
            uniform(rng, cfg.cutmix_aspect_min.ln(), cfg.cutmix_aspect_max.ln()).exp()
        } else {
            uniform(rng, cfg.cutmix_aspect_min, cfg.cutmix_aspect_max)
        };
        let w = ((area / aspect).sqrt().round() as usize).max(1);
        let h = ((area * aspect).sqrt().round() as usize).max(1);
        if w <= width && h <= height {
            bw = w;
            bh = h;
            break;
        }
        bw = w.min(width);
        bh = h.min(height);
    }
    let x0 = rng.random_range(0..=width - bw);
    let y0 = rng.random_range(0..=height - bh);
    CutBox {
        x0,
        y0,
        x1: x0 + bw,
        y1: y0 + bh,
    }
}

/// Copies the box from `src` into `dst`; both are `width x height` planes of any pixel type
/// (labels, pseudo-labels, confidence masks, one image channel).
pub fn paste_box<T: Copy>(dst: &mut [T], src: &[T], width: usize, height: usize, b: &CutBox) {
    assert_eq!(dst.len(), width * height, "paste_box: dst size");
    assert_eq!(src.len(), width * height, "paste_box: src size");
    assert!(
        b.x1 <= width && b.y1 <= height && b.x0 <= b.x1 && b.y0 <= b.y1,
        "paste_box: box outside the plane"
    );
    for y in b.y0..b.y1 {
        let r = y * width;
        dst[r + b.x0..r + b.x1].copy_from_slice(&src[r + b.x0..r + b.x1]);
    }
}

/// Copies the box from `src` into `dst` in all three channels.
pub fn paste_box_image(dst: &mut Image, src: &Image, b: &CutBox) {
    assert_eq!(
        (dst.width, dst.height),
        (src.width, src.height),
        "paste_box_image: sizes differ"
    );
    let (w, h) = (dst.width, dst.height);
    for c in 0..CHANNELS {
        paste_box(dst.plane_mut(c), src.plane(c), w, h, b);
    }
}

/// `width x height` mask, true inside the box.
pub fn box_mask(width: usize, height: usize, b: &CutBox) -> Vec<bool> {
    let mut m = vec![false; width * height];
    for y in b.y0..b.y1.min(height) {
        m[y * width + b.x0..y * width + b.x1.min(width)].fill(true);
    }
    m
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    fn random_image(w: usize, h: usize, seed: u64) -> Image {
        let mut r = rng(seed);
        Image::new(w, h, (0..3 * w * h).map(|_| r.random::<f32>()).collect()).unwrap()
    }

    /// Smooth H&E-like image (pinkish background, purple blobs).
    fn he_like(w: usize, h: usize) -> Image {
        let mut img = Image::filled(w, h, [0.9, 0.7, 0.85]);
        let n = w * h;
        for y in 0..h {
            for x in 0..w {
                let d = ((x as f32 - w as f32 * 0.4).powi(2) + (y as f32 - h as f32 * 0.6).powi(2))
                    .sqrt();
                if d < w as f32 * 0.2 {
                    img.data[y * w + x] = 0.35;
                    img.data[n + y * w + x] = 0.2;
                    img.data[2 * n + y * w + x] = 0.55;
                }
            }
        }
        img
    }

    fn assert_close(a: &Image, b: &Image, tol: f32) {
        assert_eq!((a.width, a.height), (b.width, b.height));
        let m = a
            .data
            .iter()
            .zip(&b.data)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(m <= tol, "max abs diff {m} > {tol}");
    }

    #[test]
    fn image_constructors_validate() {
        assert!(Image::new(2, 2, vec![0.0; 12]).is_ok());
        assert!(Image::new(2, 2, vec![0.0; 11]).is_err());
        assert!(Image::new(0, 2, vec![]).is_err());
        let img = Image::from_rgb8(2, 1, &[255, 0, 51, 0, 255, 0]).unwrap();
        assert_eq!(img.plane(0), &[1.0, 0.0]);
        assert_eq!(img.plane(1), &[0.0, 1.0]);
        assert!((img.get(2, 0, 0) - 0.2).abs() < 1e-7);
    }

    #[test]
    fn plane_rotations_and_flips() {
        // [[1, 2, 3], [4, 5, 6]] (w 3, h 2)
        let p = [1, 2, 3, 4, 5, 6];
        let (r1, w1, h1) = rot90_plane(&p, 3, 2, 1);
        assert_eq!((w1, h1), (2, 3));
        assert_eq!(r1, vec![3, 6, 2, 5, 1, 4]); // numpy.rot90
        let (r2, _, _) = rot90_plane(&p, 3, 2, 2);
        assert_eq!(r2, vec![6, 5, 4, 3, 2, 1]);
        let (r3, w3, h3) = rot90_plane(&p, 3, 2, 3);
        assert_eq!((w3, h3), (2, 3));
        assert_eq!(r3, vec![4, 1, 5, 2, 6, 3]);
        // Four quarter turns are the identity; 1 then 3 too.
        let (b, bw, bh) = rot90_plane(&r1, w1, h1, 3);
        assert_eq!((b, bw, bh), (p.to_vec(), 3, 2));
        let mut f = p;
        hflip_plane(&mut f, 3);
        assert_eq!(f, [3, 2, 1, 6, 5, 4]);
        let mut f = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        vflip_plane(&mut f, 3, 3);
        assert_eq!(f, [7, 8, 9, 4, 5, 6, 1, 2, 3]);
    }

    #[test]
    fn resize_identity_and_constant() {
        let img = random_image(17, 11, 1);
        assert_close(&resize_bilinear(&img, 17, 11), &img, 1e-6);
        let c = Image::filled(20, 20, [0.3, 0.6, 0.9]);
        for (w, h) in [(10, 10), (40, 33), (7, 31)] {
            let r = resize_bilinear(&c, w, h);
            assert_close(&r, &Image::filled(w, h, [0.3, 0.6, 0.9]), 1e-5);
        }
        // Halving averages 2x2 blocks of a checkerboard (antialiased).
        let mut cb = Image::filled(8, 8, [0.0; 3]);
        for y in 0..8 {
            for x in 0..8 {
                if (x + y) % 2 == 0 {
                    for c in 0..3 {
                        cb.data[c * 64 + y * 8 + x] = 1.0;
                    }
                }
            }
        }
        let r = resize_bilinear(&cb, 4, 4);
        assert!(
            r.data.iter().all(|v| (v - 0.5).abs() < 0.15),
            "{:?}",
            r.data
        );
        let l: Vec<u8> = (0..16).collect();
        assert_eq!(resize_nearest(&l, 4, 4, 2, 2), vec![5, 7, 13, 15]);
        assert_eq!(resize_nearest(&[1u8, 2], 2, 1, 4, 1), vec![1, 1, 2, 2]);
    }

    /// Image whose R channel equals label / 255; green marks the pixel as real.
    fn coded(w: usize, h: usize) -> (Image, Vec<u8>) {
        let n = w * h;
        let label: Vec<u8> = (0..n).map(|i| ((i * 7 + i / w) % 250) as u8).collect();
        let mut img = Image::filled(w, h, [0.0, 1.0, 0.5]);
        for i in 0..n {
            img.data[i] = label[i] as f32 / 255.0;
        }
        (img, label)
    }

    #[test]
    fn weak_geometry_moves_labels_with_the_image() {
        // Scale fixed at 1: every output pixel is a copy of an input pixel or padding.
        let (img, label) = coded(23, 14);
        let cfg = WeakConfig {
            crop_width: 20,
            crop_height: 18,
            scale_min: 1.0,
            scale_max: 1.0,
            ..Default::default()
        };
        let mut seen_rot = [false; 4];
        let mut seen_flip = [false; 2];
        let mut r = rng(5);
        for _ in 0..64 {
            let p = sample_weak_params(23, 14, &cfg, &mut r);
            seen_rot[p.rot90 as usize] = true;
            seen_flip[0] |= p.hflip;
            seen_flip[1] |= p.vflip;
            let oi = apply_weak_image(&img, &p, 0.0);
            let ol = apply_weak_plane(&label, &p, IGNORE);
            assert_eq!((oi.width, oi.height, ol.len()), (20, 18, 360));
            for i in 0..360 {
                if ol[i] == IGNORE {
                    assert_eq!(
                        (oi.data[i], oi.data[360 + i], oi.data[720 + i]),
                        (0.0, 0.0, 0.0)
                    );
                } else {
                    assert_eq!(oi.data[360 + i], 1.0);
                    assert!(
                        (oi.data[i] * 255.0 - ol[i] as f32).abs() < 1e-3,
                        "pixel {i}"
                    );
                }
            }
        }
        assert!(seen_rot.iter().all(|&s| s) && seen_flip.iter().all(|&s| s));
    }

    #[test]
    fn weak_geometry_matches_explicit_transforms() {
        let (img, label) = coded(6, 4);
        let p = WeakParams {
            in_width: 6,
            in_height: 4,
            rot90: 1,
            scale: 1.0,
            scaled_width: 4,
            scaled_height: 6,
            src_x: 0,
            src_y: 0,
            copy_width: 4,
            copy_height: 6,
            dst_x: 0,
            dst_y: 0,
            out_width: 4,
            out_height: 6,
            hflip: true,
            vflip: true,
        };
        let (mut want, w, h) = rot90_plane(&label, 6, 4, 1);
        hflip_plane(&mut want, w);
        vflip_plane(&mut want, w, h);
        assert_eq!(apply_weak_plane(&label, &p, IGNORE), want);
        let oi = apply_weak_image(&img, &p, 0.0);
        let r: Vec<u8> = oi
            .plane(0)
            .iter()
            .map(|v| (v * 255.0).round() as u8)
            .collect();
        assert_eq!(r, want);
    }

    #[test]
    fn scaled_labels_follow_image_blocks() {
        // Four quadrants of distinct colour and label; after any weak view, label and image
        // agree away from block borders.
        let (w, h) = (64, 48);
        let mut img = Image::filled(w, h, [0.0; 3]);
        let mut label = vec![0u8; w * h];
        for y in 0..h {
            for x in 0..w {
                let q = (if x >= w / 2 { 1 } else { 0 }) + (if y >= h / 2 { 2 } else { 0 });
                label[y * w + x] = q as u8;
                img.data[y * w + x] = (q as f32 + 1.0) / 5.0;
            }
        }
        let cfg = WeakConfig {
            crop_width: 56,
            crop_height: 56,
            ..Default::default()
        };
        let mut r = rng(9);
        for _ in 0..20 {
            let (oi, ol) = weak_view(&img, Some(&label), &cfg, &mut r).unwrap();
            let ol = ol.unwrap();
            let (mut agree, mut total) = (0, 0);
            for i in 0..56 * 56 {
                if ol[i] != IGNORE {
                    total += 1;
                    if (oi.data[i] - (ol[i] as f32 + 1.0) / 5.0).abs() < 1e-4 {
                        agree += 1;
                    }
                }
            }
            assert!(total > 0);
            assert!(agree as f64 >= 0.85 * total as f64, "{agree}/{total}");
        }
    }

    #[test]
    fn padding_uses_ignore_and_zero() {
        let (img, label) = coded(32, 32);
        let cfg = WeakConfig {
            crop_width: 64,
            crop_height: 48,
            scale_min: 1.0,
            scale_max: 1.0,
            ..Default::default()
        };
        let (oi, ol) = weak_view(&img, Some(&label), &cfg, &mut rng(3)).unwrap();
        let ol = ol.unwrap();
        assert_eq!(
            ol.iter().filter(|&&v| v == IGNORE).count(),
            64 * 48 - 32 * 32
        );
        let n = 64 * 48;
        for i in 0..n {
            if ol[i] == IGNORE {
                assert!(oi.data[i] == 0.0 && oi.data[n + i] == 0.0 && oi.data[2 * n + i] == 0.0);
            }
        }
        // Shrinking always pads: 0.5 x 64 = 32 pixels per side of a 64 crop.
        let (img, label) = coded(64, 64);
        let cfg = WeakConfig {
            crop_width: 64,
            crop_height: 64,
            scale_min: 0.5,
            scale_max: 0.5,
            ..Default::default()
        };
        let (_, ol) = weak_view(&img, Some(&label), &cfg, &mut rng(4)).unwrap();
        assert_eq!(
            ol.unwrap().iter().filter(|&&v| v == IGNORE).count(),
            64 * 64 - 32 * 32
        );
    }

    #[test]
    fn weak_view_is_deterministic() {
        let img = random_image(40, 30, 2);
        let label: Vec<u8> = (0..1200).map(|i| (i % 6) as u8).collect();
        let cfg = WeakConfig {
            crop_width: 32,
            crop_height: 32,
            ..Default::default()
        };
        let a = weak_view(&img, Some(&label), &cfg, &mut rng(77)).unwrap();
        let b = weak_view(&img, Some(&label), &cfg, &mut rng(77)).unwrap();
        assert_eq!(a, b);
        let c = weak_view(&img, Some(&label), &cfg, &mut rng(78)).unwrap();
        assert_ne!(a, c);
        assert!(a.0.is_valid_unit());
        // Without a label.
        let d = weak_view(&img, None, &cfg, &mut rng(77)).unwrap();
        assert_eq!(d.0, a.0);
        assert!(d.1.is_none());
    }

    #[test]
    fn weak_view_errors() {
        let img = random_image(8, 8, 1);
        assert!(weak_view(&img, Some(&[0u8; 10]), &WeakConfig::default(), &mut rng(1)).is_err());
        let bad = WeakConfig {
            scale_min: 2.0,
            scale_max: 1.0,
            ..Default::default()
        };
        assert!(weak_view(&img, None, &bad, &mut rng(1)).is_err());
        let bad = WeakConfig {
            hflip_p: 1.5,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
        let bad = WeakConfig {
            crop_width: 0,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
        assert!(WeakConfig::default().validate().is_ok());
    }

    #[test]
    fn grayscale_gives_equal_channels() {
        let mut img = random_image(9, 7, 4);
        let want = 0.2989 * img.get(0, 3, 3) + 0.587 * img.get(1, 3, 3) + 0.114 * img.get(2, 3, 3);
        grayscale(&mut img);
        assert_eq!(img.plane(0), img.plane(1));
        assert_eq!(img.plane(1), img.plane(2));
        assert!((img.get(0, 3, 3) - want).abs() < 1e-6);
    }

    #[test]
    fn blur_preserves_constant_image_and_mean() {
        for sigma in [0.1f32, 0.7, 2.0] {
            let mut c = Image::filled(13, 9, [0.25, 0.5, 0.75]);
            gaussian_blur(&mut c, sigma);
            assert_close(&c, &Image::filled(13, 9, [0.25, 0.5, 0.75]), 1e-6);
        }
        assert_eq!(gaussian_kernel(2.0).len(), 13);
        assert_eq!(gaussian_kernel(0.1).len(), 3);
        // A random image keeps its mean roughly and gets smoother.
        let img = random_image(32, 32, 5);
        let mut b = img.clone();
        gaussian_blur(&mut b, 1.5);
        let mean = |i: &Image| i.data.iter().sum::<f32>() / i.data.len() as f32;
        assert!((mean(&img) - mean(&b)).abs() < 0.01);
        let var = |i: &Image| {
            let m = mean(i);
            i.data.iter().map(|v| (v - m).powi(2)).sum::<f32>()
        };
        assert!(var(&b) < 0.2 * var(&img));
        // Tiny images (radius larger than the image) still work.
        let mut t = random_image(2, 1, 6);
        gaussian_blur(&mut t, 2.0);
        assert!(t.is_valid_unit());
        assert_eq!(reflect(-1, 5), 1);
        assert_eq!(reflect(5, 5), 3);
        assert_eq!(reflect(-9, 5), 1);
    }

    #[test]
    fn hed_round_trip() {
        let img = random_image(16, 16, 7);
        let hed = rgb_to_hed(&img);
        let back = hed_to_rgb(&hed, 16, 16);
        assert_close(&back, &img, 1e-4);
        let mut j = img.clone();
        stain_jitter(
            &mut j,
            &StainParams {
                scale: [1.0; 3],
                shift_od: [0.0; 3],
            },
        );
        assert_close(&j, &img, 1e-4);
        // Inverse matrix sanity (skimage's hed_from_rgb[0] = [1.878, -1.008, -0.556]).
        let inv = hed_from_rgb();
        assert!((inv[0][0] - 1.87798274).abs() < 1e-6 && (inv[0][1] + 1.00767869).abs() < 1e-6);
        // Pure haematoxylin: white with H only gives a stain vector along H.
        let h_only = [vec![0.5f32], vec![0.0], vec![0.0]];
        let px = hed_to_rgb(&h_only, 1, 1);
        let again = rgb_to_hed(&px);
        assert!(
            (again[0][0] - 0.5).abs() < 1e-4
                && again[1][0].abs() < 1e-4
                && again[2][0].abs() < 1e-4
        );
    }

    #[test]
    fn stain_jitter_changes_stains_as_asked() {
        let img = he_like(32, 32);
        let mut j = img.clone();
        let p = StainParams {
            scale: [1.05, 0.95, 1.0],
            shift_od: [0.02, -0.01, 0.0],
        };
        stain_jitter(&mut j, &p);
        let (a, b) = (rgb_to_hed(&img), rgb_to_hed(&j));
        // Away from clamping, each stain follows c' = s c + t.
        let i = 16 * 32 + 12; // inside the purple blob
        for k in 0..2 {
            let want = a[k][i] * p.scale[k] + p.shift_od[k];
            assert!(
                (b[k][i] - want).abs() < 1e-3,
                "stain {k}: {} vs {}",
                b[k][i],
                want
            );
        }
        assert!(j.is_valid_unit());
    }

    #[test]
    fn colour_jitter_identity_and_known_values() {
        let img = random_image(12, 10, 8);
        let mut j = img.clone();
        color_jitter(&mut j, &JitterParams::identity());
        assert_close(&j, &img, 1e-5);
        let mut j = img.clone();
        color_jitter(
            &mut j,
            &JitterParams {
                order: [3, 2, 1, 0],
                ..JitterParams::identity()
            },
        );
        assert_close(&j, &img, 1e-5);
        // Brightness 0.5 halves.
        let mut b = img.clone();
        adjust_brightness(&mut b, 0.5);
        for (x, y) in b.data.iter().zip(&img.data) {
            assert!((x - 0.5 * y).abs() < 1e-7);
        }
        // Saturation 0 = grayscale; contrast 0 = mean gray everywhere.
        let mut s = img.clone();
        adjust_saturation(&mut s, 0.0);
        let mut g = img.clone();
        grayscale(&mut g);
        assert_close(&s, &g, 1e-6);
        let mut c = img.clone();
        adjust_contrast(&mut c, 0.0);
        let m = gray_plane(&img).iter().sum::<f32>() / 120.0;
        assert!(c.data.iter().all(|v| (v - m).abs() < 1e-5));
        // Hue +1/3: red -> green -> blue; -1/3 back.
        let mut h = Image::filled(1, 1, [1.0, 0.0, 0.0]);
        adjust_hue(&mut h, 1.0 / 3.0);
        assert_close(&h, &Image::filled(1, 1, [0.0, 1.0, 0.0]), 1e-5);
        adjust_hue(&mut h, 1.0 / 3.0);
        assert_close(&h, &Image::filled(1, 1, [0.0, 0.0, 1.0]), 1e-5);
        adjust_hue(&mut h, -2.0 / 3.0);
        assert_close(&h, &Image::filled(1, 1, [1.0, 0.0, 0.0]), 1e-5);
        // Hue round trip on random colours.
        let mut h = img.clone();
        adjust_hue(&mut h, 0.2);
        adjust_hue(&mut h, -0.2);
        assert_close(&h, &img, 1e-5);
    }

    #[test]
    fn strong_view_deterministic_valid_and_varied() {
        let img = he_like(48, 40);
        let cfg = StrongConfig::default();
        let a = strong_view(&img, &cfg, &mut rng(10)).unwrap();
        let b = strong_view(&img, &cfg, &mut rng(10)).unwrap();
        assert_eq!(a, b);
        let c = strong_view(&img, &cfg, &mut rng(11)).unwrap();
        assert_ne!(a, c);
        let mut r = rng(12);
        let (mut jit, mut gray, mut blur) = (0, 0, 0);
        let rand_img = random_image(24, 24, 13);
        for i in 0..300 {
            let p = sample_strong_params(&cfg, &mut r);
            jit += p.jitter.is_some() as usize;
            gray += p.grayscale as usize;
            blur += p.blur_sigma.is_some() as usize;
            if let Some(s) = p.blur_sigma {
                assert!((0.1..=2.0).contains(&s));
            }
            if let Some(j) = &p.jitter {
                assert!((0.5..=1.5).contains(&j.brightness) && (-0.25..=0.25).contains(&j.hue));
                let mut o = j.order;
                o.sort();
                assert_eq!(o, [0, 1, 2, 3]);
            }
            let s = p.stain.as_ref().unwrap();
            assert!(s.scale.iter().all(|v| (0.95..=1.05).contains(v)));
            assert!(s.shift_od.iter().all(|v| (-0.05..=0.05).contains(v)));
            let mut x = if i % 2 == 0 {
                img.clone()
            } else {
                rand_img.clone()
            };
            apply_strong(&mut x, &p);
            assert!(x.is_valid_unit());
        }
        assert!((200..280).contains(&jit), "{jit}");
        assert!((35..90).contains(&gray), "{gray}");
        assert!((110..190).contains(&blur), "{blur}");
        // Extreme inputs stay finite and in range.
        for fill in [[0.0f32; 3], [1.0; 3]] {
            let x = strong_view(&Image::filled(8, 8, fill), &cfg, &mut r).unwrap();
            assert!(x.is_valid_unit());
        }
        // Skimage units scale the shift by -ln(1e-6).
        let sk = StrongConfig {
            stain_units: StainUnits::Skimage,
            ..Default::default()
        };
        let p = sample_strong_params(&sk, &mut r);
        assert!(p
            .stain
            .unwrap()
            .shift_od
            .iter()
            .all(|v| v.abs() <= 0.05 * 13.82));
    }

    #[test]
    fn strong_config_validation() {
        assert!(StrongConfig::default().validate().is_ok());
        for bad in [
            StrongConfig {
                jitter_p: -0.1,
                ..Default::default()
            },
            StrongConfig {
                hue: 0.6,
                ..Default::default()
            },
            StrongConfig {
                blur_sigma_min: 3.0,
                ..Default::default()
            },
            StrongConfig {
                cutmix_area_max: 1.5,
                ..Default::default()
            },
            StrongConfig {
                cutmix_aspect_min: 0.0,
                ..Default::default()
            },
            StrongConfig {
                stain_scale: f64::NAN,
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        let c: StrongConfig =
            serde_json::from_str(r#"{"blur_p": 0.0, "stain_units": "skimage"}"#).unwrap();
        assert_eq!(c.blur_p, 0.0);
        assert_eq!(c.jitter_p, 0.8);
        assert_eq!(c.stain_units, StainUnits::Skimage);
        let w: WeakConfig = serde_json::from_str(r#"{"crop_width": 128}"#).unwrap();
        assert_eq!((w.crop_width, w.crop_height, w.rot90), (128, 256, true));
    }

    #[test]
    fn cutmix_box_area_aspect_and_probability() {
        let cfg = StrongConfig::default();
        let mut r = rng(14);
        let (w, h) = (256usize, 256usize);
        let (mut some, mut min_f, mut max_f) = (0, 1.0f64, 0.0f64);
        for _ in 0..5000 {
            if let Some(b) = cutmix_box(w, h, &cfg, &mut r) {
                some += 1;
                assert!(b.x0 < b.x1 && b.y0 < b.y1 && b.x1 <= w && b.y1 <= h);
                let f = b.area() as f64 / (w * h) as f64;
                // Rounding of the sides moves the area by at most (w + h) / 2 + 1/4 pixels.
                let tol = (b.width() + b.height()) as f64 / 2.0 / (w * h) as f64 + 1e-9;
                assert!(f >= 0.02 - tol && f <= 0.4 + tol, "area fraction {f}");
                let a = b.height() as f64 / b.width() as f64;
                assert!(a > 0.28 && a < 3.5, "aspect {a}");
                min_f = min_f.min(f);
                max_f = max_f.max(f);
            }
        }
        assert!((2300..2700).contains(&some), "{some}");
        assert!(min_f < 0.03 && max_f > 0.37, "{min_f} {max_f}");
        // Non-square images and log aspect.
        let lg = StrongConfig {
            cutmix_log_aspect: true,
            cutmix_p: 1.0,
            ..Default::default()
        };
        for _ in 0..1000 {
            let b = cutmix_box(40, 200, &lg, &mut r).unwrap();
            assert!(b.x1 <= 40 && b.y1 <= 200 && b.area() > 0);
        }
        // Deterministic.
        let a: Vec<_> = (0..20)
            .map(|_| cutmix_box(64, 64, &cfg, &mut rng(15)))
            .collect();
        let b: Vec<_> = (0..20)
            .map(|_| cutmix_box(64, 64, &cfg, &mut rng(15)))
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn paste_box_copies_inside_only() {
        let b = CutBox {
            x0: 2,
            y0: 1,
            x1: 5,
            y1: 3,
        };
        let mut dst = vec![0u8; 6 * 4];
        let src = vec![9u8; 6 * 4];
        paste_box(&mut dst, &src, 6, 4, &b);
        let m = box_mask(6, 4, &b);
        for y in 0..4 {
            for x in 0..6 {
                let i = y * 6 + x;
                assert_eq!(dst[i] == 9, b.contains(x, y));
                assert_eq!(m[i], b.contains(x, y));
            }
        }
        assert_eq!(dst.iter().filter(|&&v| v == 9).count(), b.area());
        let mut a = Image::filled(6, 4, [0.0; 3]);
        let s = Image::filled(6, 4, [1.0, 0.5, 0.25]);
        paste_box_image(&mut a, &s, &b);
        assert_eq!(a.get(2, 2, 4), 0.25);
        assert_eq!(a.get(0, 0, 0), 0.0);
        assert_eq!(a.plane(1).iter().filter(|&&v| v == 0.5).count(), 6);
    }
}
