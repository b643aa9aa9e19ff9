//! The forward custom ops (plain, with bias, with a per-channel affine map).

use super::backward::{conv_grads, masked};
use super::geom::Geom;
use super::kernels::{forward, Epilogue};
use super::ConvParams;
use crate::ops::f32_slice;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

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

fn out_shape(g: &Geom) -> Shape {
    Shape::from((g.b, g.cout, g.ho, g.wo))
}

pub(super) struct ConvOp {
    pub(super) p: ConvParams,
    pub(super) relu: bool,
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

pub(super) struct ConvBiasOp {
    pub(super) p: ConvParams,
    pub(super) relu: bool,
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

pub(super) struct ConvScaledOp {
    pub(super) p: ConvParams,
    pub(super) relu: bool,
    pub(super) scale: Vec<f32>,
    pub(super) shift: Vec<f32>,
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
