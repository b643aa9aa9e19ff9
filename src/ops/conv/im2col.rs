//! Between image planes and im2col matrices, restricted to the valid kernel taps.

use super::geom::Geom;
use std::borrow::Cow;

/// The weight restricted to `taps`: `[Cout, Cin * taps]`.
pub(super) fn weight_matrix<'a>(g: &Geom, w: &'a [f32], taps: &[(usize, usize)]) -> Cow<'a, [f32]> {
    let kk = g.k * g.k;
    if taps.len() == kk {
        return Cow::Borrowed(w);
    }
    let mut out = Vec::with_capacity(g.cout * g.cin * taps.len());
    for co in 0..g.cout {
        for ci in 0..g.cin {
            let base = (co * g.cin + ci) * kk;
            out.extend(taps.iter().map(|&(kh, kw)| w[base + kh * g.k + kw]));
        }
    }
    Cow::Owned(out)
}

/// Fills `col [C * taps, (r1 - r0) * Wo]` from the planes `x [C, H, W]` (any number `C` of
/// input channels), output rows `r0..r1`.
pub(super) fn im2col(
    g: &Geom,
    x: &[f32],
    taps: &[(usize, usize)],
    r0: usize,
    r1: usize,
    col: &mut [f32],
) {
    let n = (r1 - r0) * g.wo;
    let s = g.p.stride;
    for (plane, rows) in x.chunks(g.h * g.w).zip(col.chunks_mut(taps.len() * n)) {
        for (row, &(kh, kw)) in rows.chunks_mut(n).zip(taps) {
            let (oy, ox) = (g.off(kh), g.off(kw));
            let (y0, y1) = g.valid(oy, g.h, g.ho);
            let (x0, x1) = g.valid(ox, g.w, g.wo);
            for (r, dst) in (r0..r1).zip(row.chunks_mut(g.wo)) {
                if r < y0 || r >= y1 || x0 >= x1 {
                    dst.fill(0.0);
                    continue;
                }
                let iy = (r * s) as isize + oy;
                let src = &plane[iy as usize * g.w..(iy as usize + 1) * g.w];
                dst[..x0].fill(0.0);
                dst[x1..].fill(0.0);
                let ix0 = ((x0 * s) as isize + ox) as usize;
                if s == 1 {
                    dst[x0..x1].copy_from_slice(&src[ix0..ix0 + x1 - x0]);
                } else if s == 2 {
                    // Even elements: pairs, which the compiler turns into vector shuffles.
                    let n = x1 - x0;
                    let src = &src[ix0..];
                    let pairs = src.len().min(2 * n) / 2;
                    for (d, p) in dst[x0..x0 + pairs].iter_mut().zip(src.chunks_exact(2)) {
                        *d = p[0];
                    }
                    if pairs < n {
                        dst[x0 + pairs] = src[2 * pairs];
                    }
                } else {
                    for (d, v) in dst[x0..x1].iter_mut().zip(src[ix0..].iter().step_by(s)) {
                        *d = *v;
                    }
                }
            }
        }
    }
}

/// Adds `col [C * taps, (r1 - r0) * Wo]` back into the gradient planes `dx [C, H, W]`.
pub(super) fn col2im(
    g: &Geom,
    col: &[f32],
    taps: &[(usize, usize)],
    r0: usize,
    r1: usize,
    dx: &mut [f32],
) {
    let n = (r1 - r0) * g.wo;
    let s = g.p.stride;
    for (plane, rows) in dx.chunks_mut(g.h * g.w).zip(col.chunks(taps.len() * n)) {
        for (row, &(kh, kw)) in rows.chunks(n).zip(taps) {
            let (oy, ox) = (g.off(kh), g.off(kw));
            let (y0, y1) = g.valid(oy, g.h, g.ho);
            let (x0, x1) = g.valid(ox, g.w, g.wo);
            if x0 >= x1 {
                continue;
            }
            for (r, src) in (r0..r1).zip(row.chunks(g.wo)) {
                if r < y0 || r >= y1 {
                    continue;
                }
                let iy = ((r * s) as isize + oy) as usize;
                let dst = &mut plane[iy * g.w..(iy + 1) * g.w];
                let ix0 = ((x0 * s) as isize + ox) as usize;
                if s == 1 {
                    for (d, v) in dst[ix0..ix0 + x1 - x0].iter_mut().zip(&src[x0..x1]) {
                        *d += *v;
                    }
                } else {
                    for (d, v) in dst[ix0..].iter_mut().step_by(s).zip(&src[x0..x1]) {
                        *d += *v;
                    }
                }
            }
        }
    }
}
