//! Gaussian smoothing of the distance map.

/// Separable Gaussian blur in place (kernel radius ceil(3 sigma), edges clamped).
pub(super) fn gaussian_blur(img: &mut [f32], w: usize, h: usize, sigma: f32) {
    let r = (3.0 * sigma).ceil().max(1.0) as usize;
    let mut k: Vec<f32> = (0..=2 * r)
        .map(|i| {
            let d = i as f32 - r as f32;
            (-(d * d) / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let sum: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    // Horizontal pass on a clamped, padded copy of each row.
    let mut line = vec![0f32; w.max(h) + 2 * r];
    let mut tmp = vec![0f32; w * h];
    for y in 0..h {
        let row = &img[y * w..(y + 1) * w];
        line[r..r + w].copy_from_slice(row);
        for j in 0..r {
            line[j] = row[0];
            line[r + w + j] = row[w - 1];
        }
        let out = &mut tmp[y * w..(y + 1) * w];
        for (x, o) in out.iter_mut().enumerate() {
            *o = k
                .iter()
                .zip(&line[x..x + 2 * r + 1])
                .map(|(a, b)| a * b)
                .sum();
        }
    }
    // Vertical pass: accumulate whole rows (vectorises).
    for y in 0..h {
        let out = &mut img[y * w..(y + 1) * w];
        out.iter_mut().for_each(|v| *v = 0.0);
        for (j, &kv) in k.iter().enumerate() {
            let yy = (y as isize + j as isize - r as isize).clamp(0, h as isize - 1) as usize;
            let src = &tmp[yy * w..(yy + 1) * w];
            for (o, &sv) in out.iter_mut().zip(src) {
                *o += kv * sv;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_constants_and_spreads_an_impulse_symmetrically() {
        let (w, h) = (9, 7);
        let mut c = vec![2.5f32; w * h];
        gaussian_blur(&mut c, w, h, 1.0);
        assert!(c.iter().all(|&v| (v - 2.5).abs() < 1e-5), "{c:?}");
        // Radius ceil(3 * 0.8) = 3 fits around (4, 3): nothing is clamped, the mass stays 1.
        let mut d = vec![0f32; w * h];
        d[3 * w + 4] = 1.0;
        gaussian_blur(&mut d, w, h, 0.8);
        let sum: f32 = d.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "{sum}");
        assert_eq!(d[3 * w + 3], d[3 * w + 5]);
        assert_eq!(d[2 * w + 4], d[4 * w + 4]);
        assert!(d[3 * w + 4] > d[3 * w + 5] && d[3 * w + 5] > d[3 * w + 6]);
        assert!(d[3 * w + 8] == 0.0);
    }
}
