//! 2-D convolution on the CPU: im2col + `gemm`, with its own backward.
//!
//! candle 0.11's CPU conv2d copies its input to NHWC, builds im2col tiles element by element
//! and writes the output back transposed; its backward computes the input gradient with
//! `conv_transpose2d`, a naive loop (CANDLE-NOTES.md), even for the input image. Here:
//!
//! - forward: the output is `W [Cout, Cin*taps] x col [Cin*taps, Ho*Wo]` per image, written
//!   straight into NCHW; a 1x1 stride-1 convolution multiplies the input itself. `col` is built
//!   one row (input channel, kernel tap) at a time with slice copies, in chunks of output rows
//!   that bound its size. Kernel taps that fall entirely into the zero padding for every output
//!   pixel (DeepLabv3's rate-24/36 ASPP branches on small maps) are dropped from both factors.
//!   An optional bias is the initial value of the output and an optional ReLU is applied in
//!   place (inference: batch norm folded into the weights, conv + BN + ReLU in one pass).
//! - backward: weight gradient `dY x col^T`, input gradient `col2im(W^T x dY)` (skipped when
//!   the input needs no gradient), bias gradient the sum of `dY`, ReLU's mask from the output.
//! - threads: every product is single-threaded; the work is split into items that rayon
//!   runs in parallel, each with its own im2col buffer (forward and weight gradient: image x
//!   block of output rows, at least one item per thread; input gradient: image x group of
//!   input channels, whose `col2im` writes are disjoint). Against gemm's own threading of
//!   each product this measured the same or slightly faster on 2 cores (within noise), and
//!   it removes a barrier per product.
//!
//! Other devices and dtypes use candle's `conv2d` (same results to float rounding).

use super::{cpu_f32_kernel, f32_slice, SharedMut};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::borrow::Cow;

/// Stride, zero padding and dilation of a square convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvParams {
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
}

/// Largest im2col chunk, in floats (4 MiB, one per thread, so it stays in cache). With the
/// chunking rules of [`Geom::rows_per_chunk`] it took a lite forward at batch 2 of 512 px
/// from 487-489 to 428-438 ms against 16 MiB chunks (2 threads; `tools/bench/ab.sh 3ebab11
/// f9c7952 --rows forward --presets lite --batch 2 --size 512`).
const COL_BUDGET: usize = 1 << 20;

/// `y = conv2d(x, w) (+ bias) (then ReLU)`; `x: [B, Cin, H, W]`, `w: [Cout, Cin, k, k]`,
/// `bias: [Cout]`. Differentiable in all three.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    p: ConvParams,
    relu: bool,
) -> Result<Tensor> {
    if !cpu_f32_kernel("conv", &[x, w]) {
        let mut y = x.conv2d(w, p.padding, p.stride, p.dilation, 1)?;
        if let Some(b) = bias {
            y = y.broadcast_add(&b.reshape((1, (), 1, 1))?)?;
        }
        return if relu { y.relu() } else { Ok(y) };
    }
    Geom::new(x.dims(), w.dims(), p)?; // shape errors before any work
    let x = x.contiguous()?;
    let w = w.contiguous()?;
    match bias {
        None => x.apply_op2(&w, ConvOp { p, relu }),
        Some(b) => x.apply_op3(&w, &b.contiguous()?, ConvBiasOp { p, relu }),
    }
}

/// Eval-mode `relu?(scale[co] * conv2d(x, w)[co] + shift[co])`: a convolution followed by
/// batch norm with running statistics, in one pass, the affine map applied to the output
/// instead of folded into the weights (no per-call weight copy, no candle ops). No
/// gradient: CPU f32 only, input and weight not tracked; `None` when that does not hold
/// (the caller folds the map into the weights instead).
pub fn conv2d_scaled(
    x: &Tensor,
    w: &Tensor,
    scale: Vec<f32>,
    shift: Vec<f32>,
    p: ConvParams,
    relu: bool,
) -> Result<Option<Tensor>> {
    if x.track_op() || w.track_op() || !cpu_f32_kernel("conv", &[x, w]) {
        return Ok(None);
    }
    let g = Geom::new(x.dims(), w.dims(), p)?;
    if scale.len() != g.cout || shift.len() != g.cout {
        candle_core::bail!(
            "conv2d: {} scales and {} shifts for {} channels",
            scale.len(),
            shift.len(),
            g.cout
        )
    }
    x.contiguous()?
        .apply_op2_no_bwd(
            &w.contiguous()?,
            &ConvScaledOp {
                p,
                relu,
                scale,
                shift,
            },
        )
        .map(Some)
}

