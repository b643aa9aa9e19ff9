//! CutMix: a random box, and pasting it from a second image (and from its pseudo-labels and
//! masks) into the first.

use super::sampling::{coin, uniform};
use super::strong::StrongConfig;
use crate::imaging::{PlanarImage, CHANNELS};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// A CutMix box, `[x0, x1) x [y0, y1)` in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CutBox {
    /// First column inside the box.
    pub x0: usize,
    /// First row inside the box.
    pub y0: usize,
    /// First column after the box.
    pub x1: usize,
    /// First row after the box.
    pub y1: usize,
}

impl CutBox {
    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.x1 - self.x0
    }
    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.y1 - self.y0
    }
    /// Number of pixels inside.
    pub fn area(&self) -> usize {
        self.width() * self.height()
    }
    /// True when pixel (x, y) is inside.
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
pub fn paste_box_image(dst: &mut PlanarImage, src: &PlanarImage, b: &CutBox) {
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
mod tests {
    use super::*;
    use crate::train::augment::test_support::rng;

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
        let mut a = PlanarImage::filled(6, 4, [0.0; 3]);
        let s = PlanarImage::filled(6, 4, [1.0, 0.5, 0.25]);
        paste_box_image(&mut a, &s, &b);
        assert_eq!(a.get(2, 2, 4), 0.25);
        assert_eq!(a.get(0, 0, 0), 0.0);
        assert_eq!(a.plane(1).iter().filter(|&&v| v == 0.5).count(), 6);
    }
}
