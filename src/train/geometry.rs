//! Instance-geometry targets and losses (HoVer-Net's horizontal and vertical maps), and the
//! foreground losses that train tiles whose dataset has no compatible classes
//! (docs/METHOD.md §7).

use crate::ops::conv2d;
use crate::ops::ConvParams;
use candle_core::{DType, Device, Result, Tensor};

pub use crate::data::UNKNOWN_CLASS;

/// HoVer-Net's HV target maps from an instance map (`h x w`, 0 = background), as two planes
/// `[x; y]` of `h * w` values: for each nucleus, the offset of every pixel from the
/// nucleus' centre of mass (rounded), negative and positive sides each scaled to reach 1 at
/// the nucleus' extreme; 0 on the background and on nuclei smaller than `min_area` pixels.
pub fn hv_targets(inst: &[u32], w: usize, h: usize, min_area: usize) -> Vec<f32> {
    assert_eq!(inst.len(), w * h, "instance map size");
    let n = w * h;
    let mut out = vec![0f32; 2 * n];
    let max_id = inst.iter().copied().max().unwrap_or(0) as usize;
    if max_id == 0 {
        return out;
    }
    // Pixels of each instance.
    let mut pixels: Vec<Vec<u32>> = vec![Vec::new(); max_id + 1];
    for (i, &l) in inst.iter().enumerate() {
        if l > 0 {
            pixels[l as usize].push(i as u32);
        }
    }
    for pix in pixels
        .iter()
        .filter(|p| !p.is_empty() && p.len() >= min_area)
    {
        let (mut sx, mut sy) = (0f64, 0f64);
        for &i in pix {
            sx += (i as usize % w) as f64;
            sy += (i as usize / w) as f64;
        }
        let cx = (sx / pix.len() as f64).round() as i64;
        let cy = (sy / pix.len() as f64).round() as i64;
        let (mut min_x, mut max_x, mut min_y, mut max_y) = (0i64, 0i64, 0i64, 0i64);
        for &i in pix {
            let dx = (i as usize % w) as i64 - cx;
            let dy = (i as usize / w) as i64 - cy;
            min_x = min_x.min(dx);
            max_x = max_x.max(dx);
            min_y = min_y.min(dy);
            max_y = max_y.max(dy);
        }
        let scale = |d: i64, lo: i64, hi: i64| -> f32 {
            if d < 0 {
                d as f32 / (-lo) as f32
            } else if d > 0 {
                d as f32 / hi as f32
            } else {
                0.0
            }
        };
        for &i in pix {
            let i = i as usize;
            let dx = (i % w) as i64 - cx;
            let dy = (i / w) as i64 - cy;
            out[i] = scale(dx, min_x, max_x);
            out[n + i] = scale(dy, min_y, max_y);
        }
    }
    out
}

/// HoVer-Net's 5x5 derivative kernels: `k_x(h, v) = h / (h^2 + v^2)`, `k_y = v / (h^2 + v^2)`
/// for `h, v` in `-2..=2` (0 at the centre); `[2, 1, 5, 5]` = (d/dx, d/dy).
fn sobel5(dev: &Device, dt: DType) -> Result<Tensor> {
    let mut k = vec![0f32; 50];
    for v in -2i32..=2 {
        for hh in -2i32..=2 {
            let r = (hh * hh + v * v) as f32;
            if r > 0.0 {
                let i = ((v + 2) * 5 + hh + 2) as usize;
                k[i] = hh as f32 / r;
                k[25 + i] = v as f32 / r;
            }
        }
    }
    Tensor::from_vec(k, (2, 1, 5, 5), dev)?.to_dtype(dt)
}

/// The derivative of the horizontal map along x and of the vertical map along y:
/// `[B, 2, H, W] -> [B, 2, H, W]` (zero padding), differentiable in `hv`.
pub fn hv_gradients(hv: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = hv.dims4()?;
    if c != 2 {
        candle_core::bail!("HV maps must have 2 channels, got {c}")
    }
    let k = sobel5(hv.device(), hv.dtype())?;
    let p = ConvParams {
        stride: 1,
        padding: 2,
        dilation: 1,
    };
    let gx = conv2d(&hv.narrow(1, 0, 1)?, &k.narrow(0, 0, 1)?, None, p, false)?;
    let gy = conv2d(&hv.narrow(1, 1, 1)?, &k.narrow(0, 1, 1)?, None, p, false)?;
    Tensor::cat(&[gx, gy], 1)?.reshape((b, 2, h, w))
}