/// What the forward pass applies to each output block after its product.
#[derive(Clone, Copy)]
struct Epilogue<'a> {
    scale: Option<&'a [f32]>,
    bias: Option<&'a [f32]>,
    relu: bool,
}

impl<'a> Epilogue<'a> {
    fn new(scale: Option<&'a [f32]>, bias: Option<&'a [f32]>, relu: bool) -> Self {
        Self { scale, bias, relu }
    }
}

/// Geometry of one convolution.
#[derive(Clone, Copy, Debug)]
struct Geom {
    b: usize,
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    k: usize,
    ho: usize,
    wo: usize,
    p: ConvParams,
}

impl Geom {
    fn new(xd: &[usize], wd: &[usize], p: ConvParams) -> Result<Self> {
        let (&[b, cin, h, w], &[cout, wcin, k, k2]) = (xd, wd) else {
            candle_core::bail!("conv2d: input {xd:?} and weight {wd:?} must both be 4-D")
        };
        if wcin != cin || k != k2 || k == 0 || p.stride == 0 || p.dilation == 0 {
            candle_core::bail!("conv2d: input {xd:?} does not fit weight {wd:?} ({p:?})")
        }
        let span = p.dilation * (k - 1) + 1;
        if h + 2 * p.padding < span || w + 2 * p.padding < span {
            candle_core::bail!("conv2d: input {xd:?} is smaller than the kernel span {span}")
        }
        Ok(Self {
            b,
            cin,
            h,
            w,
            cout,
            k,
            ho: (h + 2 * p.padding - span) / p.stride + 1,
            wo: (w + 2 * p.padding - span) / p.stride + 1,
            p,
        })
    }

    /// Output indices `[lo, hi)` along an axis of input length `len` and output length `out`
    /// whose input index `o * stride + off` is inside `[0, len)`.
    fn valid(&self, off: isize, len: usize, out: usize) -> (usize, usize) {
        let s = self.p.stride as isize;
        let lo = if off >= 0 { 0 } else { (-off + s - 1) / s };
        let last = len as isize - 1 - off;
        let hi = if last < 0 { 0 } else { last / s + 1 };
        (lo.min(out as isize) as usize, hi.min(out as isize) as usize)
    }

    /// Kernel taps `(kh, kw)` that touch the image for at least one output pixel.
    fn taps(&self) -> Vec<(usize, usize)> {
        let mut t = Vec::with_capacity(self.k * self.k);
        for kh in 0..self.k {
            for kw in 0..self.k {
                let (y0, y1) = self.valid(self.off(kh), self.h, self.ho);
                let (x0, x1) = self.valid(self.off(kw), self.w, self.wo);
                if y0 < y1 && x0 < x1 {
                    t.push((kh, kw));
                }
            }
        }
        t
    }

    fn off(&self, k: usize) -> isize {
        (k * self.p.dilation) as isize - self.p.padding as isize
    }

    /// A 1x1, stride-1, unpadded convolution: the input is its own im2col matrix.
    fn pointwise(&self) -> bool {
        self.k == 1 && self.p.stride == 1 && self.p.padding == 0
    }

    /// Output rows per im2col chunk of `kv` rows: a chunk of at most [`COL_BUDGET`] floats,
    /// or as many as the weight matrix it multiplies when that is larger (each chunk's product
    /// packs the whole weight again). A pointwise convolution has no im2col buffer: one chunk.
    fn rows_per_chunk(&self, kv: usize) -> usize {
        if self.pointwise() {
            return self.ho;
        }
        let budget = COL_BUDGET.max(self.cout * kv);
        (budget / (kv * self.wo).max(1)).clamp(1, self.ho)
    }

