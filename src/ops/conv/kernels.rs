//! The kernels on contiguous f32 slices: forward, input gradient and weight gradient, each
//! cut into work items that rayon runs in parallel, each item a single-threaded `gemm`.

use super::geom::{threads, Geom};
use super::im2col::{col2im, im2col, weight_matrix};
use crate::ops::SharedMut;
use rayon::prelude::*;

/// What the forward pass applies to each output block after its product.
#[derive(Clone, Copy)]
pub(super) struct Epilogue<'a> {
    scale: Option<&'a [f32]>,
    bias: Option<&'a [f32]>,
    relu: bool,
}

impl<'a> Epilogue<'a> {
    pub(super) fn new(scale: Option<&'a [f32]>, bias: Option<&'a [f32]>, relu: bool) -> Self {
        Self { scale, bias, relu }
    }
}

/// `dst[m, n] (+)= lhs[m, k] * rhs[k, n]`, each matrix given by (pointer, row stride, column
/// stride). Single-threaded: the callers run many of these at once, one per work item,
/// which on 2 cores beats splitting each product across threads (no barrier per product,
/// each thread packs and reuses its own blocks).
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: (*mut f32, usize, usize),
    accumulate: bool,
    lhs: (*const f32, usize, usize),
    rhs: (*const f32, usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: callers pass pointers into live buffers that hold every addressed element.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.0,
            dst.2 as isize,
            dst.1 as isize,
            accumulate,
            lhs.0,
            lhs.2 as isize,
            lhs.1 as isize,
            rhs.0,
            rhs.2 as isize,
            rhs.1 as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Per-channel scale, bias and ReLU on the `n` outputs starting at `ob` of every output
/// channel (row stride `hw`), while they are still in cache.
///
/// # Safety
/// `ob + co * hw .. + n` must be valid and owned by the caller for every channel `co`.
unsafe fn epilogue(ob: *mut f32, cout: usize, hw: usize, n: usize, e: Epilogue) {
    let Epilogue { scale, bias, relu } = e;
    if scale.is_none() && bias.is_none() && !relu {
        return;
    }
    for co in 0..cout {
        let row = std::slice::from_raw_parts_mut(ob.add(co * hw), n);
        let b = bias.map_or(0.0, |b| b[co]);
        if let Some(scale) = scale {
            let s = scale[co];
            if relu {
                for v in row {
                    *v = (*v * s + b).max(0.0);
                }
            } else {
                for v in row {
                    *v = *v * s + b;
                }
            }
        } else if relu {
            for v in row {
                *v = (*v + b).max(0.0);
            }
        } else {
            for v in row {
                *v += b;
            }
        }
    }
}

/// The forward pass on contiguous f32 slices. Work items are (image, block of output rows),
/// run in parallel, each with its own im2col buffer and a single-threaded product.
pub(super) fn forward(g: &Geom, x: &[f32], w: &[f32], e: Epilogue) -> Vec<f32> {
    let Epilogue { bias, relu, .. } = e;
    let hw = g.ho * g.wo;
    let mut out = vec![0f32; g.b * g.cout * hw];
    let taps = g.taps();
    if taps.is_empty() {
        // Every tap reads padding: the output is the bias (then ReLU).
        if let Some(bias) = bias {
            for (i, row) in out.chunks_mut(hw).enumerate() {
                row.fill(if relu {
                    bias[i % g.cout].max(0.0)
                } else {
                    bias[i % g.cout]
                });
            }
        }
        return out;
    }
    let kv = g.cin * taps.len();
    let wm = weight_matrix(g, w, &taps);
    let rows = g.rows_per_item(kv);
    let nch = g.ho.div_ceil(rows);
    let dst = SharedMut(out.as_mut_ptr());
    (0..g.b * nch)
        .into_par_iter()
        .for_each_init(Vec::new, |col: &mut Vec<f32>, item| {
            let (bi, c) = (item / nch, item % nch);
            let (r0, r1) = (c * rows, ((c + 1) * rows).min(g.ho));
            let n = (r1 - r0) * g.wo;
            let xb = &x[bi * g.cin * g.h * g.w..(bi + 1) * g.cin * g.h * g.w];
            let rhs = if g.pointwise() {
                (xb[r0 * g.wo..].as_ptr(), hw, 1)
            } else {
                col.resize(kv * n, 0.0);
                im2col(g, xb, &taps, r0, r1, &mut col[..kv * n]);
                (col.as_ptr(), n, 1)
            };
            let d = dst;
            // SAFETY: this item alone writes columns r0 * Wo .. r1 * Wo of image bi's output
            // channels, all inside `out`.
            unsafe {
                let ob = d.0.add(bi * g.cout * hw + r0 * g.wo);
                matmul(g.cout, n, kv, (ob, hw, 1), false, (wm.as_ptr(), kv, 1), rhs);
                epilogue(ob, g.cout, hw, n, e);
            }
        });
    out
}

/// `dx [B, Cin, H, W]` from `dy [B, Cout, Ho, Wo]` and `w`. Work items are (image, group of
/// input channels): their `col2im` writes touch disjoint gradient planes.
pub(super) fn input_grad(g: &Geom, dy: &[f32], w: &[f32]) -> Vec<f32> {
    let hw = g.ho * g.wo;
    let plane = g.h * g.w;
    let mut dx = vec![0f32; g.b * g.cin * plane];
    let taps = g.taps();
    let nt = taps.len();
    if taps.is_empty() {
        return dx;
    }
    let kv = g.cin * nt;
    let wm = weight_matrix(g, w, &taps);
    let groups = threads().div_ceil(g.b).clamp(1, g.cin);
    let cpg = g.cin.div_ceil(groups);
    let groups = g.cin.div_ceil(cpg);
    let rows = g.rows_per_chunk(cpg * nt);
    let dst = SharedMut(dx.as_mut_ptr());
    (0..g.b * groups)
        .into_par_iter()
        .for_each_init(Vec::new, |col: &mut Vec<f32>, item| {
            let (bi, gi) = (item / groups, item % groups);
            let (c0, c1) = (gi * cpg, ((gi + 1) * cpg).min(g.cin));
            let m = (c1 - c0) * nt;
            let dyb = &dy[bi * g.cout * hw..(bi + 1) * g.cout * hw];
            // W^T restricted to the rows of channels c0..c1: [m, Cout].
            let lhs = (wm[c0 * nt..].as_ptr(), 1, kv);
            let d = dst;
            // SAFETY: this item alone writes the planes c0..c1 of image bi.
            let dxb = unsafe { d.slice((bi * g.cin + c0) * plane, (c1 - c0) * plane) };
            if g.pointwise() {
                matmul(
                    m,
                    hw,
                    g.cout,
                    (dxb.as_mut_ptr(), hw, 1),
                    false,
                    lhs,
                    (dyb.as_ptr(), hw, 1),
                );
                return;
            }
            let mut r0 = 0;
            while r0 < g.ho {
                let r1 = (r0 + rows).min(g.ho);
                let n = (r1 - r0) * g.wo;
                col.resize(m * n, 0.0);
                matmul(
                    m,
                    n,
                    g.cout,
                    (col.as_mut_ptr(), n, 1),
                    false,
                    lhs,
                    (dyb[r0 * g.wo..].as_ptr(), hw, 1),
                );
                col2im(g, &col[..m * n], &taps, r0, r1, dxb);
                r0 = r1;
            }
        });
    dx
}

/// `dw [Cout, Cin, k, k]` from `x` and `dy`. Work items are (image, block of output rows);
/// each thread sums its items' products into its own accumulator, then the accumulators
/// are added.
pub(super) fn weight_grad(g: &Geom, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let hw = g.ho * g.wo;
    let plane = g.cin * g.h * g.w;
    let taps = g.taps();
    let kv = g.cin * taps.len();
    let kk = g.k * g.k;
    if taps.is_empty() {
        return vec![0f32; g.cout * g.cin * kk];
    }
    let rows = g.rows_per_item(kv);
    let nch = g.ho.div_ceil(rows);
    let items = g.b * nch;
    let dwm = (0..items)
        .into_par_iter()
        .with_min_len(items.div_ceil(threads()))
        .fold(
            || (vec![0f32; g.cout * kv], Vec::new()),
            |(mut acc, mut col): (Vec<f32>, Vec<f32>), item| {
                let (bi, c) = (item / nch, item % nch);
                let (r0, r1) = (c * rows, ((c + 1) * rows).min(g.ho));
                let n = (r1 - r0) * g.wo;
                let xb = &x[bi * plane..(bi + 1) * plane];
                let dyb = &dy[bi * g.cout * hw + r0 * g.wo..];
                // dW += dy col^T (for a pointwise conv col is the input itself)
                let rhs = if g.pointwise() {
                    (xb[r0 * g.wo..].as_ptr(), 1, hw)
                } else {
                    col.resize(kv * n, 0.0);
                    im2col(g, xb, &taps, r0, r1, &mut col[..kv * n]);
                    (col.as_ptr(), 1, n)
                };
                matmul(
                    g.cout,
                    kv,
                    n,
                    (acc.as_mut_ptr(), kv, 1),
                    true,
                    (dyb.as_ptr(), hw, 1),
                    rhs,
                );
                (acc, col)
            },
        )
        .map(|(acc, _)| acc)
        .reduce_with(|mut a, b| {
            for (x, y) in a.iter_mut().zip(&b) {
                *x += *y;
            }
            a
        })
        .unwrap_or_else(|| vec![0f32; g.cout * kv]);
    if taps.len() == kk {
        return dwm;
    }
    let mut dw = vec![0f32; g.cout * g.cin * kk];
    for co in 0..g.cout {
        for ci in 0..g.cin {
            for (t, &(kh, kw)) in taps.iter().enumerate() {
                dw[(co * g.cin + ci) * kk + kh * g.k + kw] = dwm[co * kv + ci * taps.len() + t];
            }
        }
    }
    dw
}
