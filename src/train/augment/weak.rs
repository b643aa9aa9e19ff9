//! The weak (geometric) view: quarter turn, scale, crop or pad, flips; the same geometry for
//! the image (bilinear) and for any per-pixel map (nearest neighbour).

use super::geometry::{
    hflip_image, hflip_plane, rot90_image, rot90_plane, vflip_image, vflip_plane,
};
use super::resample::{nearest_window, resample_window};
use super::sampling::{check_p, check_range, coin, uniform};
use crate::imaging::{PlanarImage, CHANNELS, IGNORE};
use rand::Rng;
use serde::{Deserialize, Serialize};

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
    /// Mirror left-right, last but one.
    pub hflip: bool,
    /// Mirror top-bottom, last.
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
pub fn apply_weak_image(img: &PlanarImage, p: &WeakParams, pad_value: f32) -> PlanarImage {
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
        PlanarImage {
            width: tw,
            height: th,
            data: win,
        }
    } else {
        let mut o = PlanarImage {
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
    img: &PlanarImage,
    label: Option<&[u8]>,
    cfg: &WeakConfig,
    rng: &mut impl Rng,
) -> Result<(PlanarImage, Option<Vec<u8>>), String> {
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

#[cfg(test)]
#[allow(clippy::needless_range_loop)]
mod tests {
    use super::*;
    use crate::train::augment::test_support::{random_image, rng};

    /// Image whose R channel equals label / 255; green marks the pixel as real.
    fn coded(w: usize, h: usize) -> (PlanarImage, Vec<u8>) {
        let n = w * h;
        let label: Vec<u8> = (0..n).map(|i| ((i * 7 + i / w) % 250) as u8).collect();
        let mut img = PlanarImage::filled(w, h, [0.0, 1.0, 0.5]);
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
        let mut img = PlanarImage::filled(w, h, [0.0; 3]);
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
    fn weak_config_defaults_fill_missing_json_fields() {
        let w: WeakConfig = serde_json::from_str(r#"{"crop_width": 128}"#).unwrap();
        assert_eq!((w.crop_width, w.crop_height, w.rot90), (128, 256, true));
    }
}