    /// Output rows per work item: at most [`rows_per_chunk`](Self::rows_per_chunk), and
    /// small enough that the batch gives every thread at least one item.
    fn rows_per_item(&self, kv: usize) -> usize {
        let per_image = threads().div_ceil(self.b.max(1));
        self.rows_per_chunk(kv)
            .min(self.ho.div_ceil(per_image))
            .max(1)
    }
}

/// Threads the kernels spread their work items over.
fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// `dst[m, n] (+)= lhs[m, k] * rhs[k, n]`, each matrix given by (pointer, row stride, column
/// stride). Single-threaded: the callers run many of these at once, one per work item,
/// which on 2 cores beats splitting each product across threads (no barrier per product,
/// each thread packs and reuses its own blocks).
#[allow(clippy::too_many_arguments)]
fn matmul(
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

/// The weight restricted to `taps`: `[Cout, Cin * taps]`.
fn weight_matrix<'a>(g: &Geom, w: &'a [f32], taps: &[(usize, usize)]) -> Cow<'a, [f32]> {
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
fn im2col(g: &Geom, x: &[f32], taps: &[(usize, usize)], r0: usize, r1: usize, col: &mut [f32]) {
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
fn col2im(g: &Geom, col: &[f32], taps: &[(usize, usize)], r0: usize, r1: usize, dx: &mut [f32]) {
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
fn forward(g: &Geom, x: &[f32], w: &[f32], e: Epilogue) -> Vec<f32> {
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
fn input_grad(g: &Geom, dy: &[f32], w: &[f32]) -> Vec<f32> {
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
fn weight_grad(g: &Geom, x: &[f32], dy: &[f32]) -> Vec<f32> {
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

/// Geometry, input and weight of a forward op's operands.
fn operands<'a>(
    p: ConvParams,
    s1: &'a CpuStorage,
    l1: &Layout,
    s2: &'a CpuStorage,
    l2: &Layout,
) -> Result<(Geom, &'a [f32], &'a [f32])> {
    let g = Geom::new(l1.dims(), l2.dims(), p)?;
    let x = f32_slice(s1, l1, "conv2d: input")?;
    let w = f32_slice(s2, l2, "conv2d: weight")?;
    Ok((g, x, w))
}

/// The output gradient must have the output's shape.
fn check_grad_shape(g: &Geom, l: &Layout) -> Result<()> {
    if l.dims() != [g.b, g.cout, g.ho, g.wo] {
        candle_core::bail!("conv2d backward: gradient shape {:?}", l.dims())
    }
    Ok(())
}

fn out_shape(g: &Geom) -> Shape {
    Shape::from((g.b, g.cout, g.ho, g.wo))
}

/// The ReLU mask applied to the incoming gradient.
fn masked(grad: &Tensor, res: &Tensor, relu: bool) -> Result<Tensor> {
    if relu {
        super::fused::relu_grad(grad, res)
    } else {
        Ok(grad.clone())
    }
}

/// Input and weight gradients (the input's only when it is tracked).
fn conv_grads(
    x: &Tensor,
    w: &Tensor,
    g: &Tensor,
    p: ConvParams,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let g = g.contiguous()?;
    let dx = if x.track_op() {
        Some(g.apply_op2_no_bwd(
            w,
            &InputGradOp {
                p,
                x_dims: x.dims4()?,
            },
        )?)
    } else {
        None
    };
    let dw = if w.track_op() {
        Some(x.apply_op2_no_bwd(
            &g,
            &WeightGradOp {
                p,
                w_dims: w.dims4()?,
            },
        )?)
    } else {
        None
    };
    Ok((dx, dw))
}

struct ConvOp {
    p: ConvParams,
    relu: bool,
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        "csranet-conv2d"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, x, w) = operands(self.p, s1, l1, s2, l2)?;
        Ok((
            CpuStorage::F32(forward(&g, x, w, Epilogue::new(None, None, self.relu))),
            out_shape(&g),
        ))
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        conv_grads(x, w, &masked(grad, res, self.relu)?, self.p)
    }
}

struct ConvBiasOp {
    p: ConvParams,
    relu: bool,
}

impl CustomOp3 for ConvBiasOp {
    fn name(&self) -> &'static str {
        "csranet-conv2d-bias"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, x, w) = operands(self.p, s1, l1, s2, l2)?;
        let b = f32_slice(s3, l3, "conv2d: bias")?;
        if b.len() != g.cout {
            candle_core::bail!(
                "conv2d: bias has {} values for {} channels",
                b.len(),
                g.cout
            )
        }
        Ok((
            CpuStorage::F32(forward(&g, x, w, Epilogue::new(None, Some(b), self.relu))),
            out_shape(&g),
        ))
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = masked(grad, res, self.relu)?;
        let (dx, dw) = conv_grads(x, w, &g, self.p)?;
        let db = if b.track_op() {
            Some(g.sum((0, 2, 3))?)
        } else {
            None
        };
        Ok((dx, dw, db))
    }
}

