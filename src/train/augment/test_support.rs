//! Test inputs shared by the augmentation tests.

use crate::imaging::PlanarImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub(super) fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

pub(super) fn random_image(w: usize, h: usize, seed: u64) -> PlanarImage {
    let mut r = rng(seed);
    PlanarImage::new(w, h, (0..3 * w * h).map(|_| r.random::<f32>()).collect()).unwrap()
}

/// Smooth H&E-like image (pinkish background, purple blobs).
pub(super) fn he_like(w: usize, h: usize) -> PlanarImage {
    let mut img = PlanarImage::filled(w, h, [0.9, 0.7, 0.85]);
    let n = w * h;
    for y in 0..h {
        for x in 0..w {
            let d =
                ((x as f32 - w as f32 * 0.4).powi(2) + (y as f32 - h as f32 * 0.6).powi(2)).sqrt();
            if d < w as f32 * 0.2 {
                img.data[y * w + x] = 0.35;
                img.data[n + y * w + x] = 0.2;
                img.data[2 * n + y * w + x] = 0.55;
            }
        }
    }
    img
}

pub(super) fn assert_close(a: &PlanarImage, b: &PlanarImage, tol: f32) {
    assert_eq!((a.width, a.height), (b.width, b.height));
    let m = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(m <= tol, "max abs diff {m} > {tol}");
}
