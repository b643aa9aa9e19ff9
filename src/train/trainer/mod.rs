//! The training step: supervised-only, FixMatch, UniMatch and CSRA-Net (SWC) by
//! configuration (docs/METHOD.md §2), with the instance-geometry terms for models that have
//! the geometry head (§7), and checkpoints.
//!
//! - [`views`]: the labelled and unlabelled views of a step and their (pseudo-)targets;
//! - [`methods`]: one loss function per method.

mod methods;
mod views;

use super::augment::{StrongConfig, WeakConfig};
use super::optim::{OptimConfig, Sgd};
use crate::imaging::{ImageView, Normalize, IGNORE, UNKNOWN_CLASS};
use crate::model::{CsraNet, Kind};
use crate::{Error, Result};
use candle_core::{Tensor, Var};
use rand::SeedableRng;
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
    }

    fn uses_unlabelled(&self) -> bool {
        self.method != Method::Supervised
    }
}

/// One training tile: an image and, for labelled tiles, its class map (`H x W`; 255 =
/// ignore, 254 = a nucleus of unknown class, see [`UNKNOWN_CLASS`]) and, when known, its
/// instance map (`H x W`, 0 = background), from which the geometry head's targets are made.
pub struct TrainTile<'a> {
    pub image: ImageView<'a>,
    pub label: Option<&'a [u8]>,
    pub instances: Option<&'a [u32]>,
}

/// Loss terms and statistics of one step.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StepReport {
    pub step: usize,
    pub loss: f64,
    /// The supervised loss `L_s` (all its terms).
    pub loss_sup: f64,
    pub loss_unsup: f64,
    pub loss_contrast: f64,
    pub loss_fp: f64,
    /// Parts of `loss_sup`: class cross-entropy, foreground BCE + Dice, HV MSE + MSGE
    /// (summed over the labelled views).
    #[serde(default)]
    pub loss_class: f64,
    #[serde(default)]
    pub loss_foreground: f64,
    #[serde(default)]
    pub loss_geometry: f64,
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

    /// Checks a batch before anything is computed.
    fn check_batch(
        &self,
        model: &CsraNet,
        labelled: &[TrainTile],
        unlabelled: &[TrainTile],
    ) -> Result<()> {
        if labelled.is_empty() {
            return Err(Error::invalid("the labelled batch is empty"));
        }
        let nc = model.config().num_classes;
        for (i, t) in labelled.iter().enumerate() {
            let n = t.image.width() * t.image.height();
            match t.label {
                None => {
                    return Err(Error::invalid(format!(
                        "labelled tile {i} has no class map"
                    )))
                }
                Some(l) if l.len() != n => {
                    return Err(Error::invalid(format!(
                        "labelled tile {i}: class map has {} values, image has {n} pixels",
                        l.len()
                    )))
                }
                Some(l) => {
                    let bad = l
                        .iter()
                        .find(|&&v| v != IGNORE && v != UNKNOWN_CLASS && v as usize >= nc);
                    if let Some(bad) = bad {
                        return Err(Error::invalid(format!(
                            "labelled tile {i}: class {bad} is out of range for {nc} classes"
                        )));
                    }
                }
            }
            if let Some(inst) = t.instances {
                if inst.len() != n {
                    return Err(Error::invalid(format!(
                        "labelled tile {i}: instance map has {} values, image has {n} pixels",
                        inst.len()
                    )));
                }
            }
        }
        if self.cfg.uses_unlabelled() && unlabelled.len() < 2 {
            return Err(Error::invalid(format!(
                "method {:?} needs an unlabelled batch of at least 2 tiles",
                self.cfg.method
            )));
        }
        Ok(())
    }

    /// One optimisation step on a labelled and (for the semi-supervised methods) an
    /// unlabelled batch. A NaN or infinite loss, gradient or updated parameter is an error
    /// and leaves the weights, momentum and batch-norm statistics unchanged.
    pub fn step(
        &mut self,
        model: &CsraNet,
        labelled: &[TrainTile],
        unlabelled: &[TrainTile],
    ) -> Result<StepReport> {
        self.check_batch(model, labelled, unlabelled)?;
        let buffers: Vec<(Var, Tensor)> = model
            .params()
            .vars()
            .into_iter()
            .filter(|(_, _, k)| *k == Kind::Buffer)
            .map(|(_, v, _)| {
                let t = v.as_tensor().copy()?;
                Ok((v, t))
            })
            .collect::<candle_core::Result<_>>()?;
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
        let cfg = self.cfg.clone();
        let rng = &mut self.rng;
        let mut report = StepReport {
            step: self.step,
            ..Default::default()
        };
        let l = views::labelled_views(&cfg, model, labelled, rng)?;
        let u = if cfg.uses_unlabelled() {
            let u = views::unlabelled_views(&cfg, model, unlabelled, cfg.tau, rng)?;
            report.confident_ratio = u.confident_ratio;
            Some(u)
        } else {
            None
        };
        // One training forward over all views (batch norm sees them together): labelled weak,
        // labelled strong (CSRA-Net), then the strong unlabelled views.
        let mut all = l.weak.clone();
        all.extend(l.strong.iter().cloned());
        if let Some(u) = &u {
            for v in &u.strong {
                all.extend(v.iter().cloned());
            }
        }
        let x = views::images_tensor(&cfg, &all, model.device())?;
        let parts = model.forward_parts(&x, true)?;
        let total = match (cfg.method, &u) {
            (Method::Supervised, _) => methods::loss_supervised(&parts, &l, &mut report)?,
            (Method::FixMatch, Some(u)) => methods::loss_fixmatch(&parts, &l, u, &mut report)?,
            (Method::UniMatch, Some(u)) => {
                methods::loss_unimatch(model, &cfg, &parts, &l, u, &mut report)?
            }
            (Method::Csra, Some(u)) => {
                methods::loss_csra(model, &cfg, &parts, &l, u, rng, &mut report)?
            }
            (m, None) => {
                return Err(Error::invalid(format!(
                    "method {m:?} needs an unlabelled batch"
                )))
            }
        };
        let loss = total
            .to_dtype(candle_core::DType::F32)?
            .to_scalar::<f32>()? as f64;
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

/// What a checkpoint holds besides tensors.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainerState {
    pub config: TrainConfig,
    pub step: usize,
    pub rng_word_pos: [u64; 2],
}

#[cfg(test)]
mod tests;
