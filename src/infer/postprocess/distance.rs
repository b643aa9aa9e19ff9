//! Step 2 of the pipeline: exact Euclidean distance transform of the foreground, smoothed.

use super::blur::gaussian_blur;
use super::grid::Grid;
use super::PostprocessConfig;

/// Euclidean distance of each foreground pixel to the nearest background pixel (0 on the
/// background), optionally Gaussian-smoothed. Padded indexing.
pub(super) fn distance_map(g: &Grid, cfg: &PostprocessConfig) -> Vec<f32> {
    let (pw, ph) = (g.pw, g.ph);
    // Pixels that get a positive distance: foreground, and with `split_classes` not 4-adjacent
    // to a different foreground class (those are seeds of the transform, like the background).
    let inner: Vec<bool> = (0..g.len())
        .map(|i| {
            if !g.fg(i) {
                return false;
            }
            !g.by_class || g.nbrs(i).iter().all(|&q| !g.fg(q) || g.cls[q] == g.cls[i])
        })
        .collect();
    let mut has_seed = false;
    for y in 1..ph - 1 {
        has_seed |= inner[y * pw + 1..(y + 1) * pw - 1].iter().any(|&v| !v);
    }
    let pad_is_seed = cfg.border_is_background || !has_seed;
    // Squared distance to the nearest seed.
    let mut seed: Vec<bool> = inner.iter().map(|&v| !v).collect();
    if !pad_is_seed {
        for y in 0..ph {
            for x in 0..pw {
                if x == 0 || y == 0 || x == pw - 1 || y == ph - 1 {
                    seed[y * pw + x] = false;
                }
            }
        }
    }
    let d2 = squared_edt(&seed, pw, ph);
    let mut dist: Vec<f32> = d2
        .iter()
        .zip(&inner)
        .map(|(&d, &inn)| if inn { d.sqrt() } else { 0.0 })
        .collect();
    if cfg.sigma > 0.0 {
        gaussian_blur(&mut dist, pw, ph, cfg.sigma);
        for (d, &c) in dist.iter_mut().zip(&g.cls) {
            if c == 0 {
                *d = 0.0;
            }
        }
    }
    dist
}

/// "Infinite" squared distance for the transform below (finite, so no NaN arises).
const EDT_INF: f32 = 1e20;

/// Exact squared Euclidean distance to the nearest `seed` pixel (`EDT_INF` where there is no
/// seed at all). Meijster-style: vertical distances by two row sweeps (contiguous, vectorisable),
/// then along each row Felzenszwalb & Huttenlocher's lower envelope of parabolas. (imageproc's
/// `euclidean_squared_distance_transform` computes the same in f64 through per-pixel
/// accessors; this version is several times faster.)
fn squared_edt(seed: &[bool], w: usize, h: usize) -> Vec<f32> {
    let inf = (w + h + 1) as u32;
    let mut g = vec![inf; w * h];
    for x in 0..w {
        if seed[x] {
            g[x] = 0;
        }
    }
    for y in 1..h {
        let (prev, cur) = g.split_at_mut(y * w);
        let prev = &prev[(y - 1) * w..];
        let cur = &mut cur[..w];
        let sd = &seed[y * w..(y + 1) * w];
        for x in 0..w {
            cur[x] = if sd[x] { 0 } else { (prev[x] + 1).min(inf) };
        }
    }
    for y in (0..h.saturating_sub(1)).rev() {
        let (cur, next) = g.split_at_mut((y + 1) * w);
        let cur = &mut cur[y * w..];
        let next = &next[..w];
        for x in 0..w {
            cur[x] = cur[x].min(next[x] + 1);
        }
    }
    let mut out = vec![0f32; w * h];
    let mut f = vec![0f32; w];
    let mut v = vec![0usize; w];
    let mut z = vec![0f32; w + 1];
    for y in 0..h {
        for x in 0..w {
            let gv = g[y * w + x];
            f[x] = if gv >= inf { EDT_INF } else { (gv * gv) as f32 };
        }
        edt_1d(&f, &mut out[y * w..(y + 1) * w], &mut v, &mut z);
    }
    out
}

fn edt_1d(f: &[f32], out: &mut [f32], v: &mut [usize], z: &mut [f32]) {
    let n = f.len();
    if n == 0 {
        return;
    }
    let mut k = 0usize;
    v[0] = 0;
    z[0] = f32::NEG_INFINITY;
    z[1] = f32::INFINITY;
    for q in 1..n {
        let fq = f[q] + (q * q) as f32;
        let mut s;
        loop {
            let p = v[k];
            s = (fq - (f[p] + (p * p) as f32)) / (2.0 * (q - p) as f32);
            if s <= z[k] && k > 0 {
                k -= 1;
            } else {
                break;
            }
        }
        if s <= z[k] {
            // k == 0 and the new parabola dominates everywhere.
            v[0] = q;
            z[0] = f32::NEG_INFINITY;
            z[1] = f32::INFINITY;
            continue;
        }
        k += 1;
        v[k] = q;
        z[k] = s;
        z[k + 1] = f32::INFINITY;
    }
    k = 0;
    for (q, o) in out.iter_mut().enumerate() {
        while z[k + 1] < q as f32 {
            k += 1;
        }
        let p = v[k];
        let dq = q as f32 - p as f32;
        *o = dq * dq + f[p];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edt_matches_brute_force() {
        let (w, h) = (37, 23);
        let mut state = 7u64;
        let seed: Vec<bool> = (0..w * h)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 60) == 0
            })
            .collect();
        let d = squared_edt(&seed, w, h);
        for y in 0..h {
            for x in 0..w {
                let mut best = f32::INFINITY;
                for sy in 0..h {
                    for sx in 0..w {
                        if seed[sy * w + sx] {
                            let (dx, dy) = (sx as f32 - x as f32, sy as f32 - y as f32);
                            best = best.min(dx * dx + dy * dy);
                        }
                    }
                }
                assert_eq!(d[y * w + x], best, "at ({x}, {y})");
            }
        }
        // No seed at all: "infinite" everywhere.
        assert!(squared_edt(&[false; 12], 4, 3)
            .iter()
            .all(|&v| v >= EDT_INF));
    }
}
