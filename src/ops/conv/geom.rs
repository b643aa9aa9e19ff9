//! Geometry of one convolution: output size, the kernel taps that touch the image, and how
//! the work is cut into im2col chunks and parallel items.

use super::ConvParams;
use candle_core::Result;

/// Largest im2col chunk, in floats (4 MiB, one per thread, so it stays in cache). With the
/// chunking rules of [`Geom::rows_per_chunk`] it took a lite forward at batch 2 of 512 px
/// from 487-489 to 428-438 ms against 16 MiB chunks (2 threads; `tools/bench/ab.sh 3ebab11
/// f9c7952 --rows forward --presets lite --batch 2 --size 512`).
const COL_BUDGET: usize = 1 << 20;

/// Geometry of one convolution.
#[derive(Clone, Copy, Debug)]
pub(super) struct Geom {
    pub(super) b: usize,
    pub(super) cin: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) cout: usize,
    pub(super) k: usize,
    pub(super) ho: usize,
    pub(super) wo: usize,
    pub(super) p: ConvParams,
}

impl Geom {
    pub(super) fn new(xd: &[usize], wd: &[usize], p: ConvParams) -> Result<Self> {
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
    pub(super) fn valid(&self, off: isize, len: usize, out: usize) -> (usize, usize) {
        let s = self.p.stride as isize;
        let lo = if off >= 0 { 0 } else { (-off + s - 1) / s };
        let last = len as isize - 1 - off;
        let hi = if last < 0 { 0 } else { last / s + 1 };
        (lo.min(out as isize) as usize, hi.min(out as isize) as usize)
    }

    /// Kernel taps `(kh, kw)` that touch the image for at least one output pixel.
    pub(super) fn taps(&self) -> Vec<(usize, usize)> {
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

    pub(super) fn off(&self, k: usize) -> isize {
        (k * self.p.dilation) as isize - self.p.padding as isize
    }

    /// A 1x1, stride-1, unpadded convolution: the input is its own im2col matrix.
    pub(super) fn pointwise(&self) -> bool {
        self.k == 1 && self.p.stride == 1 && self.p.padding == 0
    }

    /// Output rows per im2col chunk of `kv` rows: a chunk of at most [`COL_BUDGET`] floats,
    /// or as many as the weight matrix it multiplies when that is larger (each chunk's product
    /// packs the whole weight again). A pointwise convolution has no im2col buffer: one chunk.
    pub(super) fn rows_per_chunk(&self, kv: usize) -> usize {
        if self.pointwise() {
            return self.ho;
        }
        let budget = COL_BUDGET.max(self.cout * kv);
        (budget / (kv * self.wo).max(1)).clamp(1, self.ho)
    }

    /// Output rows per work item: at most [`rows_per_chunk`](Self::rows_per_chunk), and
    /// small enough that the batch gives every thread at least one item.
    pub(super) fn rows_per_item(&self, kv: usize) -> usize {
        let per_image = threads().div_ceil(self.b.max(1));
        self.rows_per_chunk(kv)
            .min(self.ho.div_ceil(per_image))
            .max(1)
    }
}

/// Threads the kernels spread their work items over.
pub(super) fn threads() -> usize {
    rayon::current_num_threads().max(1)
}
