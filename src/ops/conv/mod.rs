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
//!
//! Modules: `geom` (shapes, valid taps, chunk and work-item sizes), `im2col` (`im2col`,
//! `col2im`, the weight restricted to the valid taps), `kernels` (the parallel forward,
//! input-gradient and weight-gradient passes on slices), `forward` and `backward` (the candle
//! custom ops that wrap them).

mod backward;
mod forward;
mod geom;
mod im2col;
mod kernels;

use crate::ops::cpu_f32_kernel;
use candle_core::{Result, Tensor};
use forward::{ConvBiasOp, ConvOp, ConvScaledOp};
use geom::Geom;

/// Stride, zero padding and dilation of a square convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvParams {
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
}

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

#[cfg(test)]
mod tests;
