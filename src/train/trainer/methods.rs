//! The losses of each training method, one function per method (docs/METHOD.md §2, §7).

use super::views::{weak_targets, Labelled, LabelledTargets, PseudoTargets, Unlabelled};
use super::{StepReport, TrainConfig};
use crate::model::{CsraNet, Parts};
use crate::train::geometry::{foreground_loss, hv_loss};
use crate::train::losses::{contrastive, cross_entropy, masked_cross_entropy};
use candle_core::{DType, Result, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F32)?.to_scalar::<f32>()? as f64)
}

/// The outputs of the views `[start, start + n)` of a batched forward.
pub(super) struct Slice {
    pub logits: Tensor,
    pub geometry: Option<Tensor>,
}

pub(super) fn slice(parts: &Parts, start: usize, n: usize) -> Result<Slice> {
    Ok(Slice {
        logits: parts.logits.narrow(0, start, n)?,
        geometry: match &parts.geometry {
            Some(g) => Some(g.narrow(0, start, n)?),
            None => None,
        },
    })
}

/// The supervised loss of labelled views against their targets: the class cross-entropy and,
/// for models with the geometry head, HoVer-Net's foreground (BCE + Dice) and HV (MSE + MSGE)
/// terms. Terms are added to `report` (summed over calls).
pub(super) fn supervised_loss(
    out: &Slice,
    t: &LabelledTargets,
    report: &mut StepReport,
) -> Result<Tensor> {
    let ce = cross_entropy(&out.logits, &t.classes)?;
    report.loss_class += scalar(&ce)?;
    let Some(g) = &out.geometry else {
        return Ok(ce);
    };
    let (bce, dice) = foreground_loss(&out.logits, &t.foreground, &t.valid)?;
    report.loss_foreground += scalar(&bce)? + scalar(&dice)?;
    let mut total = ((ce + bce)? + dice)?;
    if let Some((hv_t, hv_ok)) = &t.hv {
        let nuclei = (&t.foreground * hv_ok)?;
        let (mse, msge) = hv_loss(g, hv_t, hv_ok, &nuclei)?;
        report.loss_geometry += scalar(&mse)? + scalar(&msge)?;
        total = ((total + mse)? + msge)?;
    }
    Ok(total)
}

/// The unsupervised loss of one strong view against the weak view's pseudo-targets:
/// confidence-masked cross-entropy and, with the geometry head, the mean squared error to the
/// weak view's HV maps over the confident pixels (SWC extended to the geometry).
pub(super) fn unsupervised_loss(out: &Slice, t: &PseudoTargets) -> Result<Tensor> {
    let ce = masked_cross_entropy(&out.logits, &t.classes, &t.confident)?;
    match (&out.geometry, &t.hv) {
        (Some(g), Some(target)) => {
            let m = t.confident.unsqueeze(1)?;
            let n = (m.sum_all()? * 2.0)?;
            let se = (g - target)?.sqr()?.broadcast_mul(&m)?.sum_all()?;
            ce + se.broadcast_div(&(n + 1.0)?)?
        }
        _ => Ok(ce),
    }
}

/// Supervised-only: `L_s` on the weak labelled views.
pub(super) fn loss_supervised(
    parts: &Parts,
    l: &Labelled,
    report: &mut StepReport,
) -> Result<Tensor> {
    let out = slice(parts, 0, l.weak.len())?;
    let total = supervised_loss(&out, &l.targets, report)?;
    report.loss_sup = scalar(&total)?;
    Ok(total)
}

/// FixMatch: `(L_x + L_s1) / 2`.
pub(super) fn loss_fixmatch(
    parts: &Parts,
    l: &Labelled,
    u: &Unlabelled,
    report: &mut StepReport,
) -> Result<Tensor> {
    let nl = l.weak.len();
    let nu = u.weak.len();
    let l_x = supervised_loss(&slice(parts, 0, nl)?, &l.targets, report)?;
    let l_u = unsupervised_loss(&slice(parts, nl, nu)?, &u.targets[0])?;
    report.loss_sup = scalar(&l_x)?;
    report.loss_unsup = scalar(&l_u)?;
    (l_x + l_u)? * 0.5
}

