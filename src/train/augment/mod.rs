//! Weak and strong views for semi-supervised training, METHOD.md section 2.
//!
//! Images are RGB, planar (CHW), `f32` in `[0, 1]`, before normalisation ([`PlanarImage`]).
//! Labels are `H x W` class maps of `u8` with [`IGNORE`] marking pixels that carry no label.
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
//!
//! One file per concern: `sampling` (RNG draws and parameter checks), `geometry` (quarter turns
//! and flips), `resample` (bilinear and nearest resizing), `weak` (the weak view), `colour`,
//! `blur` and `stain` (the photometric operations), `strong` (the strong view) and `cutmix`.
//!
//! [`PlanarImage`]: crate::imaging::PlanarImage
//! [`IGNORE`]: crate::imaging::IGNORE

mod blur;
mod colour;
mod cutmix;
mod geometry;
mod resample;
mod sampling;
mod stain;
mod strong;
#[cfg(test)]
mod test_support;
mod weak;

pub use blur::{gaussian_blur, gaussian_kernel};
pub use colour::{
    adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation, color_jitter, gray_plane,
    grayscale, JitterParams,
};
pub use cutmix::{box_mask, cutmix_box, paste_box, paste_box_image, sample_cut_box, CutBox};
pub use geometry::{hflip_image, hflip_plane, rot90_image, rot90_plane, vflip_image, vflip_plane};
pub use resample::{resize_bilinear, resize_nearest};
pub use stain::{
    hed_from_rgb, hed_to_rgb, rgb_to_hed, stain_jitter, StainParams, StainUnits, OD_EPS,
    RGB_FROM_HED,
};
pub use strong::{apply_strong, sample_strong_params, strong_view, StrongConfig, StrongParams};
pub use weak::{
    apply_weak_image, apply_weak_plane, sample_weak_params, weak_view, WeakConfig, WeakParams,
};
