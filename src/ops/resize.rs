use candle_core::{Result, Tensor};

/// Row-stochastic `[out, in]` matrix of 1-D bilinear interpolation with PyTorch's
/// `align_corners=False` semantics (`src = (dst + 0.5) * in/out - 0.5`, clamped at 0).
pub fn bilinear_matrix(inp: usize, out: usize) -> Vec<f32> {
    let mut m = vec![0f32; out * inp];
    let scale = inp as f64 / out as f64;
    for o in 0..out {
        let src = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(inp - 1);
        let i1 = (i0 + 1).min(inp - 1);
        let l1 = (src - i0 as f64) as f32;
        let l0 = 1.0 - l1;
        m[o * inp + i0] += l0;
        m[o * inp + i1] += l1;
    }
    m
}

/// Bilinear resize of `[B, C, h, w]` to `[B, C, oh, ow]` (PyTorch `interpolate`,
/// `mode="bilinear", align_corners=False`) as two matmuls, so it is differentiable.
pub fn resize_bilinear(x: &Tensor, oh: usize, ow: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if (h, w) == (oh, ow) {
        return Ok(x.clone());
    }
    let dev = x.device();
    let dt = x.dtype();
    let mw = Tensor::from_vec(bilinear_matrix(w, ow), (ow, w), dev)?
        .to_dtype(dt)?
        .t()?;
    let mh = Tensor::from_vec(bilinear_matrix(h, oh), (oh, h), dev)?.to_dtype(dt)?;
    // [B*C*h, w] x [w, ow] -> [B*C, h, ow]
    let y = x
        .reshape((b * c * h, w))?
        .matmul(&mw)?
        .reshape((b * c, h, ow))?;
    // [oh, h] x [B*C, h, ow] -> [B*C, oh, ow]
    let y = mh.broadcast_left(b * c)?.matmul(&y)?;
    y.reshape((b, c, oh, ow))
}

/// Nearest upsampling by an integer factor `p`, by broadcasting (its backward sums
/// correctly, unlike candle's `upsample_nearest2d`). `[B, C, h, w] -> [B, C, h*p, w*p]`
pub fn upsample_nearest(x: &Tensor, p: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    x.reshape((b, c, h, 1, w, 1))?
        .broadcast_as((b, c, h, p, w, p))?
        .reshape((b, c, h * p, w * p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::check_grad;
    use candle_core::Device;

    #[test]
    fn matrix_rows_sum_to_one_and_match_known_values() {
        // 2 -> 4: torch gives [1, .75/.25, .25/.75, 1]
        let m = bilinear_matrix(2, 4);
        assert_eq!(m, vec![1.0, 0.0, 0.75, 0.25, 0.25, 0.75, 0.0, 1.0]);
        let m = bilinear_matrix(9, 67);
        for r in m.chunks(9) {
            assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn resize_gradient() -> Result<()> {
        let x = Tensor::randn(0f64, 1f64, (1, 2, 3, 4), &Device::Cpu)?;
        check_grad(&x, |t| resize_bilinear(t, 7, 5), 1e-6)
    }

    #[test]
    fn nearest_gradient_and_values() -> Result<()> {
        let x = Tensor::randn(0f64, 1f64, (1, 2, 2, 3), &Device::Cpu)?;
        let y = upsample_nearest(&x, 2)?;
        let r = x.upsample_nearest2d(4, 6)?;
        assert_eq!((y - r)?.abs()?.max_all()?.to_scalar::<f64>()?, 0.0);
        // Used twice: candle's own upsample_nearest2d backward would overwrite here.
        check_grad(
            &x,
            |t| upsample_nearest(t, 2)? * upsample_nearest(t, 2)?,
            1e-6,
        )
    }
}
