//! Training-mode batch normalisation (+ optional ReLU) on the CPU as one op with its own
//! backward.
//!
//! Written with candle's element-wise ops, a training batch norm keeps five full-size
//! intermediates for autograd (centred input, its square, the normalised map, its scaled and
//! shifted versions) and reduces over `(0, 2, 3)` several times with candle's strided
//! reductions, which dominated a CPU training step. Here the forward makes one pass for the
//! per-channel statistics and one for the output; the backward one pass for the two sums and
//! one for the input gradient:
//!
//! `x^ = (x - mean) / sqrt(var + eps)`, `y = gamma x^ + beta` (then ReLU),
//! `dx = gamma / sqrt(var + eps) * (dy - mean(dy) - x^ mean(dy x^))` per channel,
//! `dgamma = sum(dy x^)`, `dbeta = sum(dy)`, with `dy` masked by `y > 0` after a ReLU.
//!
//! Other devices and dtypes use the composed version in `model::layers`.

use super::{f32_slice, SharedMut};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use parking_lot::Mutex;
use rayon::prelude::*;
use std::sync::Arc;

/// Per-channel batch statistics of a training forward: mean and biased variance.
#[derive(Clone, Debug, Default)]
pub struct BatchStats {
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
}

/// `relu?(batch_norm(x))` with batch statistics; `x: [B, C, H, W]` f32 on the CPU,
/// `gamma`, `beta`: `[C]`. Returns the output and the batch statistics (for the running
/// averages). Differentiable in `x`, `gamma` and `beta`.
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    relu: bool,
) -> Result<(Tensor, BatchStats)> {
    let stats = Arc::new(Mutex::new(None));
    let op = BnOp {
        eps,
        relu,
        stats: stats.clone(),
    };
    let y = x
        .contiguous()?
        .apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?;
    let stats = stored(&stats.lock(), "statistics")?;
    Ok((y, stats))
}

/// A value a kernel stored for its caller (set by every successful forward).
fn stored<T: Clone>(slot: &Option<T>, what: &str) -> Result<T> {
    slot.clone()
        .ok_or_else(|| candle_core::Error::Msg(format!("batch norm: no {what}")))
}

/// Planes of channel `c`: `(b * C + c) * hw ..` for every `b`.
fn planes(b: usize, c: usize, ch: usize, hw: usize) -> impl Iterator<Item = usize> {
    (0..b).map(move |bi| (bi * ch + c) * hw)
}

fn dims(l: &Layout) -> Result<(usize, usize, usize)> {
    let (b, c, h, w) = l.shape().dims4()?;
    Ok((b, c, h * w))
}

struct BnOp {
    eps: f64,
    relu: bool,
    /// Written by the forward, read by the caller and the backward.
    stats: Arc<Mutex<Option<BatchStats>>>,
}

impl CustomOp3 for BnOp {
    fn name(&self) -> &'static str {
        "csranet-batch-norm-train"
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
        let x = f32_slice(s1, l1, "batch norm: input")?;
        let gamma = f32_slice(s2, l2, "batch norm: weight")?;
        let beta = f32_slice(s3, l3, "batch norm: bias")?;
        let (b, ch, hw) = dims(l1)?;
        if gamma.len() != ch || beta.len() != ch {
            candle_core::bail!("batch norm: {ch} channels, {} weights", gamma.len())
        }
        let n = (b * hw) as f64;
        let mut out = vec![0f32; x.len()];
        let dst = SharedMut(out.as_mut_ptr());
        let relu = self.relu;
        let eps = self.eps;
        let stats: Vec<(f32, f32)> = (0..ch)
            .into_par_iter()
            .map(|c| {
                // Two passes in f64: mean, then the centred sum of squares.
                let mut s = 0f64;
                for o in planes(b, c, ch, hw) {
                    s += x[o..o + hw].iter().map(|&v| v as f64).sum::<f64>();
                }
                let mean = s / n;
                let mut q = 0f64;
                for o in planes(b, c, ch, hw) {
                    q += x[o..o + hw]
                        .iter()
                        .map(|&v| {
                            let d = v as f64 - mean;
                            d * d
                        })
                        .sum::<f64>();
                }
                let var = q / n;
                let k = (gamma[c] as f64 / (var + eps).sqrt()) as f32;
                let sh = beta[c] - mean as f32 * k;
                for o in planes(b, c, ch, hw) {
                    // SAFETY: channel c's planes are written by this closure only.
                    let y = unsafe { dst.slice(o, hw) };
                    for (y, &v) in y.iter_mut().zip(&x[o..o + hw]) {
                        let t = v * k + sh;
                        *y = if relu { t.max(0.0) } else { t };
                    }
                }
                (mean as f32, var as f32)
            })
            .collect();
        let st = BatchStats {
            mean: stats.iter().map(|s| s.0).collect(),
            var: stats.iter().map(|s| s.1).collect(),
        };
        *self.stats.lock() = Some(st);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let stats = stored(&self.stats.lock(), "statistics")?;
        let op = BnBwdOp {
            eps: self.eps,
            relu: self.relu,
            stats,
            gamma: gamma.to_vec1::<f32>()?,
            param_grads: Mutex::new(None),
        };
        // Inputs: the incoming gradient, x, and the output (for the ReLU mask).
        let gx = grad
            .contiguous()?
            .apply_op3_no_bwd(x, &res.contiguous()?, &op)?;
        let (dg, db) = stored(&op.param_grads.lock(), "gradients")?;
        let dev = x.device();
        Ok((
            Some(gx),
            Some(Tensor::from_vec(dg, gamma.dims(), dev)?),
            Some(Tensor::from_vec(db, gamma.dims(), dev)?),
        ))
    }
}

