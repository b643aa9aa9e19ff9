use candle_core::{Result, Tensor};

/// Max pooling with a 3x3 window, stride 2 and zero padding 1 (the ResNet stem).
///
/// Exact for non-negative input (it follows a ReLU, so zero padding equals -inf padding).
/// Built from 9 strided shifted views and `maximum`, all differentiable.
/// `[B, C, H, W] -> [B, C, (H - 1) / 2 + 1, (W - 1) / 2 + 1]`
///
/// On the CPU in f32 one direct kernel ([`super::fused`]) computes it.
pub fn max_pool_3x3_s2_p1(x: &Tensor) -> Result<Tensor> {
    match super::fused::max_pool_3x3_s2_p1(x)? {
        Some(y) => Ok(y),
        None => composed_max_pool(x),
    }
}

/// [`max_pool_3x3_s2_p1`] from candle's ops (any device and float type).
pub(crate) fn composed_max_pool(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let ho = (h - 1) / 2 + 1;
    let wo = (w - 1) / 2 + 1;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::check_grad;
    use candle_core::{DType, Device};

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
}
