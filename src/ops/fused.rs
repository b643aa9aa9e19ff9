//! Single-pass CPU kernels for element-wise work that candle would do in several passes,
//! each allocating a full-size tensor: the residual `relu(a + b)` that ends every ResNet
//! block, the ReLU mask of a gradient, and the stem's 3x3 stride-2 max pool.
//!
//! Each has its own backward and falls back to candle's composition on other devices and
//! float types (and when `CSRANET_CANDLE_OPS` names `fused`); tests compare the two.

use super::f32_slice;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Elements per parallel chunk of the element-wise kernels.
const CHUNK: usize = 1 << 15;

fn fast(ts: &[&Tensor]) -> bool {
    ts.iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
        && !super::use_candle("fused")
}

/// `f(a[i], b[i])` for two slices of one length, in parallel chunks.
fn zip_map(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = vec![0f32; a.len()];
    out.par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
        .for_each(|(o, (a, b))| {
            for ((o, a), b) in o.iter_mut().zip(a).zip(b) {
                *o = f(*a, *b);
            }
        });
    out
}

/// `relu(a + b)` for two tensors of one shape, differentiable in both.
pub fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.dims() != b.dims() || !fast(&[a, b]) {
        return (a + b)?.relu();
    }
    a.contiguous()?.apply_op2(&b.contiguous()?, AddRelu)
}

/// `grad` where `out > 0`, zero elsewhere: the gradient through a ReLU whose output is
/// `out`.
pub fn relu_grad(grad: &Tensor, out: &Tensor) -> Result<Tensor> {
    if grad.dims() != out.dims() || !fast(&[grad, out]) {
        return grad * out.gt(0f64)?.to_dtype(grad.dtype())?;
    }
    grad.contiguous()?
        .apply_op2_no_bwd(&out.contiguous()?, &ReluGrad)
}

struct AddRelu;

impl CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        "csranet-add-relu"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let a = f32_slice(s1, l1, "add_relu: lhs")?;
        let b = f32_slice(s2, l2, "add_relu: rhs")?;
        let out = zip_map(a, b, |a, b| (a + b).max(0.0));
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
    fn bwd(
        &self,
        _a: &Tensor,
        _b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = relu_grad(grad, res)?;
        Ok((Some(g.clone()), Some(g)))
    }
}

struct ReluGrad;

impl CustomOp2 for ReluGrad {
    fn name(&self) -> &'static str {
        "csranet-relu-grad"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = f32_slice(s1, l1, "relu_grad: gradient")?;
        let y = f32_slice(s2, l2, "relu_grad: output")?;
        let out = zip_map(g, y, |g, y| if y > 0.0 { g } else { 0.0 });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Max pooling 3x3, stride 2, padding 1, on the CPU in f32 (`None` elsewhere: the caller
/// composes it). Padding is -inf (PyTorch): for the non-negative input the ResNet stem
/// gives it this equals zero padding. The gradient goes to the first maximum of each window
/// in row-major order, as in PyTorch.
pub fn max_pool_3x3_s2_p1(x: &Tensor) -> Result<Option<Tensor>> {
    if !fast(&[x]) {
        return Ok(None);
    }
    x.contiguous()?.apply_op1(MaxPool).map(Some)
}

/// Pooled size of a side of `n` (kernel 3, stride 2, padding 1).
fn pooled(n: usize) -> usize {
    (n - 1) / 2 + 1
}

/// Index in the plane (`h x w`) of the first maximum of output pixel `(oy, ox)`'s window.
fn argmax(p: &[f32], h: usize, w: usize, oy: usize, ox: usize) -> usize {
    let (y0, x0) = ((2 * oy).saturating_sub(1), (2 * ox).saturating_sub(1));
    let (y1, x1) = ((2 * oy + 2).min(h), (2 * ox + 2).min(w));
    let mut best = y0 * w + x0;
    for y in y0..y1 {
        for x in x0..x1 {
            if p[y * w + x] > p[best] {
                best = y * w + x;
            }
        }
    }
    best
}

struct MaxPool;

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "csranet-maxpool-3x3-s2"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "max_pool: input")?;
        let (b, c, h, w) = l.shape().dims4()?;
        let (ho, wo) = (pooled(h), pooled(w));
        let mut out = vec![0f32; b * c * ho * wo];
        out.par_chunks_mut(ho * wo)
            .zip(x.par_chunks(h * w))
            .for_each(|(o, p)| {
                for oy in 0..ho {
                    for ox in 0..wo {
                        o[oy * wo + ox] = p[argmax(p, h, w, oy, ox)];
                    }
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((b, c, ho, wo))))
    }
    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        x.apply_op2_no_bwd(&grad.contiguous()?, &MaxPoolGrad)
            .map(Some)
    }
}

