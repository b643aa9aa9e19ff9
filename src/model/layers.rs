//! Convolution, batch norm and linear layers with torchvision parameter names.

use super::params::{Init, Pb};
use crate::ops::{batch_norm_train, conv2d, conv2d_scaled, ConvParams};
use candle_core::{DType, Result, Tensor, Var, D};

/// A parameter as an operand in float type `dt` (the input's: f16/bf16 inference): itself in
/// training, detached in eval mode. An eval-mode forward thus records no autograd graph
/// through the weights (PyTorch's `inference_mode` for them), so its activations are freed as
/// soon as they are used; gradients with respect to a tracked input still flow.
pub fn param(t: &Tensor, train: bool, dt: DType) -> Result<Tensor> {
    if train {
        t.to_dtype(dt)
    } else {
        t.detach().to_dtype(dt)
    }
}

/// A 2-D convolution (`weight`, optional `bias`).
#[derive(Clone, Debug)]
pub struct Conv {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
}

/// Geometry of a convolution.
#[derive(Clone, Copy, Debug)]
pub struct ConvSpec {
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub bias: bool,
}

impl ConvSpec {
    /// A `k x k` conv with "same" padding for its dilation and no bias.
    pub fn new(cin: usize, cout: usize, k: usize) -> Self {
        Self {
            cin,
            cout,
            k,
            stride: 1,
            padding: k / 2,
            dilation: 1,
            bias: false,
        }
    }
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = s;
        self
    }
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = d;
        self.padding = d * (self.k / 2);
        self
    }
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = p;
        self
    }
    pub fn bias(mut self) -> Self {
        self.bias = true;
        self
    }
}

impl Conv {
    /// Registers `weight` (and `bias`) under `pb`.
    pub fn new(s: ConvSpec, pb: &Pb, init: Init) -> Result<Self> {
        let weight = pb.weight((s.cout, s.cin, s.k, s.k), "weight", init)?;
        let bias = if s.bias {
            Some(pb.weight(s.cout, "bias", Init::Const(0.0))?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            stride: s.stride,
            padding: s.padding,
            dilation: s.dilation,
        })
    }

    pub fn params(&self) -> ConvParams {
        ConvParams {
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
        }
    }

    /// `[B, Cin, H, W] -> [B, Cout, H', W']`, computed in the input's float type.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, true)
    }

    /// [`forward`](Self::forward); in eval mode (`train = false`) the weights are constants
    /// ([`param`]).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let dt = x.dtype();
        let b = match &self.bias {
            Some(b) => Some(param(b, train, dt)?),
            None => None,
        };
        conv2d(
            x,
            &param(&self.weight, train, dt)?,
            b.as_ref(),
            self.params(),
            false,
        )
    }
}

/// Batch normalisation with running statistics (PyTorch semantics: momentum 0.1,
/// eps 1e-5, unbiased running variance).
#[derive(Clone, Debug)]
pub struct BatchNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub running_mean: Var,
    pub running_var: Var,
    pub eps: f64,
    pub momentum: f64,
}

impl BatchNorm {
    pub fn new(c: usize, pb: &Pb) -> Result<Self> {
        Ok(Self {
            weight: pb.weight(c, "weight", Init::Const(1.0))?,
            bias: pb.weight(c, "bias", Init::Const(0.0))?,
            running_mean: pb.buffer(c, "running_mean", Init::Const(0.0))?,
            running_var: pb.buffer(c, "running_var", Init::Const(1.0))?,
            eps: 1e-5,
            momentum: 0.1,
        })
    }

    /// Per-channel `(scale, shift)` of the eval-mode affine map, as `[C]` tensors (constants:
    /// see [`param`]).
    pub fn eval_affine(&self) -> Result<(Tensor, Tensor)> {
        let rm = self.running_mean.as_detached_tensor();
        let rv = self.running_var.as_detached_tensor();
        let scale = self
            .weight
            .detach()
            .broadcast_div(&(rv + self.eps)?.sqrt()?)?;
        let shift = (self.bias.detach() - rm.mul(&scale)?)?;
        Ok((scale, shift))
    }

    /// [`eval_affine`](Self::eval_affine) computed on the host, when every parameter is an
    /// f32 tensor on the CPU (`None` otherwise): no candle ops.
    pub fn eval_affine_f32(&self) -> Result<Option<(Vec<f32>, Vec<f32>)>> {
        let rm = self.running_mean.as_tensor();
        let rv = self.running_var.as_tensor();
        let all = [&self.weight, &self.bias, rm, rv];
        if !all
            .iter()
            .all(|t| t.device().is_cpu() && t.dtype() == DType::F32 && t.rank() == 1)
        {
            return Ok(None);
        }
        let [w, b, m, v] = all.map(|t| t.to_vec1::<f32>());
        let (w, b, m, v) = (w?, b?, m?, v?);
        let eps = self.eps as f32;
        let scale: Vec<f32> = w
            .iter()
            .zip(&v)
            .map(|(w, v)| w / (v + eps).sqrt())
            .collect();
        let shift = b
            .iter()
            .zip(&m)
            .zip(&scale)
            .map(|((b, m), s)| b - m * s)
            .collect();
        Ok(Some((scale, shift)))
    }

