//! The training step: supervised-only, FixMatch, UniMatch and CSRA-Net (SWC) by
//! configuration (METHOD.md §2), with checkpoints.

use super::augment::{self, Image, StrongConfig, WeakConfig, IGNORE};
use super::losses::{contrastive, cross_entropy, masked_cross_entropy};
use super::optim::{OptimConfig, Sgd};
use crate::infer::image::{ImageView, Normalize};
use crate::model::{CsraNet, Kind};
use crate::{Error, ErrorKind, Result};
use candle_core::{DType, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Training method (the paper's baselines and CSRA-Net).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// `L_s` on the weak labelled view only.
    Supervised,
    /// One strong view: `(L_x + L_s1) / 2`.
    FixMatch,
    /// Two strong views plus feature perturbation: `(L_x + .25 L_s1 + .25 L_s2 + .5 L_fp) / 2`.
    UniMatch,
    /// CSRA-Net SWC: `L_s + lambda_u L_u + lambda_c L_c`.
    Csra,
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "supervised" => Ok(Self::Supervised),
            "fixmatch" => Ok(Self::FixMatch),
            "unimatch" => Ok(Self::UniMatch),
            "csra" => Ok(Self::Csra),
            o => Err(format!(
                "unknown method `{o}` (supervised, fixmatch, unimatch, csra)"
            )),
        }
    }
}

/// Everything a training run is configured by.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    pub method: Method,
    pub optim: OptimConfig,
    pub weak: WeakConfig,
    pub strong: StrongConfig,
    /// Confidence threshold of pseudo-labels.
    pub tau: f64,
    pub lambda_u: f64,
    pub lambda_c: f64,
    /// SWC's contrastive term (CSRA only); off = the SWC ablation.
    pub contrastive: bool,
    pub temperature: f64,
    /// Pixels sampled for the contrastive term.
    pub contrast_pixels: usize,
    pub normalize_mean: [f32; 3],
    pub normalize_std: [f32; 3],
    pub seed: u64,
    /// Probability that a labelled tile's weak view is also given the strong photometric
    /// augmentation (colour, grayscale, blur, H&E stain jitter; no CutMix) before the
    /// supervised loss. 0 (the default) is METHOD.md; > 0 trades fit for robustness to
    /// stain and scanner differences (used for the bundled model).
    pub labelled_photometric: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        let n = Normalize::default();
        Self {
            method: Method::Csra,
            optim: OptimConfig::default(),
            weak: WeakConfig::default(),
            strong: StrongConfig::default(),
            tau: 0.95,
            lambda_u: 1.0,
            lambda_c: 0.1,
            contrastive: true,
            temperature: 0.1,
            contrast_pixels: 1024,
            normalize_mean: n.mean,
            normalize_std: n.std,
            seed: 0,
            labelled_photometric: 0.0,
        }
    }
}

impl TrainConfig {
    /// Checks every field; the error ([`ErrorKind::InvalidArgument`]) names the bad one.
    pub fn validate(&self) -> Result<()> {
        self.optim.validate()?;
        self.weak.validate().map_err(Error::invalid)?;
        self.strong.validate().map_err(Error::invalid)?;
        if self.weak.crop_width != self.weak.crop_height {
            // candle 0.11's conv2d backward takes the transposed conv's output padding from
            // the height alone: height and width of different parity get wrong gradients.
            return Err(Error::invalid(format!(
                "train.weak crop must be square (got {}x{}): see docs/CANDLE-NOTES.md",
                self.weak.crop_width, self.weak.crop_height
            )));
        }
        if !(0.0..=1.0).contains(&self.tau) {
            return Err(Error::invalid(format!(
                "train.tau must be in [0, 1], got {}",
                self.tau
            )));
        }
        for (n, v) in [("lambda_u", self.lambda_u), ("lambda_c", self.lambda_c)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::invalid(format!("train.{n} must be >= 0, got {v}")));
            }
        }
        if !(0.0..=1.0).contains(&self.labelled_photometric) {
            return Err(Error::invalid(format!(
                "train.labelled_photometric must be in [0, 1], got {}",
                self.labelled_photometric
            )));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::invalid(format!(
                "train.temperature must be positive, got {}",
                self.temperature
            )));
        }
        Normalize {
            mean: self.normalize_mean,
            std: self.normalize_std,
        }
        .validate()
        .map_err(|e| Error::from_candle(ErrorKind::InvalidArgument, e))
    }

    fn uses_unlabelled(&self) -> bool {
        self.method != Method::Supervised
    }
}