struct MaxPoolGrad;

impl CustomOp2 for MaxPoolGrad {
    fn name(&self) -> &'static str {
        "csranet-maxpool-3x3-s2-grad"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "max_pool grad: input")?;
        let g = f32_slice(s2, l2, "max_pool grad: gradient")?;
        let (b, c, h, w) = l1.shape().dims4()?;
        let (ho, wo) = (pooled(h), pooled(w));
        if l2.dims() != [b, c, ho, wo] {
            candle_core::bail!("max_pool grad: gradient shape {:?}", l2.dims())
        }
        let mut dx = vec![0f32; b * c * h * w];
        dx.par_chunks_mut(h * w)
            .zip(x.par_chunks(h * w).zip(g.par_chunks(ho * wo)))
            .for_each(|(d, (p, g))| {
                for oy in 0..ho {
                    for ox in 0..wo {
                        d[argmax(p, h, w, oy, ox)] += g[oy * wo + ox];
                    }
                }
            });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
    }

    #[test]
    fn add_relu_matches_candle_forward_and_backward() -> Result<()> {
        let dev = Device::Cpu;
        let a = Var::from_tensor(&Tensor::randn(0f32, 1f32, (2, 3, 5, 7), &dev)?)?;
        let b = Var::from_tensor(&Tensor::randn(0f32, 1f32, (2, 3, 5, 7), &dev)?)?;
        let w = Tensor::randn(0f32, 1f32, (2, 3, 5, 7), &dev)?;
        let ours = add_relu(&a, &b)?;
        let theirs = (a.as_tensor() + b.as_tensor())?.relu()?;
        assert_eq!(max_diff(&ours, &theirs)?, 0.0);
        let go = (ours * &w)?.sum_all()?.backward()?;
        let gt = (theirs * &w)?.sum_all()?.backward()?;
        for v in [&a, &b] {
            let d = max_diff(go.get(v).expect("ours"), gt.get(v).expect("candle"))?;
            assert_eq!(d, 0.0);
        }
        Ok(())
    }

    #[test]
    fn relu_grad_masks_where_the_output_is_zero() -> Result<()> {
        let dev = Device::Cpu;
        let g = Tensor::new(&[1f32, 2., 3., 4.], &dev)?;
        let y = Tensor::new(&[0f32, 0.5, 0., 7.], &dev)?;
        assert_eq!(relu_grad(&g, &y)?.to_vec1::<f32>()?, [0., 2., 0., 4.]);
        Ok(())
    }

    #[test]
    fn maxpool_matches_composition_forward_and_backward() -> Result<()> {
        let dev = Device::Cpu;
        for (h, w) in [(9, 9), (8, 10), (7, 12), (5, 5), (1, 1), (2, 3)] {
            // Non-negative without ties (the stem's input is post-ReLU).
            let x = Var::from_tensor(&Tensor::rand(0f32, 1f32, (2, 3, h, w), &dev)?)?;
            let ours = max_pool_3x3_s2_p1(&x)?.expect("cpu f32");
            let theirs = super::super::pool::composed_max_pool(&x)?;
            assert_eq!(ours.dims(), theirs.dims());
            assert_eq!(max_diff(&ours, &theirs)?, 0.0, "{h}x{w}");
            let wt = Tensor::randn(0f32, 1f32, ours.dims(), &dev)?;
            let go = (ours * &wt)?.sum_all()?.backward()?;
            let gt = (theirs * &wt)?.sum_all()?.backward()?;
            let d = max_diff(go.get(&x).expect("ours"), gt.get(&x).expect("composed"))?;
            assert!(d < 1e-6, "{h}x{w}: gradient differs by {d}");
        }
        Ok(())
    }

    #[test]
    fn maxpool_ties_and_negative_values_follow_pytorch() -> Result<()> {
        let dev = Device::Cpu;
        // A 3x3 plane of equal values: output 2x2; each window's first element (in
        // row-major order, padding excluded) takes the whole gradient.
        let x = Var::from_tensor(&Tensor::ones((1, 1, 3, 3), DType::F32, &dev)?)?;
        let y = max_pool_3x3_s2_p1(&x)?.expect("cpu f32");
        let g = y.sum_all()?.backward()?;
        let dx = g.get(&x).expect("grad").flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(dx, [1., 1., 0., 1., 1., 0., 0., 0., 0.]);
        // Negative input: padding never wins (PyTorch pads with -inf).
        let x = Tensor::full(-2f32, (1, 1, 4, 4), &dev)?;
        let y = max_pool_3x3_s2_p1(&x)?.expect("cpu f32");
        assert!(y
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .all(|v| *v == -2.0));
        Ok(())
    }
}
