//! Separable Gaussian blur of one `f32` plane.

/// How a blur reads pixels beyond the edge of the plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edge {
    /// Mirror without repeating the edge pixel (`torch` 'reflect'), periodic for any offset.
    Reflect,
    /// Repeat the edge pixel.
    Replicate,
}

impl Edge {
    /// The in-range index that stands for index `i` of an axis of `n` pixels (`n >= 1`).
    #[inline]
    pub fn index(self, i: isize, n: usize) -> usize {
        match self {
            Edge::Reflect => reflect(i, n),
            Edge::Replicate => i.clamp(0, n as isize - 1) as usize,
        }
    }
}

/// Reflect index (`torch` 'reflect': the edge is not repeated), periodic for any offset.
#[inline]
fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    (if m >= n as isize { period - m } else { m }) as usize
}

/// Gaussian kernel of size `2 * ceil(3 sigma) + 1` (at least 3), weights computed in `f64` and
/// normalised to sum 1.
pub fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    let sigma = sigma.max(1e-6);
    let r = (3.0 * sigma).ceil() as usize;
    let k: Vec<f64> = (0..=2 * r)
        .map(|i| {
            let x = i as f64 - r as f64;
            (-(x * x) / (2.0 * (sigma as f64) * (sigma as f64))).exp()
        })
        .collect();
    let s: f64 = k.iter().sum();
    k.iter().map(|v| (v / s) as f32).collect()
}

/// Convolves a `width x height` plane in place with `kernel` (odd length, centred) along rows,
/// then along columns, reading beyond the edges as `edge` says.
pub fn separable_blur(plane: &mut [f32], width: usize, height: usize, kernel: &[f32], edge: Edge) {
    let (w, h) = (width, height);
    assert_eq!(plane.len(), w * h, "separable_blur: plane size");
    assert!(
        kernel.len() % 2 == 1,
        "separable_blur: kernel length must be odd"
    );
    let r = kernel.len() / 2;
    let mut padded = vec![0.0f32; w + 2 * r];
    let mut tmp = vec![0.0f32; w * h];
    // Horizontal, on an edge-padded copy of each row.
    for y in 0..h {
        let row = &plane[y * w..(y + 1) * w];
        padded[r..r + w].copy_from_slice(row);
        for i in 0..r {
            padded[i] = row[edge.index(i as isize - r as isize, w)];
            padded[r + w + i] = row[edge.index((w + i) as isize, w)];
        }
        let out = &mut tmp[y * w..(y + 1) * w];
        for (x, o) in out.iter_mut().enumerate() {
            let win = &padded[x..x + kernel.len()];
            *o = win.iter().zip(kernel).map(|(a, b)| a * b).sum();
        }
    }
    // Vertical, accumulating whole rows.
    for y in 0..h {
        let out = &mut plane[y * w..(y + 1) * w];
        out.fill(0.0);
        for (j, &kj) in kernel.iter().enumerate() {
            let sy = edge.index(y as isize + j as isize - r as isize, h);
            let src = &tmp[sy * w..(sy + 1) * w];
            for (o, s) in out.iter_mut().zip(src) {
                *o += kj * s;
            }
        }
    }
}

/// Gaussian blur of a `width x height` plane in place: [`separable_blur`] with
/// [`gaussian_kernel`]`(sigma)`.
pub fn gaussian_blur(plane: &mut [f32], width: usize, height: usize, sigma: f32, edge: Edge) {
    separable_blur(plane, width, height, &gaussian_kernel(sigma), edge);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_indices() {
        assert_eq!(Edge::Reflect.index(-1, 5), 1);
        assert_eq!(Edge::Reflect.index(5, 5), 3);
        assert_eq!(Edge::Reflect.index(-9, 5), 1);
        assert_eq!(Edge::Reflect.index(7, 1), 0);
        assert_eq!(Edge::Replicate.index(-3, 5), 0);
        assert_eq!(Edge::Replicate.index(9, 5), 4);
        assert_eq!(Edge::Replicate.index(2, 5), 2);
    }

    #[test]
    fn kernel_size_and_sum() {
        assert_eq!(gaussian_kernel(2.0).len(), 13);
        assert_eq!(gaussian_kernel(0.1).len(), 3);
        assert_eq!(gaussian_kernel(0.0).len(), 3);
        let k = gaussian_kernel(1.3);
        assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(k[0], k[k.len() - 1]);
        assert!(k[k.len() / 2] > k[k.len() / 2 + 1]);
    }

    #[test]
    fn impulse_spreads_as_the_kernel() {
        // Far from the edges, a unit impulse becomes the outer product of the kernel.
        let (w, h) = (15, 11);
        let mut p = vec![0.0f32; w * h];
        p[5 * w + 7] = 1.0;
        let k = gaussian_kernel(0.8);
        gaussian_blur(&mut p, w, h, 0.8, Edge::Replicate);
        let r = k.len() / 2;
        for dy in 0..k.len() {
            for dx in 0..k.len() {
                let v = p[(5 + dy - r) * w + 7 + dx - r];
                assert!((v - k[dy] * k[dx]).abs() < 1e-7, "{dx},{dy}");
            }
        }
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn edges_differ_as_documented() {
        // A ramp: replicate keeps the edge value's weight, reflect mirrors the inner pixels.
        let (w, h) = (6, 1);
        let ramp: Vec<f32> = (0..w).map(|x| x as f32).collect();
        let k = [0.25f32, 0.5, 0.25];
        let mut a = ramp.clone();
        separable_blur(&mut a, w, h, &k, Edge::Replicate);
        let mut b = ramp.clone();
        separable_blur(&mut b, w, h, &k, Edge::Reflect);
        assert!((a[0] - 0.25).abs() < 1e-7); // 0.25 * 0 + 0.5 * 0 + 0.25 * 1
        assert!((b[0] - 0.5).abs() < 1e-7); // 0.25 * 1 + 0.5 * 0 + 0.25 * 1
        assert!((a[3] - 3.0).abs() < 1e-6 && (b[3] - 3.0).abs() < 1e-6);
        // Constant planes stay constant, also when the kernel is wider than the plane.
        for edge in [Edge::Reflect, Edge::Replicate] {
            let mut c = vec![0.4f32; 2];
            gaussian_blur(&mut c, 2, 1, 2.0, edge);
            assert!(c.iter().all(|v| (v - 0.4).abs() < 1e-6), "{edge:?}");
        }
    }
}
