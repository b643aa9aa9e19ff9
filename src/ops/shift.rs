use candle_core::{Result, Tensor};

/// Depthwise 3x3 convolution with zero padding 1, stride 1, as nine shifted
/// multiply-adds (candle's grouped conv runs one conv per group).
/// `x: [B, C, H, W]`, `weight: [C, 1, 3, 3]`, `bias: [C]` -> `[B, C, H, W]`
pub fn depthwise_conv3x3(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let (_b, c, h, w) = x.dims4()?;
    let xp = x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
    let wk = weight.reshape((c, 9))?;
    let mut acc = bias.reshape((1, c, 1, 1))?.broadcast_as(x.shape())?;
    for dy in 0..3 {
        let rows = xp.narrow(2, dy, h)?;
        for dx in 0..3 {
            let k = wk.narrow(1, dy * 3 + dx, 1)?.reshape((1, c, 1, 1))?;
            acc = (acc + rows.narrow(3, dx, w)?.broadcast_mul(&k)?)?;
        }
    }
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::check_grad;
    use candle_core::Device;

    #[test]
    fn matches_grouped_conv() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1f32, (2, 4, 5, 6), &dev)?;
        let wt = Tensor::randn(0f32, 1f32, (4, 1, 3, 3), &dev)?;
        let b = Tensor::randn(0f32, 1f32, 4, &dev)?;
        let ours = depthwise_conv3x3(&x, &wt, &b)?;
        let theirs = x
            .conv2d(&wt, 1, 1, 1, 4)?
            .broadcast_add(&b.reshape((1, 4, 1, 1))?)?;
        let d = (ours - theirs)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-5, "{d}");
        Ok(())
    }

    #[test]
    fn gradient() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f64, 1f64, (1, 3, 4, 5), &dev)?;
        let wt = Tensor::randn(0f64, 1f64, (3, 1, 3, 3), &dev)?;
        let b = Tensor::randn(0f64, 1f64, 3, &dev)?;
        check_grad(&x, |t| depthwise_conv3x3(t, &wt, &b), 1e-6)?;
        check_grad(&wt, |t| depthwise_conv3x3(&x, t, &b), 1e-6)
    }
}