/// UniMatch: `(L_x + 0.25 L_s1 + 0.25 L_s2 + 0.5 L_fp) / 2`, the feature perturbation being
/// Dropout2d(0.5) on the encoder output of the weak views.
pub(super) fn loss_unimatch(
    model: &CsraNet,
    cfg: &TrainConfig,
    parts: &Parts,
    l: &Labelled,
    u: &Unlabelled,
    report: &mut StepReport,
) -> Result<Tensor> {
    let nl = l.weak.len();
    let nu = u.weak.len();
    let dev = model.device();
    let (cw, ch) = (cfg.weak.crop_width, cfg.weak.crop_height);
    let l_x = supervised_loss(&slice(parts, 0, nl)?, &l.targets, report)?;
    let l_1 = unsupervised_loss(&slice(parts, nl, nu)?, &u.targets[0])?;
    let l_2 = unsupervised_loss(&slice(parts, nl + nu, nu)?, &u.targets[1])?;
    let mut enc = model.encode(&super::views::images_tensor(cfg, &u.weak, dev)?, true)?;
    let (b, c, _, _) = enc.deep.dims4()?;
    let keep = Tensor::rand(0f32, 1f32, (b, c, 1, 1), dev)?
        .ge(0.5f64)?
        .to_dtype(DType::F32)?;
    enc.deep = enc.deep.broadcast_mul(&(keep * 2.0)?)?;
    let fp = model.decode(&enc, ch, cw, true)?.logits;
    let (t_fp, m_fp) = weak_targets(u, cw, ch)?;
    let l_fp = masked_cross_entropy(&fp, &t_fp, &m_fp)?;
    report.loss_sup = scalar(&l_x)?;
    report.loss_unsup = (scalar(&l_1)? + scalar(&l_2)?) / 2.0;
    report.loss_fp = scalar(&l_fp)?;
    (l_x + (l_1 * 0.25)? + (l_2 * 0.25)? + (l_fp * 0.5)?)? * 0.5
}

/// CSRA-Net (SWC): `L_s + lambda_u L_u + lambda_c L_c`, `L_s` on the weak and the strong
/// labelled views, `L_u` the mean over the two strong unlabelled views, `L_c` the
/// contrastive term between them.
pub(super) fn loss_csra(
    model: &CsraNet,
    cfg: &TrainConfig,
    parts: &Parts,
    l: &Labelled,
    u: &Unlabelled,
    rng: &mut ChaCha8Rng,
    report: &mut StepReport,
) -> Result<Tensor> {
    let nl = l.weak.len();
    let nu = u.weak.len();
    let weak_sup = supervised_loss(&slice(parts, 0, nl)?, &l.targets, report)?;
    let strong_sup = supervised_loss(&slice(parts, nl, nl)?, &l.targets, report)?;
    let l_s = (weak_sup + strong_sup)?;
    let first_strong = 2 * nl;
    let l_1 = unsupervised_loss(&slice(parts, first_strong, nu)?, &u.targets[0])?;
    let l_2 = unsupervised_loss(&slice(parts, first_strong + nu, nu)?, &u.targets[1])?;
    let l_u = ((l_1 + l_2)? * 0.5)?;
    report.loss_sup = scalar(&l_s)?;
    report.loss_unsup = scalar(&l_u)?;
    let mut total = (l_s + (l_u * cfg.lambda_u)?)?;
    if cfg.contrastive && cfg.lambda_c > 0.0 {
        if let Some(l_c) = contrastive_term(model, cfg, &parts.features, first_strong, u, rng)? {
            report.loss_contrast = scalar(&l_c)?;
            total = (total + (l_c * cfg.lambda_c)?)?;
        }
    }
    Ok(total)
}

/// SWC's contrastive term between the two strong unlabelled views (whose features start at
/// `first_strong`), at up to `contrast_pixels` feature pixels where both views come from the
/// same source image; `None` when there is no such pixel.
fn contrastive_term(
    model: &CsraNet,
    cfg: &TrainConfig,
    features: &Tensor,
    first_strong: usize,
    u: &Unlabelled,
    rng: &mut ChaCha8Rng,
) -> Result<Option<Tensor>> {
    let nu = u.weak.len();
    let (cw, ch) = (cfg.weak.crop_width, cfg.weak.crop_height);
    let (_, d, fh, fw) = features.dims4()?;
    let stride_y = ch as f64 / fh as f64;
    let stride_x = cw as f64 / fw as f64;
    let mut same = Vec::new();
    for (i, [b1, b2]) in u.boxes.iter().enumerate() {
        for y in 0..fh {
            let py = ((y as f64 + 0.5) * stride_y) as usize;
            for x in 0..fw {
                let px = ((x as f64 + 0.5) * stride_x) as usize;
                let in1 = b1.is_some_and(|b| b.contains(px, py));
                let in2 = b2.is_some_and(|b| b.contains(px, py));
                if in1 == in2 {
                    same.push((i * fh * fw + y * fw + x) as u32);
                }
            }
        }
    }
    let n = cfg.contrast_pixels.min(same.len());
    if n == 0 {
        return Ok(None);
    }
    let pick: Vec<u32> = (0..n)
        .map(|_| same[rng.random_range(0..same.len())])
        .collect();
    let idx = Tensor::from_vec(pick, n, model.device())?;
    let pixels = |start: usize| -> Result<Tensor> {
        features
            .narrow(0, start, nu)?
            .permute((0, 2, 3, 1))?
            .reshape((nu * fh * fw, d))?
            .index_select(&idx, 0)
    };
    let z1 = pixels(first_strong)?;
    let z2 = pixels(first_strong + nu)?;
    let w = model
        .classifier_weight()
        .reshape((model.config().num_classes, d))?;
    Ok(Some(contrastive(&z1, &z2, &w, cfg.temperature)?))
}