struct BnBwdOp {
    eps: f64,
    relu: bool,
    stats: BatchStats,
    gamma: Vec<f32>,
    param_grads: Mutex<Option<(Vec<f32>, Vec<f32>)>>,
}

impl CustomOp3 for BnBwdOp {
    fn name(&self) -> &'static str {
        "csranet-batch-norm-train-backward"
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
        let dy = f32_slice(s1, l1, "batch norm: gradient")?;
        let x = f32_slice(s2, l2, "batch norm: input")?;
        let (b, ch, hw) = dims(l2)?;
        let y = f32_slice(s3, l3, "batch norm: output")?;
        let gamma = &self.gamma;
        if dy.len() != x.len() || y.len() != x.len() || gamma.len() != ch {
            candle_core::bail!("batch norm backward: inconsistent sizes")
        }
        let n = (b * hw) as f64;
        let relu = self.relu;
        let mut dx = vec![0f32; x.len()];
        let dst = SharedMut(dx.as_mut_ptr());
        let sums: Vec<(f32, f32)> = (0..ch)
            .into_par_iter()
            .map(|c| {
                let mean = self.stats.mean[c];
                let inv = (1.0 / (self.stats.var[c] as f64 + self.eps).sqrt()) as f32;
                let g = |o: usize, i: usize| -> f32 {
                    if relu && y[o + i] <= 0.0 {
                        0.0
                    } else {
                        dy[o + i]
                    }
                };
                let (mut sdy, mut sdyx) = (0f64, 0f64);
                for o in planes(b, c, ch, hw) {
                    let (mut a, mut bb) = (0f32, 0f32);
                    for i in 0..hw {
                        let d = g(o, i);
                        a += d;
                        bb += d * (x[o + i] - mean);
                    }
                    sdy += a as f64;
                    sdyx += bb as f64;
                }
                let dbeta = sdy;
                let dgamma = sdyx * inv as f64;
                // dx = gamma * inv * (dy - dbeta / n - x^ * dgamma / n)
                let k = gamma[c] * inv;
                let m_dy = (dbeta / n) as f32;
                let m_dyx = (dgamma / n) as f32 * inv;
                for o in planes(b, c, ch, hw) {
                    // SAFETY: channel c's planes are written by this closure only.
                    let out = unsafe { dst.slice(o, hw) };
                    for (i, v) in out.iter_mut().enumerate() {
                        *v = k * (g(o, i) - m_dy - (x[o + i] - mean) * m_dyx);
                    }
                }
                (dgamma as f32, dbeta as f32)
            })
            .collect();
        *self.param_grads.lock() = Some((
            sums.iter().map(|s| s.0).collect(),
            sums.iter().map(|s| s.1).collect(),
        ));
        Ok((CpuStorage::F32(dx), l2.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The composed reference (what `model::layers::BatchNorm` does without this op).
    fn reference(x: &Tensor, g: &Tensor, b: &Tensor, eps: f64, relu: bool) -> Result<Tensor> {
        let c = x.dim(1)?;
        let mean = x.mean_keepdim((0, 2, 3))?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim((0, 2, 3))?;
        let y = xc
            .broadcast_div(&(var + eps)?.sqrt()?)?
            .broadcast_mul(&g.reshape((1, c, 1, 1))?)?
            .broadcast_add(&b.reshape((1, c, 1, 1))?)?;
        if relu {
            y.relu()
        } else {
            Ok(y)
        }
    }

    #[test]
    fn matches_composed_batch_norm_and_its_gradients() -> Result<()> {
        let dev = Device::Cpu;
        for (shape, relu) in [
            ((2, 3, 5, 4), false),
            ((3, 4, 6, 6), true),
            ((1, 2, 1, 3), true),
        ] {
            let x = Var::from_tensor(&(Tensor::randn(0f32, 2., shape, &dev)? + 0.7)?)?;
            let c = shape.1;
            let g = Var::from_tensor(&Tensor::rand(0.5f32, 1.5, c, &dev)?)?;
            let b = Var::from_tensor(&Tensor::randn(0f32, 0.3, c, &dev)?)?;
            let (ours, st) =
                batch_norm_train(x.as_tensor(), g.as_tensor(), b.as_tensor(), 1e-5, relu)?;
            let theirs = reference(x.as_tensor(), g.as_tensor(), b.as_tensor(), 1e-5, relu)?;
            let d = (&ours - &theirs)?
                .abs()?
                .flatten_all()?
                .max(0)?
                .to_scalar::<f32>()?;
            assert!(d < 1e-5, "{shape:?} forward {d}");
            let m = x.as_tensor().mean((0, 2, 3))?.to_vec1::<f32>()?;
            for (a, b) in st.mean.iter().zip(m) {
                assert!((a - b).abs() < 1e-5);
            }
            let r = Tensor::randn(0f32, 1., shape, &dev)?;
            let go = (ours * &r)?.sum_all()?.backward()?;
            let gt = (theirs * &r)?.sum_all()?.backward()?;
            for v in [&x, &g, &b] {
                let a = go.get(v.as_tensor()).expect("grad");
                let bb = gt.get(v.as_tensor()).expect("grad");
                let dd = (a - bb)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
                assert!(dd < 1e-4, "{shape:?} gradient {dd}");
            }
        }
        Ok(())
    }
}
