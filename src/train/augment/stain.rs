//! H&E stain jitter: Ruifrok-Johnston colour deconvolution with skimage's matrices, per-stain
//! scale and shift in optical density, recombination.

use crate::imaging::{PlanarImage, CHANNELS};
use serde::{Deserialize, Serialize};

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
pub fn rgb_to_hed(img: &PlanarImage) -> [Vec<f32>; 3] {
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
pub fn hed_to_rgb(hed: &[Vec<f32>; 3], width: usize, height: usize) -> PlanarImage {
    let m: [[f32; 3]; 3] = RGB_FROM_HED.map(|r| r.map(|v| v as f32));
    let n = width * height;
    let mut img = PlanarImage {
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
    /// Factor per stain (H, E, D).
    pub scale: [f32; 3],
    /// Shift in natural-log optical-density units.
    pub shift_od: [f32; 3],
}

/// H&E stain jitter, in place: deconvolve to HED, scale and shift, recombine, clamp.
pub fn stain_jitter(img: &mut PlanarImage, p: &StainParams) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::augment::test_support::{assert_close, he_like, random_image};

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
}