/// Sum of `a` over the pixels where `mask` is 1, divided by the mask's sum (plus 1e-8):
/// `a` `[B, C, H, W]`, `mask` `[B, 1, H, W]`.
fn masked_mean(a: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let c = a.dim(1)?;
    let num = a.broadcast_mul(mask)?.sum_all()?;
    let den = (mask.sum_all()? * c as f64)?;
    num.broadcast_div(&(den + 1e-8)?)
}

/// HoVer-Net's HV loss terms: `(MSE over valid pixels, MSGE inside nuclei)`.
/// `pred`, `target` `[B, 2, H, W]`; `valid` and `nuclei` `[B, 1, H, W]` masks of 0/1.
pub fn hv_loss(
    pred: &Tensor,
    target: &Tensor,
    valid: &Tensor,
    nuclei: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let mse = masked_mean(&(pred - target)?.sqr()?, valid)?;
    let gp = hv_gradients(pred)?;
    let gt = hv_gradients(target)?.detach();
    let msge = masked_mean(&(gp - gt)?.sqr()?, nuclei)?;
    Ok((mse, msge))
}

/// The foreground logit of class logits `[B, C, H, W]` (class 0 = background):
/// `logsumexp(logits[1..]) - logits[0]`, `[B, 1, H, W]`; its sigmoid is `1 - p(background)`.
pub fn foreground_logit(logits: &Tensor) -> Result<Tensor> {
    let c = logits.dim(1)?;
    let bg = logits.narrow(1, 0, 1)?;
    let fg = logits.narrow(1, 1, c - 1)?;
    let m = fg.max_keepdim(1)?.detach();
    let lse = (fg.broadcast_sub(&m)?.exp()?.sum_keepdim(1)?.log()? + m)?;
    lse - bg
}

