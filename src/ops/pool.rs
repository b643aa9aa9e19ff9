use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Max pooling with a 3x3 window, stride 2 and zero padding 1 (the ResNet stem).
///
/// Exact for non-negative input (it follows a ReLU, so zero padding equals -inf padding).
/// Built from 9 strided shifted views and `maximum`, all differentiable.
/// `[B, C, H, W] -> [B, C, (H - 1) / 2 + 1, (W - 1) / 2 + 1]`
///
/// On the CPU in f32 one direct kernel computes it (switched off with the other fused kernels
/// by `CSRANET_CANDLE_OPS=fused`). Its padding is -inf, as PyTorch's: for the non-negative
/// input the ResNet stem gives it this equals zero padding. The gradient goes to the first
/// maximum of each window in row-major order, as in PyTorch.
pub fn max_pool_3x3_s2_p1(x: &Tensor) -> Result<Tensor> {
    if super::cpu_f32_kernel("fused", &[x]) {
        x.contiguous()?.apply_op1(MaxPool)
    } else {
        composed_max_pool(x)
    }
}

/// [`max_pool_3x3_s2_p1`] from candle's ops (any device and float type).
fn composed_max_pool(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (ho, wo) = (pooled(h), pooled(w));
    // Pad to 2*(ho+1) x 2*(wo+1): one zero row/column on the top/left, the rest bottom/right.
    let hp = 2 * (ho + 1);
    let wp = 2 * (wo + 1);
    let xp = x
        .pad_with_zeros(2, 1, hp - h - 1)?
        .pad_with_zeros(3, 1, wp - w - 1)?;
    // [B, C, hp, wp] -> [B, C, ho+1, 2, wo+1, 2]: row 2i+p sits at (i, p).
    let xr = xp.reshape((b, c, ho + 1, 2, wo + 1, 2))?;
    let mut out: Option<Tensor> = None;
    for dy in 0..3 {
        let (ry, py) = (dy / 2, dy % 2);
        let rows = xr.narrow(2, ry, ho)?.narrow(3, py, 1)?;
        for dx in 0..3 {
            let (rx, px) = (dx / 2, dx % 2);
            let v = rows.narrow(4, rx, wo)?.narrow(5, px, 1)?;
            out = Some(match out {
                None => v,
                Some(o) => o.maximum(&v)?,
            });
        }
    }
    out.expect("nine views").reshape((b, c, ho, wo))
}

/// Average pooling with kernel = stride = `p` over `[B, C, H, W]` (H, W multiples of p).
/// `[B, C, H, W] -> [B, C, H/p, W/p]`
pub fn mean_pool(x: &Tensor, p: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if h % p != 0 || w % p != 0 {
        candle_core::bail!("mean_pool: {h}x{w} is not a multiple of {p}")
    }
    x.reshape((b, c, h / p, p, w / p, p))?.mean(5)?.mean(3)
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
        let x = super::f32_slice(s, l, "max_pool: input")?;
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
        let x = super::f32_slice(s1, l1, "max_pool grad: input")?;
        let g = super::f32_slice(s2, l2, "max_pool grad: gradient")?;
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
    use crate::ops::gradcheck::check_grad;
    use candle_core::{DType, Device, Var};

    #[test]
    fn maxpool_matches_candle_forward() -> Result<()> {
        let dev = Device::Cpu;
        for (h, w) in [(9, 9), (8, 10), (7, 12), (5, 5)] {
            let x = Tensor::rand(0f32, 1f32, (2, 3, h, w), &dev)?;
            let ours = max_pool_3x3_s2_p1(&x)?;
            // Reference: candle's max_pool2d on an explicitly padded input.
            let xp = x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
            let theirs = xp.max_pool2d_with_stride(3, 2)?;
            assert_eq!(ours.dims(), theirs.dims());
            let d = (ours - theirs)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(d == 0.0, "{h}x{w}: {d}");
        }
        Ok(())
    }

    #[test]
    fn maxpool_gradient() -> Result<()> {
        let x = Tensor::rand(0f64, 1f64, (1, 2, 7, 6), &Device::Cpu)?;
        check_grad(&x, max_pool_3x3_s2_p1, 1e-6)?;
        let x = Tensor::rand(0f64, 1f64, (1, 2, 9, 7), &Device::Cpu)?;
        check_grad(&x, max_pool_3x3_s2_p1, 1e-6)
    }

    #[test]
    fn mean_pool_gradient() -> Result<()> {
        let x = Tensor::randn(0f64, 1f64, (2, 2, 8, 4), &Device::Cpu)?;
        let y = mean_pool(&x, 4)?;
        assert_eq!(y.dims(), &[2, 2, 2, 1]);
        let r = x
            .to_dtype(DType::F32)?
            .avg_pool2d(4)?
            .to_dtype(DType::F64)?;
        let d = (y.clone() - r)?.abs()?.max_all()?.to_scalar::<f64>()?;
        assert!(d < 1e-6);
        check_grad(&x, |t| mean_pool(t, 4), 1e-6)
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
    }

    #[test]
    fn maxpool_matches_composition_forward_and_backward() -> Result<()> {
        let dev = Device::Cpu;
        for (h, w) in [(9, 9), (8, 10), (7, 12), (5, 5), (1, 1), (2, 3)] {
            // Non-negative (the stem's input is post-ReLU) and distinct: random values tie
            // now and then, and at a tie candle's `maximum` splits the gradient.
            let n = 2 * 3 * h * w;
            let v: Vec<f32> = (1..=n)
                .map(|i| (i as f64 * 0.618_033_988_75).fract() as f32)
                .collect();
            let x = Var::from_tensor(&Tensor::from_vec(v, (2, 3, h, w), &dev)?)?;
            let ours = max_pool_3x3_s2_p1(&x)?;
            let theirs = composed_max_pool(&x)?;
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
        let y = max_pool_3x3_s2_p1(&x)?;
        let g = y.sum_all()?.backward()?;
        let dx = g.get(&x).expect("grad").flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(dx, [1., 1., 0., 1., 1., 0., 0., 0., 0.]);
        // Negative input: padding never wins (PyTorch pads with -inf).
        let x = Tensor::full(-2f32, (1, 1, 4, 4), &dev)?;
        let y = max_pool_3x3_s2_p1(&x)?;
        assert!(y
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .all(|v| *v == -2.0));
        Ok(())
    }
}
