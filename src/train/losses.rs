//! Losses of the training step (METHOD.md §2): segmentation cross-entropy with an ignore
//! value and pixel weights, and the strong-weak contrastive term.

use crate::imaging::IGNORE;
use candle_core::{bail, DType, Result, Tensor, D};

/// Per-pixel cross-entropy `[B, H, W]` of logits `[B, C, H, W]` against labels `[B, H, W]`
/// (u32); pixels labelled `IGNORE` get 0. Also returns the valid-pixel mask (f32).
pub fn ce_map(logits: &Tensor, labels: &Tensor) -> Result<(Tensor, Tensor)> {
    let (b, c, h, w) = logits.dims4()?;
    if labels.dims() != [b, h, w] {
        bail!(
            "labels {:?} do not match logits {:?}",
            labels.dims(),
            logits.dims()
        )
    }
    let labels = labels.to_dtype(DType::U32)?;
    let valid = labels.ne(IGNORE as u32)?;
    let safe = valid.where_cond(&labels, &labels.zeros_like()?)?;
    let max_label = safe.max_all()?.to_scalar::<u32>()?;
    if max_label as usize >= c {
        bail!("label {max_label} is out of range for {c} classes")
    }
    let logp = candle_nn::ops::log_softmax(logits, 1)?;
    let picked = logp.gather(&safe.unsqueeze(1)?, 1)?.squeeze(1)?;
    let validf = valid.to_dtype(logits.dtype())?;
    Ok(((picked.neg()? * &validf)?, validf))
}

/// Mean cross-entropy over the valid pixels (PyTorch `cross_entropy(ignore_index=255)`).
/// A batch with no valid pixel gives 0.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let (l, v) = ce_map(logits, labels)?;
    let n = v.sum_all()?.to_scalar::<f32>()?;
    l.sum_all()? / (n.max(1.0) as f64)
}

/// Confidence-masked cross-entropy against pseudo-labels, divided by all valid pixels
/// (UniMatch): `sum_p m_p CE_p / |valid|`. `mask` is `[B, H, W]` f32.
pub fn masked_cross_entropy(logits: &Tensor, labels: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let (l, v) = ce_map(logits, labels)?;
    let n = v.sum_all()?.to_scalar::<f32>()?;
    (l * mask)?.sum_all()? / (n.max(1.0) as f64)
}

fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let n = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::MAX)?;
    x.broadcast_div(&n)
}

/// The contrastive term (METHOD.md §2, our reading): `z1, z2` `[N, D]` features of the
/// same pixels in two strong views, `w` `[C, D]` classifier weights as negatives,
/// temperature `t`; symmetrised over (z1, z2).
pub fn contrastive(z1: &Tensor, z2: &Tensor, w: &Tensor, t: f64) -> Result<Tensor> {
    let z1 = l2_normalize(z1)?;
    let z2 = l2_normalize(z2)?;
    let w = l2_normalize(w)?;
    let one = |a: &Tensor, b: &Tensor| -> Result<Tensor> {
        let pos = (a * b)?.sum_keepdim(1)?; // [N, 1]
        let neg = a.matmul(&w.t()?)?; // [N, C]
        let all = (Tensor::cat(&[&pos, &neg], 1)? / t)?;
        let lse = candle_nn::ops::log_softmax(&all, 1)?;
        lse.narrow(1, 0, 1)?.neg()?.mean_all()
    };
    (one(&z1, &z2)? + one(&z2, &z1)?)? * 0.5
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn ce_matches_hand_computation_and_ignores() -> Result<()> {
        let dev = Device::Cpu;
        // One image, 2 classes, 1x3 pixels.
        let logits = Tensor::new(&[[[[2f32, 0., 1.]], [[0f32, 0., 3.]]]], &dev)?;
        let labels = Tensor::new(&[[[0u32, 255, 1]]], &dev)?;
        let got = cross_entropy(&logits, &labels)?.to_scalar::<f32>()?;
        let p0 = -(2f32.exp() / (2f32.exp() + 1.0)).ln();
        let p2 = -(3f32.exp() / (1f32.exp() + 3f32.exp())).ln();
        assert!((got - (p0 + p2) / 2.0).abs() < 1e-6);
        let bad = Tensor::new(&[[[0u32, 7, 1]]], &dev)?;
        assert!(cross_entropy(&logits, &bad).is_err());
        Ok(())
    }

    #[test]
    fn contrastive_prefers_aligned_views() -> Result<()> {
        let dev = Device::Cpu;
        let z = Tensor::randn(0f32, 1., (64, 16), &dev)?;
        let w = Tensor::randn(0f32, 1., (5, 16), &dev)?;
        let aligned = contrastive(&z, &z, &w, 0.1)?.to_scalar::<f32>()?;
        let other = Tensor::randn(0f32, 1., (64, 16), &dev)?;
        let random = contrastive(&z, &other, &w, 0.1)?.to_scalar::<f32>()?;
        assert!(aligned < random, "{aligned} vs {random}");
        assert!(aligned >= 0.0);
        Ok(())
    }

    #[test]
    fn contrastive_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let z2 = Tensor::randn(0f64, 1., (6, 4), &dev)?;
        let w = Tensor::randn(0f64, 1., (3, 4), &dev)?;
        let z1 = Tensor::randn(0f64, 1., (6, 4), &dev)?;
        crate::ops::gradcheck::check_grad(&z1, |t| contrastive(t, &z2, &w, 0.5), 1e-6)
    }
}
