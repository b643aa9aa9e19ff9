//! The backward pass: the ReLU mask, and the input- and weight-gradient custom ops.

use super::geom::Geom;
use super::kernels::{input_grad, weight_grad};
use super::ConvParams;
use crate::ops::f32_slice;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// The output gradient must have the output's shape.
fn check_grad_shape(g: &Geom, l: &Layout) -> Result<()> {
    if l.dims() != [g.b, g.cout, g.ho, g.wo] {
        candle_core::bail!("conv2d backward: gradient shape {:?}", l.dims())
    }
    Ok(())
}

/// The ReLU mask applied to the incoming gradient.
pub(super) fn masked(grad: &Tensor, res: &Tensor, relu: bool) -> Result<Tensor> {
    if relu {
        crate::ops::fused::relu_grad(grad, res)
    } else {
        Ok(grad.clone())
    }
}

/// Input and weight gradients (the input's only when it is tracked).
pub(super) fn conv_grads(
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
