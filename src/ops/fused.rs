//! Single-pass CPU kernels for element-wise work that candle would do in several passes,
//! each allocating a full-size tensor: the residual `relu(a + b)` that ends every ResNet
//! block and the ReLU mask of a gradient (the stem's max pool kernel is in `pool`).
//!
//! Each has its own backward and falls back to candle's composition on other devices and
//! float types (and when `CSRANET_CANDLE_OPS` names `fused`); tests compare the two.

use super::{cpu_f32_kernel, f32_slice};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Elements per parallel chunk of the element-wise kernels.
const CHUNK: usize = 1 << 15;

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
    if a.dims() != b.dims() || !cpu_f32_kernel("fused", &[a, b]) {
        return (a + b)?.relu();
    }
    a.contiguous()?.apply_op2(&b.contiguous()?, AddRelu)
}

/// `grad` where `out > 0`, zero elsewhere: the gradient through a ReLU whose output is
/// `out`.
pub fn relu_grad(grad: &Tensor, out: &Tensor) -> Result<Tensor> {
    if grad.dims() != out.dims() || !cpu_f32_kernel("fused", &[grad, out]) {
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
}
