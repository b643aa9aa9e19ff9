//! Gaussian blur of the strong view: [`crate::imaging::blur`] on each channel with reflect
//! padding, clamped to [0, 1].

use crate::imaging::blur::{self, Edge};
use crate::imaging::{PlanarImage, CHANNELS};

pub use crate::imaging::blur::gaussian_kernel;

/// Separable Gaussian blur with reflect padding (kernel [`gaussian_kernel`]), in place.
pub fn gaussian_blur(img: &mut PlanarImage, sigma: f32) {
    let (w, h) = (img.width, img.height);
    for c in 0..CHANNELS {
        let p = img.plane_mut(c);
        blur::gaussian_blur(p, w, h, sigma, Edge::Reflect);
        for v in p.iter_mut() {
            *v = v.clamp(0.0, 1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::augment::test_support::{assert_close, random_image};

    #[test]
    fn blur_preserves_constant_image_and_mean() {
        for sigma in [0.1f32, 0.7, 2.0] {
            let mut c = PlanarImage::filled(13, 9, [0.25, 0.5, 0.75]);
            gaussian_blur(&mut c, sigma);
            assert_close(&c, &PlanarImage::filled(13, 9, [0.25, 0.5, 0.75]), 1e-6);
        }
        // A random image keeps its mean roughly and gets smoother.
        let img = random_image(32, 32, 5);
        let mut b = img.clone();
        gaussian_blur(&mut b, 1.5);
        let mean = |i: &PlanarImage| i.data.iter().sum::<f32>() / i.data.len() as f32;
        assert!((mean(&img) - mean(&b)).abs() < 0.01);
        let var = |i: &PlanarImage| {
            let m = mean(i);
            i.data.iter().map(|v| (v - m).powi(2)).sum::<f32>()
        };
        assert!(var(&b) < 0.2 * var(&img));
        // Tiny images (radius larger than the image) still work.
        let mut t = random_image(2, 1, 6);
        gaussian_blur(&mut t, 2.0);
        assert!(t.is_valid_unit());
    }

    #[test]
    fn blur_reflects_at_the_edges() {
        // Against the direct two-dimensional sum with reflected indices.
        let (w, h, sigma) = (7usize, 5usize, 1.1f32);
        let img = random_image(w, h, 16);
        let mut b = img.clone();
        gaussian_blur(&mut b, sigma);
        let k = gaussian_kernel(sigma);
        let r = (k.len() / 2) as isize;
        let refl = |i: isize, n: usize| Edge::Reflect.index(i, n);
        for c in 0..CHANNELS {
            for y in 0..h {
                for x in 0..w {
                    let mut want = 0.0f32;
                    for (i, ki) in k.iter().enumerate() {
                        for (j, kj) in k.iter().enumerate() {
                            let sy = refl(y as isize + i as isize - r, h);
                            let sx = refl(x as isize + j as isize - r, w);
                            want += ki * kj * img.get(c, sy, sx);
                        }
                    }
                    let got = b.get(c, y, x);
                    assert!((got - want.clamp(0.0, 1.0)).abs() < 1e-5, "{c} {y} {x}");
                }
            }
        }
    }
}