/// One training tile: an image and, for labelled tiles, its class map (`H x W`, 255 =
/// ignore).
pub struct TrainTile<'a> {
    pub image: ImageView<'a>,
    pub label: Option<&'a [u8]>,
}

/// Loss terms and statistics of one step.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StepReport {
    pub step: usize,
    pub loss: f64,
    pub loss_sup: f64,
    pub loss_unsup: f64,
    pub loss_contrast: f64,
    pub loss_fp: f64,
    /// Fraction of valid unlabelled pixels above the confidence threshold.
    pub confident_ratio: f64,
    pub lr: f64,
}

/// The training state: configuration, optimizer, step counter and RNG.
pub struct Trainer {
    pub cfg: TrainConfig,
    pub opt: Sgd,
    pub step: usize,
    rng: ChaCha8Rng,
}

fn to_image(v: &ImageView) -> Image {
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
    Image {
        width: w,
        height: h,
        data,
    }
}

/// Normalised `[B, 3, H, W]` tensor of same-sized images.
fn images_tensor(
    cfg: &TrainConfig,
    imgs: &[Image],
    dev: &candle_core::Device,
) -> candle_core::Result<Tensor> {
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

fn u8_tensor(
    planes: &[Vec<u8>],
    w: usize,
    h: usize,
    dev: &candle_core::Device,
) -> candle_core::Result<Tensor> {
    let flat: Vec<u32> = planes
        .iter()
        .flat_map(|p| p.iter().map(|&v| v as u32))
        .collect();
    Tensor::from_vec(flat, (planes.len(), h, w), dev)
}

impl Trainer {
    pub fn new(cfg: TrainConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            opt: Sgd::new(cfg.optim.clone())?,
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            step: 0,
            cfg,
        })
    }

    /// One optimisation step on a labelled and (for the semi-supervised methods) an
    /// unlabelled batch. A NaN or infinite loss or gradient is an error and leaves the
    /// weights and batch-norm statistics unchanged.
    pub fn step(
        &mut self,
        model: &CsraNet,
        labelled: &[TrainTile],
        unlabelled: &[TrainTile],
    ) -> Result<StepReport> {
        if labelled.is_empty() {
            return Err(Error::invalid("the labelled batch is empty"));
        }
        for (i, t) in labelled.iter().enumerate() {
            match t.label {
                None => {
                    return Err(Error::invalid(format!(
                        "labelled tile {i} has no class map"
                    )))
                }
                Some(l) if l.len() != t.image.width() * t.image.height() => {
                    return Err(Error::invalid(format!(
                        "labelled tile {i}: class map has {} values, image has {} pixels",
                        l.len(),
                        t.image.width() * t.image.height()
                    )))
                }
                Some(l) => {
                    let nc = model.config().num_classes;
                    if let Some(bad) = l.iter().find(|&&v| v != IGNORE && v as usize >= nc) {
                        return Err(Error::invalid(format!(
                            "labelled tile {i}: class {bad} is out of range for {nc} classes"
                        )));
                    }
                }
            }
        }
        if self.cfg.uses_unlabelled() && unlabelled.len() < 2 {
            return Err(Error::invalid(format!(
                "method {:?} needs an unlabelled batch of at least 2 tiles",
                self.cfg.method
            )));
        }
        let buffers: Vec<(Var, Tensor)> = model
            .params()
            .vars()
            .into_iter()
            .filter(|(_, _, k)| *k == Kind::Buffer)
            .map(|(_, v, _)| {
                let t = v.as_tensor().copy()?;
                Ok((v, t))
            })
            .collect::<Result<_>>()?;
        let result = self.step_inner(model, labelled, unlabelled);
        if result.is_err() {
            for (v, t) in buffers {
                v.set(&t)?;
            }
        }
        result
    }

    fn step_inner(
        &mut self,
        model: &CsraNet,
        labelled: &[TrainTile],
        unlabelled: &[TrainTile],
    ) -> Result<StepReport> {
        let dev = model.device().clone();
        let cfg = self.cfg.clone();
        let (cw, ch) = (cfg.weak.crop_width, cfg.weak.crop_height);
        let rng = &mut self.rng;
        let mut report = StepReport {
            step: self.step,
            ..Default::default()
        };
        // Labelled weak (+ strong) views.
        let mut lw = Vec::new();
        let mut ll = Vec::new();
        for t in labelled {
            let (mut im, lab) = augment::weak_view(&to_image(&t.image), t.label, &cfg.weak, rng)
                .map_err(Error::invalid)?;
            if cfg.labelled_photometric > 0.0 && rng.random::<f64>() < cfg.labelled_photometric {
                im = augment::strong_view(&im, &cfg.strong, rng).map_err(Error::invalid)?;
            }
            lw.push(im);
            ll.push(lab.expect("label"));
        }
        let labels = u8_tensor(&ll, cw, ch, &dev)?;
        let nl = lw.len();
        let mut views = vec![lw.clone()];
        let mut strong_l = Vec::new();
        if cfg.method == Method::Csra {
            for im in &lw {
                strong_l.push(augment::strong_view(im, &cfg.strong, rng).map_err(Error::invalid)?);
            }
            views.push(strong_l.clone());
        }
        // Unlabelled: weak views with a validity plane, pseudo-labels, strong views + CutMix.
        let mut s1 = Vec::new();
        let mut s2 = Vec::new();
        let mut targets: Vec<(Tensor, Tensor)> = Vec::new();
        let mut boxes: Vec<[Option<augment::CutBox>; 2]> = Vec::new();
        let mut uw = Vec::new();
        if cfg.uses_unlabelled() {
            let mut valid = Vec::new();
            for t in unlabelled {
                let zeros = vec![0u8; t.image.width() * t.image.height()];
                let (im, v) = augment::weak_view(&to_image(&t.image), Some(&zeros), &cfg.weak, rng)
                    .map_err(Error::invalid)?;
                uw.push(im);
                valid.push(v.expect("plane"));
            }
            let nu = uw.len();
            let x = images_tensor(&cfg, &uw, &dev)?;
            let probs = candle_nn::ops::softmax(&model.forward_t(&x, false)?.detach(), 1)?;
            let conf = probs.max(1)?.to_vec3::<f32>()?;
            let arg = probs.argmax(1)?.to_vec3::<u32>()?;
            let n_views = if cfg.method == Method::FixMatch { 1 } else { 2 };
            let mut confident = 0usize;
            let mut total_valid = 0usize;
            for k in 0..n_views {
                let mut labs = Vec::with_capacity(nu * cw * ch);
                let mut mask = Vec::with_capacity(nu * cw * ch);
                let mut imgs = Vec::with_capacity(nu);
                for i in 0..nu {
                    let j = (i + 1) % nu;
                    let mut im =
                        augment::strong_view(&uw[i], &cfg.strong, rng).map_err(Error::invalid)?;
                    let mix =
                        augment::strong_view(&uw[j], &cfg.strong, rng).map_err(Error::invalid)?;
                    let b = augment::cutmix_box(cw, ch, &cfg.strong, rng);
                    if let Some(b) = &b {
                        augment::paste_box_image(&mut im, &mix, b);
                    }
                    if k == 0 {
                        boxes.push([b, None]);
                    } else {
                        boxes[i][1] = b;
                    }
                    imgs.push(im);
                    for y in 0..ch {
                        for x in 0..cw {
                            let src = if b.is_some_and(|b| b.contains(x, y)) {
                                j
                            } else {
                                i
                            };
                            let ok = valid[src][y * cw + x] != IGNORE;
                            let c = conf[src][y][x];
                            labs.push(if ok { arg[src][y][x] } else { IGNORE as u32 });
                            let m = ok && c as f64 >= cfg.tau;
                            mask.push(if m { 1f32 } else { 0f32 });
                            if ok {
                                total_valid += 1;
                                confident += m as usize;
                            }
                        }
                    }
                }
                targets.push((
                    Tensor::from_vec(labs, (nu, ch, cw), &dev)?,
                    Tensor::from_vec(mask, (nu, ch, cw), &dev)?,
                ));
                if k == 0 {
                    s1 = imgs;
                } else {
                    s2 = imgs;
                }
            }
            report.confident_ratio = confident as f64 / total_valid.max(1) as f64;
            views.push(s1.clone());
            if n_views == 2 {
                views.push(s2.clone());
            }
        }
        // One training forward over all views (batch norm sees them together).
        let all: Vec<Image> = views.iter().flat_map(|v| v.iter().cloned()).collect();
        let x = images_tensor(&cfg, &all, &dev)?;
        let parts = model.forward_parts(&x, true)?;
        let logits = parts.logits;
        let l_x = cross_entropy(&logits.narrow(0, 0, nl)?, &labels)?;
        let mut offset = nl;
        let mut total;
        let nu = s1.len();
        // Confidence-masked CE of strong view k, whose logits start at `at + k * nu`.
        let unsup = |k: usize, at: usize| -> candle_core::Result<Tensor> {
            masked_cross_entropy(
                &logits.narrow(0, at + k * nu, nu)?,
                &targets[k].0,
                &targets[k].1,
            )
        };
        match cfg.method {
            Method::Supervised => {
                total = l_x.clone();
                report.loss_sup = l_x.to_scalar::<f32>()? as f64;
            }
            Method::FixMatch => {
                let l_u = unsup(0, offset)?;
                report.loss_sup = l_x.to_scalar::<f32>()? as f64;
                report.loss_unsup = l_u.to_scalar::<f32>()? as f64;
                total = ((l_x + l_u)? * 0.5)?;
            }
            Method::UniMatch => {
                let l1 = unsup(0, offset)?;
                let l2 = unsup(1, offset)?;
                // Feature perturbation: Dropout2d(0.5) on the encoder output of the weak view,
                // supervised by the weak view's own pseudo-labels.
                let xw = images_tensor(&cfg, &uw, &dev)?;
                let enc = model.encode(&xw, true)?;
                let (b, c, _, _) = enc.dims4()?;
                let keep = Tensor::rand(0f32, 1f32, (b, c, 1, 1), &dev)?
                    .ge(0.5f64)?
                    .to_dtype(DType::F32)?;
                let enc = enc.broadcast_mul(&(keep * 2.0)?)?;
                let fp = model.decode(&enc, ch, cw, true)?.logits;
                let (tfp, mfp) = weak_targets(&targets, &boxes, nu, cw, ch)?;
                let l_fp = masked_cross_entropy(&fp, &tfp, &mfp)?;
                report.loss_sup = l_x.to_scalar::<f32>()? as f64;
                report.loss_unsup =
                    ((l1.to_scalar::<f32>()? + l2.to_scalar::<f32>()?) / 2.0) as f64;
                report.loss_fp = l_fp.to_scalar::<f32>()? as f64;
                total = ((l_x + (l1 * 0.25)? + (l2 * 0.25)? + (l_fp * 0.5)?)? * 0.5)?;
            }
            Method::Csra => {
                let l_s = (l_x + cross_entropy(&logits.narrow(0, nl, nl)?, &labels)?)?;
                offset += nl;
                let l1 = unsup(0, offset)?;
                let l2 = unsup(1, offset)?;
                let l_u = ((l1 + l2)? * 0.5)?;
                report.loss_sup = l_s.to_scalar::<f32>()? as f64;
                report.loss_unsup = l_u.to_scalar::<f32>()? as f64;
                total = (l_s + (l_u * cfg.lambda_u)?)?;
                if cfg.contrastive && cfg.lambda_c > 0.0 {
                    let f = &parts.features;
                    let (_, d, fh, fw) = f.dims4()?;
                    let os_y = ch as f64 / fh as f64;
                    let os_x = cw as f64 / fw as f64;
                    // Feature pixels where both strong views come from the same source image.
                    let mut same = Vec::new();
                    for (i, [b1, b2]) in boxes.iter().enumerate() {
                        for y in 0..fh {
                            let py = ((y as f64 + 0.5) * os_y) as usize;
                            for x in 0..fw {
                                let px = ((x as f64 + 0.5) * os_x) as usize;
                                let in1 = b1.is_some_and(|b| b.contains(px, py));
                                let in2 = b2.is_some_and(|b| b.contains(px, py));
                                if in1 == in2 {
                                    same.push((i * fh * fw + y * fw + x) as u32);
                                }
                            }
                        }
                    }
                    let n = cfg.contrast_pixels.min(same.len());
                    if n > 0 {
                        let pick: Vec<u32> = (0..n)
                            .map(|_| same[rng.random_range(0..same.len())])
                            .collect();
                        let idx = Tensor::from_vec(pick, n, &dev)?;
                        let flat = |start: usize| -> candle_core::Result<Tensor> {
                            f.narrow(0, start, nu)?
                                .permute((0, 2, 3, 1))?
                                .reshape((nu * fh * fw, d))?
                                .index_select(&idx, 0)
                        };
                        let z1 = flat(offset)?;
                        let z2 = flat(offset + nu)?;
                        let w = model
                            .classifier_weight()
                            .reshape((model.config().num_classes, d))?;
                        let l_c = contrastive(&z1, &z2, &w, cfg.temperature)?;
                        report.loss_contrast = l_c.to_scalar::<f32>()? as f64;
                        total = (total + (l_c * cfg.lambda_c)?)?;
                    }
                }
            }
        }
        let loss = total.to_scalar::<f32>()? as f64;
        if !loss.is_finite() {
            return Err(Error::non_finite(format!(
                "loss is {loss} at step {}; weights left unchanged",
                self.step
            )));
        }
        let grads = total.backward()?;
        let params = model.params().trainable();
        let lr = self.opt.step(&params, &grads, self.step)?;
        report.loss = loss;
        report.lr = lr;
        self.step += 1;
        Ok(report)
    }

    /// Serialisable trainer state (without weights): config, step, RNG position,
    /// momentum buffers are saved as tensors by `checkpoint`.
    pub fn state(&self) -> TrainerState {
        let pos = self.rng.get_word_pos();
        TrainerState {
            config: self.cfg.clone(),
            step: self.step,
            rng_word_pos: [(pos >> 64) as u64, pos as u64],
        }
    }

    /// Restores the step, RNG and momentum buffers.
    pub fn restore(&mut self, st: &TrainerState, buffers: BTreeMap<String, Tensor>) {
        self.step = st.step;
        self.rng = ChaCha8Rng::seed_from_u64(st.config.seed);
        self.rng
            .set_word_pos(((st.rng_word_pos[0] as u128) << 64) | st.rng_word_pos[1] as u128);
        self.opt.buffers = buffers;
    }
}

