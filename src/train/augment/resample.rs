//! Resampling: bilinear (PIL-style triangle filter, antialiased when shrinking) for images,
//! nearest neighbour for labels and masks, of a whole image or of one window of it.

use crate::imaging::{PlanarImage, CHANNELS};

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
pub fn resize_bilinear(img: &PlanarImage, out_w: usize, out_h: usize) -> PlanarImage {
    let data = resample_window(img, out_w, out_h, 0, out_w, 0, out_h);
    PlanarImage {
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
pub(super) fn resample_window(
    img: &PlanarImage,
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
pub(super) fn nearest_window<T: Copy>(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::augment::test_support::{assert_close, random_image};

    #[test]
    fn resize_identity_and_constant() {
        let img = random_image(17, 11, 1);
        assert_close(&resize_bilinear(&img, 17, 11), &img, 1e-6);
        let c = PlanarImage::filled(20, 20, [0.3, 0.6, 0.9]);
        for (w, h) in [(10, 10), (40, 33), (7, 31)] {
            let r = resize_bilinear(&c, w, h);
            assert_close(&r, &PlanarImage::filled(w, h, [0.3, 0.6, 0.9]), 1e-5);
        }
        // Halving averages 2x2 blocks of a checkerboard (antialiased).
        let mut cb = PlanarImage::filled(8, 8, [0.0; 3]);
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
}
