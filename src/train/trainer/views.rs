//! The views a training step is made of: labelled weak (and strong) views with their targets,
//! unlabelled weak views, the weak model's pseudo-labels and the strong views with CutMix.

use super::{Method, TrainConfig, TrainTile};
use crate::imaging::{PlanarImage, IGNORE};
use crate::infer::image::ImageView;
use crate::model::CsraNet;
use crate::train::augment::{self, CutBox};
use crate::train::geometry::{class_targets, hv_targets, label_masks};
use candle_core::{Device, Result, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Nuclei smaller than this many pixels get no HV target (HoVer-Net drops them as well).
const HV_MIN_AREA: usize = 30;

/// An augmentation's refusal (a bad setting) as an invalid-argument error, carried through
/// candle's `Result` with its kind.
fn invalid(msg: String) -> candle_core::Error {
    crate::Error::invalid(msg).into()
}

pub(super) fn to_image(v: &ImageView) -> PlanarImage {
    let (w, h) = (v.width(), v.height());
    let mut data = vec![0f32; 3 * w * h];
    for y in 0..h {
        for x in 0..w {
            let p = v.rgb(x, y);
            for c in 0..3 {
                data[c * w * h + y * w + x] = p[c] as f32 / 255.0;
            }
        }
    }
    PlanarImage {
        width: w,
        height: h,
        data,
    }
}

/// Normalised `[B, 3, H, W]` tensor of same-sized images.
pub(super) fn images_tensor(
    cfg: &TrainConfig,
    imgs: &[PlanarImage],
    dev: &Device,
) -> Result<Tensor> {
    let (w, h) = (imgs[0].width, imgs[0].height);
    let n = w * h;
    let mut buf = Vec::with_capacity(imgs.len() * 3 * n);
    for im in imgs {
        for c in 0..3 {
            let (m, s) = (cfg.normalize_mean[c], cfg.normalize_std[c]);
            buf.extend(im.data[c * n..(c + 1) * n].iter().map(|v| (v - m) / s));
        }
    }
    Tensor::from_vec(buf, (imgs.len(), 3, h, w), dev)
}

/// Targets of the labelled views (the same for their weak and strong views).
pub(super) struct LabelledTargets {
    /// Class ids for the cross-entropy, `[B, H, W]` u32 (ignore = 255, unknown-class nuclei
    /// ignored too).
    pub classes: Tensor,
    /// `[B, 1, H, W]` 0/1: pixels inside the crop.
    pub valid: Tensor,
    /// `[B, 1, H, W]` 0/1: nucleus pixels.
    pub foreground: Tensor,
    /// HV targets `[B, 2, H, W]`, and the mask `[B, 1, H, W]` of pixels that have one
    /// (valid pixels of tiles with an instance map), when the model has a geometry head.
    pub hv: Option<(Tensor, Tensor)>,
}

/// The labelled side of a step.
pub(super) struct Labelled {
    pub weak: Vec<PlanarImage>,
    /// Strong photometric views of `weak` (CSRA-Net only).
    pub strong: Vec<PlanarImage>,
    pub targets: LabelledTargets,
}

pub(super) fn labelled_views(
    cfg: &TrainConfig,
    model: &CsraNet,
    tiles: &[TrainTile],
    rng: &mut ChaCha8Rng,
) -> Result<Labelled> {
    let dev = model.device();
    let (cw, ch) = (cfg.weak.crop_width, cfg.weak.crop_height);
    let geometry = model.config().geometry;
    let mut weak = Vec::with_capacity(tiles.len());
    let mut labels = Vec::with_capacity(tiles.len());
    let mut hv = Vec::new();
    let mut hv_ok = Vec::new();
    for t in tiles {
        let img = to_image(&t.image);
        let p = augment::sample_weak_params(img.width, img.height, &cfg.weak, rng);
        let mut im = augment::apply_weak_image(&img, &p, cfg.weak.pad_value);
        let lab = augment::apply_weak_plane(t.label.expect("checked by step"), &p, IGNORE);
        if cfg.labelled_photometric > 0.0 && rng.random::<f64>() < cfg.labelled_photometric {
            im = augment::strong_view(&im, &cfg.strong, rng).map_err(invalid)?;
        }
        if geometry {
            // HV targets after the geometric augmentation (flips and rotations change signs).
            match t.instances {
                Some(inst) => {
                    let inst = augment::apply_weak_plane(inst, &p, 0u32);
                    hv.extend(hv_targets(&inst, cw, ch, HV_MIN_AREA));
                    hv_ok.extend(lab.iter().map(|&v| if v == IGNORE { 0f32 } else { 1.0 }));
                }
                None => {
                    hv.extend(std::iter::repeat_n(0f32, 2 * cw * ch));
                    hv_ok.extend(std::iter::repeat_n(0f32, cw * ch));
                }
            }
        }
        weak.push(im);
        labels.push(lab);
    }
    let b = tiles.len();
    let (valid, foreground) = label_masks(&labels, cw, ch, dev)?;
    let targets = LabelledTargets {
        classes: class_targets(&labels, cw, ch, dev)?,
        valid,
        foreground,
        hv: if geometry {
            Some((
                Tensor::from_vec(hv, (b, 2, ch, cw), dev)?,
                Tensor::from_vec(hv_ok, (b, 1, ch, cw), dev)?,
            ))
        } else {
            None
        },
    };
    let mut strong = Vec::new();
    if cfg.method == Method::Csra {
        for im in &weak {
            strong.push(augment::strong_view(im, &cfg.strong, rng).map_err(invalid)?);
        }
    }
    Ok(Labelled {
        weak,
        strong,
        targets,
    })
}

/// Pseudo-targets of one strong view of the unlabelled batch.
pub(super) struct PseudoTargets {
    /// `[B, H, W]` u32 classes (255 outside the crop).
    pub classes: Tensor,
    /// `[B, H, W]` f32: 1 where the weak prediction is confident.
    pub confident: Tensor,
    /// The weak view's HV maps under the same CutMix box, `[B, 2, H, W]`.
    pub hv: Option<Tensor>,
}

/// The unlabelled side of a step.
pub(super) struct Unlabelled {
    pub weak: Vec<PlanarImage>,
    /// One or two strong views (with CutMix from the next tile of the batch).
    pub strong: Vec<Vec<PlanarImage>>,
    pub targets: Vec<PseudoTargets>,
    /// CutMix boxes per tile and strong view.
    pub boxes: Vec<[Option<CutBox>; 2]>,
    /// Fraction of valid pixels above the confidence threshold.
    pub confident_ratio: f64,
}

#[allow(clippy::needless_range_loop)] // the view index k and channel c address several arrays
pub(super) fn unlabelled_views(
    cfg: &TrainConfig,
    model: &CsraNet,
    tiles: &[TrainTile],
    tau: f64,
    rng: &mut ChaCha8Rng,
) -> Result<Unlabelled> {
    let dev = model.device();
    let (cw, ch) = (cfg.weak.crop_width, cfg.weak.crop_height);
    let mut weak = Vec::with_capacity(tiles.len());
    let mut valid = Vec::with_capacity(tiles.len());
    for t in tiles {
        let img = to_image(&t.image);
        let p = augment::sample_weak_params(img.width, img.height, &cfg.weak, rng);
        weak.push(augment::apply_weak_image(&img, &p, cfg.weak.pad_value));
        valid.push(augment::apply_weak_plane(
            &vec![0u8; img.width * img.height],
            &p,
            IGNORE,
        ));
    }
    let nu = weak.len();
    // The weak view's prediction, in eval mode and without a graph.
    let parts = model.forward_parts(&images_tensor(cfg, &weak, dev)?, false)?;
    let probs = candle_nn::ops::softmax(&parts.logits.detach(), 1)?;
    let conf = probs.max(1)?.to_vec3::<f32>()?;
    let arg = probs.argmax(1)?.to_vec3::<u32>()?;
    let weak_hv: Option<Vec<Vec<Vec<Vec<f32>>>>> = match &parts.geometry {
        Some(g) => Some(
            (0..nu)
                .map(|i| g.get(i)?.to_vec3::<f32>())
                .collect::<Result<_>>()?,
        ),
        None => None,
    };
    let n_views = if cfg.method == Method::FixMatch { 1 } else { 2 };
    let (mut confident, mut total_valid) = (0usize, 0usize);
    let mut strong = Vec::with_capacity(n_views);
    let mut targets = Vec::with_capacity(n_views);
    let mut boxes = vec![[None, None]; nu];
    for k in 0..n_views {
        let mut labs = Vec::with_capacity(nu * cw * ch);
        let mut mask = Vec::with_capacity(nu * cw * ch);
        let mut hv = Vec::new();
        let mut imgs = Vec::with_capacity(nu);
        for i in 0..nu {
            let j = (i + 1) % nu;
            let mut im = augment::strong_view(&weak[i], &cfg.strong, rng).map_err(invalid)?;
            let mix = augment::strong_view(&weak[j], &cfg.strong, rng).map_err(invalid)?;
            let b = augment::cutmix_box(cw, ch, &cfg.strong, rng);
            if let Some(b) = &b {
                augment::paste_box_image(&mut im, &mix, b);
            }
            boxes[i][k] = b;
            imgs.push(im);
            // Targets follow the same box: inside it, the CutMix source's weak prediction.
            let src_of = |x: usize, y: usize| {
                if b.is_some_and(|b| b.contains(x, y)) {
                    j
                } else {
                    i
                }
            };
            for y in 0..ch {
                for x in 0..cw {
                    let s = src_of(x, y);
                    let ok = valid[s][y * cw + x] != IGNORE;
                    let m = ok && conf[s][y][x] as f64 >= tau;
                    labs.push(if ok { arg[s][y][x] } else { IGNORE as u32 });
                    mask.push(if m { 1f32 } else { 0.0 });
                    if ok {
                        total_valid += 1;
                        confident += m as usize;
                    }
                }
            }
            if let Some(w) = &weak_hv {
                for c in 0..2 {
                    for y in 0..ch {
                        for x in 0..cw {
                            hv.push(w[src_of(x, y)][c][y][x]);
                        }
                    }
                }
            }
        }
        targets.push(PseudoTargets {
            classes: Tensor::from_vec(labs, (nu, ch, cw), dev)?,
            confident: Tensor::from_vec(mask, (nu, ch, cw), dev)?,
            hv: if weak_hv.is_some() {
                Some(Tensor::from_vec(hv, (nu, 2, ch, cw), dev)?)
            } else {
                None
            },
        });
        strong.push(imgs);
    }
    Ok(Unlabelled {
        weak,
        strong,
        targets,
        boxes,
        confident_ratio: confident as f64 / total_valid.max(1) as f64,
    })
}

/// Pseudo-labels of the un-mixed weak views (UniMatch's feature-perturbation target),
/// rebuilt from the two strong views' targets: outside a view's CutMix box its targets are
/// the weak view's own.
pub(super) fn weak_targets(u: &Unlabelled, cw: usize, ch: usize) -> Result<(Tensor, Tensor)> {
    let nu = u.weak.len();
    let t0 = u.targets[0].classes.to_vec3::<u32>()?;
    let m0 = u.targets[0].confident.to_vec3::<f32>()?;
    let t1 = u.targets[1].classes.to_vec3::<u32>()?;
    let m1 = u.targets[1].confident.to_vec3::<f32>()?;
    let mut t = Vec::with_capacity(nu * cw * ch);
    let mut m = Vec::with_capacity(nu * cw * ch);
    for i in 0..nu {
        for y in 0..ch {
            for x in 0..cw {
                let in0 = u.boxes[i][0].is_some_and(|b| b.contains(x, y));
                let in1 = u.boxes[i][1].is_some_and(|b| b.contains(x, y));
                let (tv, mv) = match (in0, in1) {
                    (false, _) => (t0[i][y][x], m0[i][y][x]),
                    (true, false) => (t1[i][y][x], m1[i][y][x]),
                    (true, true) => (IGNORE as u32, 0.0),
                };
                t.push(tv);
                m.push(mv);
            }
        }
    }
    let dev = u.targets[0].classes.device();
    Ok((
        Tensor::from_vec(t, (nu, ch, cw), dev)?,
        Tensor::from_vec(m, (nu, ch, cw), dev)?,
    ))
}