    /// `[B, C, H, W] -> [B, C, H, W]`. In training mode uses batch statistics and updates
    /// the running ones; with a single value per channel (batch 1 through a 1x1 map) it
    /// falls back to the running statistics, where PyTorch raises an error.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_relu(x, train, false)
    }

    /// [`forward_t`](Self::forward_t), then a ReLU when `relu`. On the CPU in f32 a training
    /// forward is one fused op ([`batch_norm_train`]).
    pub fn forward_relu(&self, x: &Tensor, train: bool, relu: bool) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let n = b * h * w;
        if train && n >= 2 && crate::ops::cpu_f32_kernel("bn", &[x]) {
            let (y, st) = batch_norm_train(x, &self.weight, &self.bias, self.eps, relu)?;
            let dev = x.device();
            let bm = Tensor::from_vec(st.mean, c, dev)?;
            let bv = (Tensor::from_vec(st.var, c, dev)? * (n as f64 / (n as f64 - 1.0)))?;
            self.update_running(&bm, &bv)?;
            return Ok(y);
        }
        let y = self.forward_composed(x, train)?;
        if relu {
            y.relu()
        } else {
            Ok(y)
        }
    }

    /// Running averages with momentum; `bv` is the unbiased batch variance.
    fn update_running(&self, bm: &Tensor, bv: &Tensor) -> Result<()> {
        let m = self.momentum;
        let rm = ((self.running_mean.as_detached_tensor() * (1.0 - m))? + (bm * m)?)?;
        let rv = ((self.running_var.as_detached_tensor() * (1.0 - m))? + (bv * m)?)?;
        self.running_mean.set(&rm)?;
        self.running_var.set(&rv)
    }

    /// Batch norm from candle's element-wise ops (any device and float type).
    fn forward_composed(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let n = b * h * w;
        if !train || n < 2 {
            let (scale, shift) = self.eval_affine()?;
            return x
                .broadcast_mul(&scale.reshape((1, c, 1, 1))?)?
                .broadcast_add(&shift.reshape((1, c, 1, 1))?);
        }
        let mean = x.mean_keepdim((0, 2, 3))?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim((0, 2, 3))?;
        let bm = mean.detach().flatten_all()?;
        let bv = (var.detach().flatten_all()? * (n as f64 / (n as f64 - 1.0)))?;
        self.update_running(&bm, &bv)?;
        let y = xc.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        y.broadcast_mul(&self.weight.reshape((1, c, 1, 1))?)?
            .broadcast_add(&self.bias.reshape((1, c, 1, 1))?)
    }
}

/// A bias-free conv followed by batch norm (and an optional ReLU). In eval mode the
/// batch norm is folded into the convolution's weights.
#[derive(Clone, Debug)]
pub struct ConvBn {
    pub conv: Conv,
    pub bn: BatchNorm,
    pub relu: bool,
}

impl ConvBn {
    /// `conv_pb`/`bn_pb` name the two parts (torchvision names them differently per block).
    pub fn new(s: ConvSpec, conv_pb: &Pb, bn_pb: &Pb, relu: bool) -> Result<Self> {
        Ok(Self {
            conv: Conv::new(s, conv_pb, Init::KaimingFanOut)?,
            bn: BatchNorm::new(s.cout, bn_pb)?,
            relu,
        })
    }

    /// In training: conv, batch norm with batch statistics, ReLU. In eval mode one fused
    /// pass, the weights constants ([`param`]): on the CPU in f32 the batch norm's scale and
    /// shift are applied to the conv's output blocks ([`conv2d_scaled`]); elsewhere (or when
    /// the input is tracked) they are folded into the weights, in the input's float type.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train {
            return self
                .bn
                .forward_relu(&self.conv.forward(x)?, true, self.relu);
        }
        if let Some((scale, shift)) = self.bn.eval_affine_f32()? {
            let w = self.conv.weight.detach();
            let p = self.conv.params();
            if let Some(y) = conv2d_scaled(x, &w, scale, shift, p, self.relu)? {
                return Ok(y);
            }
        }
        let (scale, shift) = self.bn.eval_affine()?;
        let dt = x.dtype();
        let w = self
            .conv
            .weight
            .detach()
            .broadcast_mul(&scale.reshape(((), 1, 1, 1))?)?
            .to_dtype(dt)?;
        conv2d(
            x,
            &w,
            Some(&shift.to_dtype(dt)?),
            self.conv.params(),
            self.relu,
        )
    }
}

/// A fully connected layer `y = x W^T + b` over the last dimension.
#[derive(Clone, Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl Linear {
    pub fn new(cin: usize, cout: usize, pb: &Pb) -> Result<Self> {
        Ok(Self {
            weight: pb.weight((cout, cin), "weight", Init::FanInUniform)?,
            bias: pb.weight(cout, "bias", Init::Const(0.0))?,
        })
    }

    /// `[..., Cin] -> [..., Cout]`, in the input's float type.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, true)
    }

    /// [`forward`](Self::forward); in eval mode the weights are constants ([`param`]).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let cin = dims[dims.len() - 1];
        let rows = x.elem_count() / cin;
        let dt = x.dtype();
        let y = x
            .reshape((rows, cin))?
            .matmul(&param(&self.weight, train, dt)?.t()?)?
            .broadcast_add(&param(&self.bias, train, dt)?)?;
        let mut out = dims;
        let last = out.len() - 1;
        out[last] = self.weight.dim(0)?;
        y.reshape(out)
    }
}

/// Numerically stable softmax over the last dimension, with a backward (unlike
/// `candle_nn::ops::softmax_last_dim`).
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    let m = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&m)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}