/// Foreground losses (HoVer-Net's NP branch, read off the class head): binary cross-entropy
/// of [`foreground_logit`] against `target` (`[B, 1, H, W]`, 0/1) over the `valid` pixels,
/// and the soft Dice loss `1 - (2 sum(p t) + 1e-3) / (sum(p) + sum(t) + 1e-3)` over them.
pub fn foreground_loss(
    logits: &Tensor,
    target: &Tensor,
    valid: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let z = foreground_logit(logits)?;
    // BCE with logits, stable: max(z, 0) - z t + log(1 + exp(-|z|)).
    let bce = ((z.relu()? - (&z * target)?)? + (z.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    let bce = masked_mean(&bce, valid)?;
    let p = candle_nn::ops::sigmoid(&z)?.broadcast_mul(valid)?;
    let t = target.broadcast_mul(valid)?;
    let inter = (&p * &t)?.sum_all()?;
    let dice =
        ((((inter * 2.0)? + 1e-3)? / ((p.sum_all()? + t.sum_all()?)? + 1e-3)?)?.neg()? + 1.0)?;
    Ok((bce, dice))
}

/// Masks of a batch of label planes (`[B, H, W]` u8 values: class ids, [`UNKNOWN_CLASS`],
/// 255 = ignore): `(valid, foreground)`, each `[B, 1, H, W]` f32 0/1.
pub fn label_masks(
    labels: &[Vec<u8>],
    w: usize,
    h: usize,
    dev: &Device,
) -> Result<(Tensor, Tensor)> {
    let b = labels.len();
    let mut valid = Vec::with_capacity(b * w * h);
    let mut fg = Vec::with_capacity(b * w * h);
    for plane in labels {
        for &v in plane {
            valid.push(if v == crate::metrics::IGNORE {
                0f32
            } else {
                1.0
            });
            fg.push(if v != 0 && v != crate::metrics::IGNORE {
                1f32
            } else {
                0.0
            });
        }
    }
    Ok((
        Tensor::from_vec(valid, (b, 1, h, w), dev)?,
        Tensor::from_vec(fg, (b, 1, h, w), dev)?,
    ))
}

/// Class targets for the cross-entropy: [`UNKNOWN_CLASS`] becomes ignored (255).
pub fn class_targets(labels: &[Vec<u8>], w: usize, h: usize, dev: &Device) -> Result<Tensor> {
    let flat: Vec<u32> = labels
        .iter()
        .flat_map(|p| {
            p.iter().map(|&v| {
                if v == UNKNOWN_CLASS {
                    crate::metrics::IGNORE as u32
                } else {
                    v as u32
                }
            })
        })
        .collect();
    Tensor::from_vec(flat, (labels.len(), h, w), dev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::check_grad;

    #[test]
    fn hv_targets_span_minus_one_to_one_per_nucleus() {
        // Two touching 5x3 nuclei and a 2-pixel speck (dropped at min_area 3).
        let (w, h) = (12, 5);
        let mut inst = vec![0u32; w * h];
        for y in 1..4 {
            for x in 1..6 {
                inst[y * w + x] = 1;
            }
            for x in 6..11 {
                inst[y * w + x] = 2;
            }
        }
        inst[11] = 3;
        inst[10] = 3;
        let t = hv_targets(&inst, w, h, 3);
        let n = w * h;
        // Nucleus 1: centre (3, 2); left edge -1, right edge 1, top -1, bottom 1.
        assert_eq!(t[2 * w + 1], -1.0);
        assert_eq!(t[2 * w + 5], 1.0);
        assert_eq!(t[2 * w + 3], 0.0);
        assert_eq!(t[n + w + 3], -1.0);
        assert_eq!(t[n + 3 * w + 3], 1.0);
        assert_eq!(t[2 * w + 4], 0.5);
        // Nucleus 2 starts again at -1 right next to nucleus 1's +1: the sharp step that
        // separates touching nuclei.
        assert_eq!(t[2 * w + 6], -1.0);
        // Background and the dropped speck are 0.
        assert_eq!(t[0], 0.0);
        assert_eq!(t[10], 0.0);
        assert_eq!(t[n + 10], 0.0);
    }

    #[test]
    fn hv_gradient_of_a_ramp_is_constant_inside() -> Result<()> {
        let dev = Device::Cpu;
        let (h, w) = (9, 9);
        let mut v = vec![0f32; 2 * h * w];
        for y in 0..h {
            for x in 0..w {
                v[y * w + x] = x as f32; // x map: ramp along x
                v[h * w + y * w + x] = 2.0 * y as f32; // y map: steeper ramp along y
            }
        }
        let t = Tensor::from_vec(v, (1, 2, h, w), &dev)?;
        let g = hv_gradients(&t)?.get(0)?.to_vec3::<f32>()?;
        // sum over the kernel of h * h / (h^2 + v^2) for the x map (a ramp of slope 1).
        let mut s = 0f32;
        for vv in -2i32..=2 {
            for hh in -2i32..=2 {
                let r = (hh * hh + vv * vv) as f32;
                if r > 0.0 {
                    s += (hh * hh) as f32 / r;
                }
            }
        }
        assert!((g[0][4][4] - s).abs() < 1e-4, "{} vs {s}", g[0][4][4]);
        assert!((g[1][4][4] - 2.0 * s).abs() < 1e-4);
        Ok(())
    }

    #[test]
    fn gradients_match_finite_differences() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f64, 1., (2, 2, 6, 7), &dev)?;
        check_grad(&x, hv_gradients, 1e-6)?;
        let target = Tensor::randn(0f64, 1., (2, 2, 6, 7), &dev)?;
        let valid = Tensor::rand(0f64, 1., (2, 1, 6, 7), &dev)?
            .ge(0.2)?
            .to_dtype(DType::F64)?;
        let nuclei = Tensor::rand(0f64, 1., (2, 1, 6, 7), &dev)?
            .ge(0.5)?
            .to_dtype(DType::F64)?;
        check_grad(
            &x,
            |p| {
                let (a, b) = hv_loss(p, &target, &valid, &nuclei)?;
                a + b
            },
            1e-6,
        )?;
        let logits = Tensor::randn(0f64, 2., (2, 4, 5, 6), &dev)?;
        let fg = Tensor::rand(0f64, 1., (2, 1, 5, 6), &dev)?
            .ge(0.5)?
            .to_dtype(DType::F64)?;
        let valid = Tensor::rand(0f64, 1., (2, 1, 5, 6), &dev)?
            .ge(0.2)?
            .to_dtype(DType::F64)?;
        check_grad(
            &logits,
            |l| {
                let (a, b) = foreground_loss(l, &fg, &valid)?;
                a + b
            },
            1e-6,
        )?;
        Ok(())
    }

    #[test]
    fn foreground_logit_is_the_marginal() -> Result<()> {
        let dev = Device::Cpu;
        let logits = Tensor::randn(0f32, 2., (1, 5, 3, 4), &dev)?;
        let p = candle_nn::ops::softmax(&logits, 1)?;
        let bg = p.narrow(1, 0, 1)?;
        let z = candle_nn::ops::sigmoid(&foreground_logit(&logits)?)?;
        let diff = ((z + bg)? - 1.0)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "{diff}");
        Ok(())
    }
}