struct ConvScaledOp {
    p: ConvParams,
    relu: bool,
    scale: Vec<f32>,
    shift: Vec<f32>,
}

impl CustomOp2 for ConvScaledOp {
    fn name(&self) -> &'static str {
        "csranet-conv2d-scaled"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, x, w) = operands(self.p, s1, l1, s2, l2)?;
        let e = Epilogue::new(Some(&self.scale), Some(&self.shift), self.relu);
        Ok((CpuStorage::F32(forward(&g, x, w, e)), out_shape(&g)))
    }
}

struct InputGradOp {
    p: ConvParams,
    x_dims: (usize, usize, usize, usize),
}

impl CustomOp2 for InputGradOp {
    fn name(&self) -> &'static str {
        "csranet-conv2d-input-grad"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = self.x_dims;
        let g = Geom::new(&[b, c, h, w], l2.dims(), self.p)?;
        check_grad_shape(&g, l1)?;
        let dy = f32_slice(s1, l1, "conv2d: gradient")?;
        let wt = f32_slice(s2, l2, "conv2d: weight")?;
        Ok((
            CpuStorage::F32(input_grad(&g, dy, wt)),
            Shape::from(self.x_dims),
        ))
    }
}

struct WeightGradOp {
    p: ConvParams,
    w_dims: (usize, usize, usize, usize),
}