/// Pseudo-labels of the un-mixed weak views (UniMatch's feature-perturbation target),
/// rebuilt from the two strong views' targets: outside a view's CutMix box its targets
/// are the weak view's own.
fn weak_targets(
    targets: &[(Tensor, Tensor)],
    boxes: &[[Option<augment::CutBox>; 2]],
    nu: usize,
    cw: usize,
    ch: usize,
) -> Result<(Tensor, Tensor)> {
    // Pixels inside view 0's box belong to the neighbour: take them from view 1 where
    // view 1 has no box there, else mark them ignored.
    let t0 = targets[0].0.to_vec3::<u32>()?;
    let m0 = targets[0].1.to_vec3::<f32>()?;
    let t1 = targets[1].0.to_vec3::<u32>()?;
    let m1 = targets[1].1.to_vec3::<f32>()?;
    let mut t = Vec::with_capacity(nu * cw * ch);
    let mut m = Vec::with_capacity(nu * cw * ch);
    for i in 0..nu {
        for y in 0..ch {
            for x in 0..cw {
                let in0 = boxes[i][0].is_some_and(|b| b.contains(x, y));
                let in1 = boxes[i][1].is_some_and(|b| b.contains(x, y));
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
    Ok((
        Tensor::from_vec(t, (nu, ch, cw), targets[0].0.device())?,
        Tensor::from_vec(m, (nu, ch, cw), targets[0].0.device())?,
    ))
}

/// What a checkpoint holds besides tensors.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainerState {
    pub config: TrainConfig,
    pub step: usize,
    pub rng_word_pos: [u64; 2],
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Config;
    use candle_core::Device;

    fn tiny() -> Config {
        Config {
            depth: 18,
            width: 0.125,
            output_stride: 16,
            raa: true,
            raa_region: 2,
            ..Config::lite()
        }
    }

    /// A synthetic 64x64 tile: dark "nuclei" discs (class 1 or 2) on a light background.
    fn tile(seed: u32) -> (Vec<u8>, Vec<u8>) {
        let (w, h) = (64usize, 64usize);
        let mut img = vec![220u8; w * h * 3];
        let mut lab = vec![0u8; w * h];
        for k in 0..4u32 {
            let cx = ((seed * 17 + k * 23) % 50 + 7) as i64;
            let cy = ((seed * 29 + k * 13) % 50 + 7) as i64;
            for y in 0..h as i64 {
                for x in 0..w as i64 {
                    if (x - cx).pow(2) + (y - cy).pow(2) < 25 {
                        let i = (y as usize) * w + x as usize;
                        lab[i] = 1 + (k % 2) as u8;
                        img[3 * i..3 * i + 3].copy_from_slice(&[80, 40, 120]);
                    }
                }
            }
        }
        (img, lab)
    }

    fn cfg(method: Method) -> TrainConfig {
        let mut c = TrainConfig {
            method,
            seed: 3,
            contrast_pixels: 64,
            ..Default::default()
        };
        c.weak.crop_width = 64;
        c.weak.crop_height = 64;
        c.optim.total_steps = 10;
        c.tau = 0.0; // every pixel confident, so the unlabelled terms are exercised
        c
    }

    #[test]
    fn every_method_takes_finite_steps_and_changes_weights() -> Result<()> {
        let data: Vec<(Vec<u8>, Vec<u8>)> = (0..4).map(tile).collect();
        let views: Vec<ImageView> = data
            .iter()
            .map(|(i, _)| ImageView::new(i, 64, 64, 192, crate::infer::PixelFormat::Rgb8))
            .collect::<candle_core::Result<_>>()?;
        for method in [
            Method::Supervised,
            Method::FixMatch,
            Method::UniMatch,
            Method::Csra,
        ] {
            let model = CsraNet::new(&tiny(), &Device::Cpu, 1)?;
            let before = model
                .params()
                .get("classifier.4.weight")
                .unwrap()
                .as_tensor()
                .copy()?;
            let mut t = Trainer::new(cfg(method))?;
            let lab: Vec<TrainTile> = (0..2)
                .map(|i| TrainTile {
                    image: views[i],
                    label: Some(&data[i].1),
                })
                .collect();
            let unl: Vec<TrainTile> = (2..4)
                .map(|i| TrainTile {
                    image: views[i],
                    label: None,
                })
                .collect();
            let r = t.step(&model, &lab, &unl)?;
            assert!(r.loss.is_finite() && r.loss > 0.0, "{method:?}: {r:?}");
            if method != Method::Supervised {
                assert!(
                    r.loss_unsup > 0.0 && r.confident_ratio > 0.99,
                    "{method:?}: {r:?}"
                );
            }
            if method == Method::Csra {
                assert!(r.loss_contrast > 0.0, "{r:?}");
            }
            if method == Method::UniMatch {
                assert!(r.loss_fp > 0.0, "{r:?}");
            }
            let after = model
                .params()
                .get("classifier.4.weight")
                .unwrap()
                .as_tensor()
                .copy()?;
            let d = (after - before)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(d > 0.0, "{method:?} did not update the classifier");
            assert_eq!(t.step, 1);
        }
        Ok(())
    }

    #[test]
    fn nan_loss_is_an_error_and_leaves_weights_and_statistics_unchanged() -> Result<()> {
        let (img, lab) = tile(1);
        let view = ImageView::new(&img, 64, 64, 192, crate::infer::PixelFormat::Rgb8)?;
        let model = CsraNet::new(&tiny(), &Device::Cpu, 1)?;
        let w = model.params().get("classifier.4.bias").unwrap();
        w.set(&Tensor::new(&[f32::NAN, 0., 0., 0., 0.], &Device::Cpu)?)?;
        let snap = model.params().snapshot()?;
        let mut t = Trainer::new(cfg(Method::Supervised))?;
        let e = t
            .step(
                &model,
                &[TrainTile {
                    image: view,
                    label: Some(&lab),
                }],
                &[],
            )
            .unwrap_err();
        assert!(e.to_string().contains("loss is NaN"), "{e}");
        assert_eq!(e.kind(), ErrorKind::NonFinite, "{e}");
        for ((n, a), (_, b)) in snap.iter().zip(model.params().snapshot()?) {
            let same = a
                .flatten_all()?
                .to_vec1::<f32>()?
                .iter()
                .zip(b.flatten_all()?.to_vec1::<f32>()?)
                .all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "{n} changed after a NaN step");
        }
        assert_eq!(t.step, 0);
        Ok(())
    }

    #[test]
    fn bad_batches_are_refused() -> Result<()> {
        let (img, lab) = tile(2);
        let view = ImageView::new(&img, 64, 64, 192, crate::infer::PixelFormat::Rgb8)?;
        let model = CsraNet::new(&tiny(), &Device::Cpu, 1)?;
        let mut t = Trainer::new(cfg(Method::Csra))?;
        let e = t.step(&model, &[], &[]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        let bad = vec![9u8; 64 * 64];
        let e = t
            .step(
                &model,
                &[TrainTile {
                    image: view,
                    label: Some(&bad),
                }],
                &[],
            )
            .unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        let e = t
            .step(
                &model,
                &[TrainTile {
                    image: view,
                    label: Some(&lab),
                }],
                &[],
            )
            .unwrap_err();
        assert!(e.to_string().contains("unlabelled"), "{e}");
        let mut c = cfg(Method::Csra);
        c.weak.crop_height = 32;
        let e = Trainer::new(c).err().expect("a non-square crop is refused");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(e.to_string().contains("docs/CANDLE-NOTES.md"), "{e}");
        Ok(())
    }
}
