//! Colour operations of the strong view (torchvision semantics), in place and deterministic:
//! brightness, contrast, saturation, hue, grayscale, and colour jitter combining the first four.

use crate::imaging::{PlanarImage, CHANNELS};
use serde::{Deserialize, Serialize};

const GRAY_W: [f32; 3] = [0.2989, 0.587, 0.114];

/// Grayscale value per pixel (ITU-R 601, torchvision weights).
pub fn gray_plane(img: &PlanarImage) -> Vec<f32> {
    let (r, g, b) = (img.plane(0), img.plane(1), img.plane(2));
    r.iter()
        .zip(g)
        .zip(b)
        .map(|((r, g), b)| GRAY_W[0] * r + GRAY_W[1] * g + GRAY_W[2] * b)
        .collect()
}

/// Brightness: `clamp(f * img)`.
pub fn adjust_brightness(img: &mut PlanarImage, f: f32) {
    for v in img.data.iter_mut() {
        *v = (f * *v).clamp(0.0, 1.0);
    }
}

/// Contrast: `clamp(f * img + (1 - f) * mean(gray(img)))`.
pub fn adjust_contrast(img: &mut PlanarImage, f: f32) {
    let g = gray_plane(img);
    let mean = (g.iter().map(|&v| v as f64).sum::<f64>() / g.len() as f64) as f32;
    let m = (1.0 - f) * mean;
    for v in img.data.iter_mut() {
        *v = (f * *v + m).clamp(0.0, 1.0);
    }
}

/// Saturation: `clamp(f * img + (1 - f) * gray(img))`.
pub fn adjust_saturation(img: &mut PlanarImage, f: f32) {
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
pub fn adjust_hue(img: &mut PlanarImage, shift: f32) {
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
pub fn grayscale(img: &mut PlanarImage) {
    let g = gray_plane(img);
    for c in 0..CHANNELS {
        img.plane_mut(c).copy_from_slice(&g);
    }
}

/// Colour-jitter parameters: order of the four operations (0 brightness, 1 contrast,
/// 2 saturation, 3 hue) and their factors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JitterParams {
    /// The operations in the order they are applied.
    pub order: [u8; 4],
    /// Brightness factor (1 = unchanged).
    pub brightness: f32,
    /// Contrast factor (1 = unchanged).
    pub contrast: f32,
    /// Saturation factor (1 = unchanged).
    pub saturation: f32,
    /// Hue shift, fraction of the hue circle (0 = unchanged).
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
pub fn color_jitter(img: &mut PlanarImage, p: &JitterParams) {
    for &op in &p.order {
        match op {
            0 => adjust_brightness(img, p.brightness),
            1 => adjust_contrast(img, p.contrast),
            2 => adjust_saturation(img, p.saturation),
            _ => adjust_hue(img, p.hue),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::augment::test_support::{assert_close, random_image};

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
        let mut h = PlanarImage::filled(1, 1, [1.0, 0.0, 0.0]);
        adjust_hue(&mut h, 1.0 / 3.0);
        assert_close(&h, &PlanarImage::filled(1, 1, [0.0, 1.0, 0.0]), 1e-5);
        adjust_hue(&mut h, 1.0 / 3.0);
        assert_close(&h, &PlanarImage::filled(1, 1, [0.0, 0.0, 1.0]), 1e-5);
        adjust_hue(&mut h, -2.0 / 3.0);
        assert_close(&h, &PlanarImage::filled(1, 1, [1.0, 0.0, 0.0]), 1e-5);
        // Hue round trip on random colours.
        let mut h = img.clone();
        adjust_hue(&mut h, 0.2);
        adjust_hue(&mut h, -0.2);
        assert_close(&h, &img, 1e-5);
    }
}