impl CustomOp2 for WeightGradOp {
    fn name(&self) -> &'static str {
        "csranet-conv2d-weight-grad"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (co, ci, k, k2) = self.w_dims;
        let g = Geom::new(l1.dims(), &[co, ci, k, k2], self.p)?;
        check_grad_shape(&g, l2)?;
        let x = f32_slice(s1, l1, "conv2d: input")?;
        let dy = f32_slice(s2, l2, "conv2d: gradient")?;
        Ok((
            CpuStorage::F32(weight_grad(&g, x, dy)),
            Shape::from(self.w_dims),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn reference(
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        p: ConvParams,
        relu: bool,
    ) -> Result<Tensor> {
        let mut y = x.conv2d(w, p.padding, p.stride, p.dilation, 1)?;
        if let Some(b) = b {
            y = y.broadcast_add(&b.reshape((1, (), 1, 1))?)?;
        }
        if relu {
            y.relu()
        } else {
            Ok(y)
        }
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
    }

    /// Every geometry the network uses (and a few more), forward and all gradients against
    /// candle's conv2d and its autograd.
    #[test]
    fn matches_candle_forward_and_backward() -> Result<()> {
        let dev = Device::Cpu;
        let cases = [
            // (b, cin, h, w, cout, k, stride, padding, dilation)
            (2, 3, 19, 19, 4, 7, 2, 3, 1),
            (2, 5, 9, 9, 6, 3, 1, 1, 1),
            (1, 5, 10, 10, 6, 3, 2, 1, 1),
            (2, 4, 9, 9, 3, 3, 1, 2, 2),
            (2, 4, 8, 8, 3, 3, 1, 12, 12), // only the centre tap touches the image
            (2, 4, 8, 8, 3, 3, 1, 6, 6),   // some taps partially valid
            (2, 6, 7, 7, 5, 1, 1, 0, 1),
            (2, 6, 9, 9, 5, 1, 2, 0, 1),
            (1, 3, 12, 12, 2, 3, 1, 0, 1), // no padding
        ];
        for (i, &(b, cin, h, w, cout, k, s, pad, d)) in cases.iter().enumerate() {
            let p = ConvParams {
                stride: s,
                padding: pad,
                dilation: d,
            };
            for (bias, relu) in [(false, false), (true, true), (true, false)] {
                let x = Var::from_tensor(&Tensor::randn(0f32, 1., (b, cin, h, w), &dev)?)?;
                let wt = Var::from_tensor(&Tensor::randn(0f32, 1., (cout, cin, k, k), &dev)?)?;
                let bv = Var::from_tensor(&Tensor::randn(0f32, 1., cout, &dev)?)?;
                let bt = bias.then(|| bv.as_tensor());
                let ours = conv2d(x.as_tensor(), wt.as_tensor(), bt, p, relu)?;
                let theirs = reference(x.as_tensor(), wt.as_tensor(), bt, p, relu)?;
                assert_eq!(ours.dims(), theirs.dims(), "case {i}");
                let d0 = max_diff(&ours, &theirs)?;
                assert!(d0 < 1e-4, "case {i} forward: {d0}");
                let r = Tensor::randn(0f32, 1., ours.shape(), &dev)?;
                let go = (ours * &r)?.sum_all()?.backward()?;
                let gt = (theirs * &r)?.sum_all()?.backward()?;
                for (name, v) in [("x", &x), ("w", &wt)] {
                    let a = go.get(v.as_tensor()).expect("grad");
                    let bb = gt.get(v.as_tensor()).expect("grad");
                    let dd = max_diff(a, bb)?;
                    assert!(dd < 1e-3, "case {i} ({bias}, {relu}) d{name}: {dd}");
                }
                if bias {
                    let dd = max_diff(
                        go.get(bv.as_tensor()).expect("grad"),
                        gt.get(bv.as_tensor()).expect("grad"),
                    )?;
                    assert!(dd < 1e-3, "case {i} dbias: {dd}");
                }
            }
        }
        Ok(())
    }

    /// Shapes large enough for several im2col chunks per image, on 3 threads (row blocks
    /// split across items, uneven input-channel groups), against candle. Without ReLU: with
    /// 10^5 outputs, one pre-activation within rounding of zero lands on different sides in
    /// the two summation orders now and then, and its mask flip moves the input gradient by
    /// ~20% (the ReLU gradient is tested above and in `fused`).
    #[test]
    fn several_chunks_and_work_items_match_candle() -> Result<()> {
        let dev = Device::Cpu;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .map_err(candle_core::Error::wrap)?;
        for (b, cin, hw, cout, stride) in
            [(1, 32, 80, 16, 1), (2, 32, 80, 16, 1), (1, 40, 160, 8, 2)]
        {
            let p = ConvParams {
                stride,
                padding: 1,
                dilation: 1,
            };
            let x = Var::from_tensor(&Tensor::randn(0f32, 1., (b, cin, hw, hw), &dev)?)?;
            let wt = Var::from_tensor(&Tensor::randn(0f32, 1., (cout, cin, 3, 3), &dev)?)?;
            let geom = Geom::new(x.dims(), wt.dims(), p)?;
            assert!(
                geom.rows_per_chunk(cin * 9) < geom.ho,
                "the case must need chunks"
            );
            let (ours, go) = pool.install(|| -> Result<_> {
                let y = conv2d(x.as_tensor(), wt.as_tensor(), None, p, false)?;
                let r = Tensor::randn(0f32, 1., y.shape(), &dev)?;
                let g = (&y * &r)?.sum_all()?.backward()?;
                Ok(((y, r), g))
            })?;
            let (ours, r) = ours;
            let theirs = reference(x.as_tensor(), wt.as_tensor(), None, p, false)?;
            let gt = (&theirs * &r)?.sum_all()?.backward()?;
            let rel = |a: &Tensor, b: &Tensor| -> Result<f32> {
                let scale = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
                Ok(max_diff(a, b)? / scale.max(1.0))
            };
            let d0 = rel(&ours, &theirs)?;
            assert!(d0 < 1e-5, "{b}x{cin}x{hw} s{stride} forward: {d0}");
            for (name, v) in [("x", &x), ("w", &wt)] {
                let a = go.get(v.as_tensor()).expect("grad");
                let bb = gt.get(v.as_tensor()).expect("grad");
                let dd = rel(a, bb)?;
                assert!(dd < 1e-5, "{b}x{cin}x{hw} s{stride} d{name}: {dd}");
            }
        }
        Ok(())
    }

    #[test]
    fn scaled_conv_equals_folded_weights() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (2, 5, 13, 13), &dev)?;
        let w = Tensor::randn(0f32, 1., (6, 5, 3, 3), &dev)?;
        let scale: Vec<f32> = (0..6).map(|i| 0.5 + i as f32 * 0.3).collect();
        let shift: Vec<f32> = (0..6).map(|i| i as f32 * 0.2 - 0.5).collect();
        for (p, relu) in [
            (
                ConvParams {
                    stride: 1,
                    padding: 1,
                    dilation: 1,
                },
                true,
            ),
            (
                ConvParams {
                    stride: 2,
                    padding: 1,
                    dilation: 1,
                },
                false,
            ),
            (
                ConvParams {
                    stride: 1,
                    padding: 12,
                    dilation: 12,
                },
                true,
            ),
        ] {
            let ours = conv2d_scaled(&x, &w, scale.clone(), shift.clone(), p, relu)?
                .expect("cpu f32 untracked");
            let folded =
                w.broadcast_mul(&Tensor::new(scale.as_slice(), &dev)?.reshape((6, 1, 1, 1))?)?;
            let b = Tensor::new(shift.as_slice(), &dev)?;
            let theirs = reference(&x, &folded, Some(&b), p, relu)?;
            let d = max_diff(&ours, &theirs)?;
            assert!(d < 1e-4, "{p:?}: {d}");
        }
        // A tracked input needs the differentiable path.
        let xv = Var::from_tensor(&x)?;
        let p = ConvParams {
            stride: 1,
            padding: 1,
            dilation: 1,
        };
        assert!(
            conv2d_scaled(xv.as_tensor(), &w, scale.clone(), shift.clone(), p, true)?.is_none()
        );
        assert!(conv2d_scaled(&x, &w, vec![1.0; 5], shift, p, true).is_err());
        Ok(())
    }

