//! Synthetic H&E-like images, for benchmarks that need realistic-looking input without data
//! files (`csranet bench` and the `compare` bench target).

use rand::{Rng, SeedableRng};

/// Colour of the synthetic nuclei (RGB); the background is never this dark.
pub const NUCLEUS_RGB: [u8; 3] = [95, 55, 140];

/// A `size x size` RGB8 image (rows of `3 * size` bytes): a noisy pink background with purple
/// discs of radius 4-8 px ([`NUCLEUS_RGB`], about one per 700 pixels) standing in for nuclei,
/// so that post-processing finds instances. The same `seed` gives the same pixels.
pub fn he_image(size: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut img = vec![0u8; size * size * 3];
    for px in img.chunks_exact_mut(3) {
        let n: i32 = rng.random_range(-12..12);
        px[0] = (235 + n).clamp(0, 255) as u8;
        px[1] = (190 + n).clamp(0, 255) as u8;
        px[2] = (215 + n).clamp(0, 255) as u8;
    }
    if size == 0 {
        return img;
    }
    for _ in 0..size * size / 700 {
        let cx = rng.random_range(0..size) as i64;
        let cy = rng.random_range(0..size) as i64;
        let r: i64 = rng.random_range(4..9);
        for y in (cy - r).max(0)..(cy + r + 1).min(size as i64) {
            for x in (cx - r).max(0)..(cx + r + 1).min(size as i64) {
                if (x - cx).pow(2) + (y - cy).pow(2) <= r * r {
                    let o = (y as usize * size + x as usize) * 3;
                    img[o..o + 3].copy_from_slice(&NUCLEUS_RGB);
                }
            }
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nucleus_pixels(img: &[u8]) -> usize {
        img.chunks_exact(3).filter(|p| *p == NUCLEUS_RGB).count()
    }

    #[test]
    fn same_seed_same_pixels_and_nuclei_cover_a_few_percent() {
        let a = he_image(128, 7);
        assert_eq!(a.len(), 128 * 128 * 3);
        assert_eq!(a, he_image(128, 7));
        assert_ne!(a, he_image(128, 8));
        // 23 discs of 50-200 px each (overlaps and borders lose some).
        let frac = nucleus_pixels(&a) as f64 / (128.0 * 128.0);
        assert!((0.03..0.35).contains(&frac), "nucleus fraction {frac}");
        // The background stays light: every other pixel is brighter than a nucleus.
        assert!(a
            .chunks_exact(3)
            .all(|p| p == NUCLEUS_RGB || (p[0] >= 223 && p[1] >= 178)));
    }

    #[test]
    fn tiny_images_have_no_nuclei() {
        assert!(he_image(0, 1).is_empty());
        assert_eq!(nucleus_pixels(&he_image(16, 1)), 0);
    }
}