    #[test]
    fn untracked_input_gets_no_gradient_and_small_chunks_agree() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (1, 3, 11, 11), &dev)?;
        let wt = Var::from_tensor(&Tensor::randn(0f32, 1., (4, 3, 3, 3), &dev)?)?;
        let p = ConvParams {
            stride: 1,
            padding: 1,
            dilation: 1,
        };
        let y = conv2d(&x, wt.as_tensor(), None, p, false)?;
        let g = y.sum_all()?.backward()?;
        assert!(g.get(&x).is_none());
        assert!(g.get(wt.as_tensor()).is_some());
        // One output row per chunk gives the same result as one chunk.
        let geom = Geom::new(x.dims(), wt.dims(), p)?;
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        let ws = wt.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        let whole = forward(&geom, &xs, &ws, Epilogue::new(None, None, false));
        let taps = geom.taps();
        let kv = geom.cin * taps.len();
        let mut rows = vec![0f32; geom.cout * geom.ho * geom.wo];
        for r in 0..geom.ho {
            let mut col = vec![0f32; kv * geom.wo];
            im2col(&geom, &xs, &taps, r, r + 1, &mut col);
            let hw = geom.ho * geom.wo;
            matmul(
                geom.cout,
                geom.wo,
                kv,
                (rows[r * geom.wo..].as_mut_ptr(), hw, 1),
                false,
                (ws.as_ptr(), kv, 1),
                (col.as_ptr(), geom.wo, 1),
            );
        }
        let d = whole
            .iter()
            .zip(&rows)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(d < 1e-5, "{d}");
        Ok(())
    }
}
