//! `CsraTrainer` (training steps, checkpoints) and `CsraSampler` (CAS on its own).
//!
//! Thread safety: a trainer needs exclusive use (`CsraTrainer*`); a step holds its model
//! exclusively, so segmentations on the same model from other threads wait for it and
//! never see half-updated weights. A sampler needs exclusive use.

use super::model::CsraModel;
use super::segmentation::CsraImage;
use super::status::{guard, not_null, path_arg, read_versioned, CsraStatus, Fail};
use crate::infer::{ImageView, PixelFormat};
use crate::model::CsraNet;
use crate::train::run::{load_checkpoint, save_checkpoint};
use crate::train::sampler::{CasConfig, CasSampler};
use crate::train::trainer::{Method, TrainConfig, TrainTile, Trainer};

use parking_lot::RwLock;
use std::path::Path;
use std::sync::Arc;

/// `CsraTrainConfig.method` values.
pub const CSRA_METHOD_SUPERVISED: u32 = 0;
pub const CSRA_METHOD_FIXMATCH: u32 = 1;
pub const CSRA_METHOD_UNIMATCH: u32 = 2;
pub const CSRA_METHOD_CSRA: u32 = 3;

/// Training configuration. Fill with `csra_train_config_default`, then change fields.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CsraTrainConfig {
    /// `sizeof(CsraTrainConfig)`.
    pub struct_size: usize,
    /// A `CSRA_METHOD_*` value (default CSRA).
    pub method: u32,
    /// Initial learning rate (cosine-annealed over `total_steps`).
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    /// Learning-rate multiplier outside the backbone.
    pub head_lr_mult: f32,
    /// Global gradient-norm clip (0 = off).
    pub clip_norm: f32,
    pub total_steps: u32,
    /// Square training crop side (default 256).
    pub crop_size: u32,
    /// Pseudo-label confidence threshold (default 0.95).
    pub tau: f32,
    pub lambda_u: f32,
    pub lambda_c: f32,
    /// Non-zero: SWC's contrastive term on (CSRA only).
    pub contrastive: u32,
    pub seed: u64,
}

impl CsraTrainConfig {
    fn defaults() -> Self {
        let d = TrainConfig::default();
        Self {
            struct_size: std::mem::size_of::<Self>(),
            method: CSRA_METHOD_CSRA,
            lr: d.optim.lr as f32,
            momentum: d.optim.momentum as f32,
            weight_decay: d.optim.weight_decay as f32,
            head_lr_mult: d.optim.head_lr_mult as f32,
            clip_norm: d.optim.clip_norm as f32,
            total_steps: d.optim.total_steps as u32,
            crop_size: d.weak.crop_width as u32,
            tau: d.tau as f32,
            lambda_u: d.lambda_u as f32,
            lambda_c: d.lambda_c as f32,
            contrastive: d.contrastive as u32,
            seed: d.seed,
        }
    }

    fn to_config(self) -> Result<TrainConfig, Fail> {
        let method = match self.method {
            CSRA_METHOD_SUPERVISED => Method::Supervised,
            CSRA_METHOD_FIXMATCH => Method::FixMatch,
            CSRA_METHOD_UNIMATCH => Method::UniMatch,
            CSRA_METHOD_CSRA => Method::Csra,
            m => {
                return Err(Fail::new(
                    CsraStatus::CSRA_INVALID_ARGUMENT,
                    format!("config.method {m} is not a CSRA_METHOD_* value (0..=3)"),
                ))
            }
        };
        let mut c = TrainConfig {
            method,
            seed: self.seed,
            contrastive: self.contrastive != 0,
            ..Default::default()
        };
        c.optim.lr = self.lr as f64;
        c.optim.momentum = self.momentum as f64;
        c.optim.weight_decay = self.weight_decay as f64;
        c.optim.head_lr_mult = self.head_lr_mult as f64;
        c.optim.clip_norm = self.clip_norm as f64;
        c.optim.total_steps = self.total_steps as usize;
        c.weak.crop_width = self.crop_size as usize;
        c.weak.crop_height = self.crop_size as usize;
        c.tau = self.tau as f64;
        c.lambda_u = self.lambda_u as f64;
        c.lambda_c = self.lambda_c as f64;
        c.validate()?;
        Ok(c)
    }
}

/// A batch of training tiles. `labels[i]` is tile i's class map (`width * height` bytes,
/// 255 = ignore); required for a labelled batch, ignored for an unlabelled one.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CsraTrainBatch {
    pub images: *const CsraImage,
    pub labels: *const *const u8,
    pub count: usize,
}

/// Loss terms of one step.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CsraStepReport {
    pub step: u64,
    pub loss: f32,
    pub loss_sup: f32,
    pub loss_unsup: f32,
    pub loss_contrast: f32,
    pub loss_fp: f32,
    /// Fraction of valid unlabelled pixels above the confidence threshold.
    pub confident_ratio: f32,
    pub lr: f32,
}

/// An opaque trainer.
pub struct CsraTrainer {
    net: Arc<RwLock<CsraNet>>,
    trainer: Trainer,
}

/// An opaque CAS sampler.
pub struct CsraSampler {
    tissues: Vec<Option<u32>>,
    presence: Vec<Vec<bool>>,
    cfg: CasConfig,
    sampler: CasSampler,
}

/// Fills `out` with the default training configuration.
#[no_mangle]
pub unsafe extern "C" fn csra_train_config_default(out: *mut CsraTrainConfig) -> CsraStatus {
    guard(|| {
        not_null!(out, "out");
        *out = CsraTrainConfig::defaults();
        Ok(())
    })
}

/// Creates a trainer for `model` (which it keeps alive). Free with `csra_trainer_free`.
#[no_mangle]
pub unsafe extern "C" fn csra_trainer_create(
    model: *const CsraModel,
    config: *const CsraTrainConfig,
    out: *mut *mut CsraTrainer,
) -> CsraStatus {
    guard(|| {
        not_null!(model, "model");
        not_null!(config, "config");
        not_null!(out, "out");
        let c =
            read_versioned(config, CsraTrainConfig::defaults(), "CsraTrainConfig")?.to_config()?;
        let trainer = Trainer::new(c)?;
        *out = Box::into_raw(Box::new(CsraTrainer {
            net: (*model).net.clone(),
            trainer,
        }));
        Ok(())
    })
}

unsafe fn tiles<'a>(
    b: *const CsraTrainBatch,
    labelled: bool,
    what: &str,
) -> Result<Vec<TrainTile<'a>>, Fail> {
    let b = *b;
    if b.count == 0 {
        return Ok(vec![]);
    }
    if b.images.is_null() {
        return Err(Fail::new(
            CsraStatus::CSRA_NULL_ARGUMENT,
            format!("argument `{what}->images` is NULL"),
        ));
    }
    if labelled && b.labels.is_null() {
        return Err(Fail::new(
            CsraStatus::CSRA_NULL_ARGUMENT,
            format!("argument `{what}->labels` is NULL"),
        ));
    }
    if b.count > 4096 {
        return Err(Fail::new(
            CsraStatus::CSRA_INVALID_ARGUMENT,
            format!("{what}->count {} is above 4096", b.count),
        ));
    }
    let imgs = std::slice::from_raw_parts(b.images, b.count);
    let mut out = Vec::with_capacity(b.count);
    for (i, im) in imgs.iter().enumerate() {
        if im.data.is_null() {
            return Err(Fail::new(
                CsraStatus::CSRA_NULL_ARGUMENT,
                format!("argument `{what}->images[{i}].data` is NULL"),
            ));
        }
        let fmt = PixelFormat::from_code(im.format).ok_or_else(|| {
            Fail::new(
                CsraStatus::CSRA_INVALID_ARGUMENT,
                format!("{what}->images[{i}].format {} is invalid", im.format),
            )
        })?;
        if im.len > isize::MAX as usize {
            return Err(Fail::new(
                CsraStatus::CSRA_INVALID_ARGUMENT,
                format!("{what}->images[{i}].len is too large"),
            ));
        }
        let data = std::slice::from_raw_parts(im.data, im.len);
        let view = ImageView::new(data, im.width as usize, im.height as usize, im.stride, fmt)
            .map_err(|e| e.context(format!("{what}->images[{i}]")))?;
        let label = if labelled {
            let p = *b.labels.add(i);
            if p.is_null() {
                return Err(Fail::new(
                    CsraStatus::CSRA_NULL_ARGUMENT,
                    format!("argument `{what}->labels[{i}]` is NULL"),
                ));
            }
            Some(std::slice::from_raw_parts(p, view.width() * view.height()))
        } else {
            None
        };
        out.push(TrainTile {
            image: view,
            label,
            instances: None,
        });
    }
    Ok(out)
}

/// One training step on a labelled batch and (except for the supervised method) an
/// unlabelled batch of at least 2 tiles (`unlabelled` may be NULL for supervised).
/// Writes the loss terms to `report`. A NaN or infinite loss returns
/// `CSRA_NUMERIC_ERROR` and leaves the weights unchanged. Holds the model exclusively.
#[no_mangle]
pub unsafe extern "C" fn csra_trainer_step(
    trainer: *mut CsraTrainer,
    labelled: *const CsraTrainBatch,
    unlabelled: *const CsraTrainBatch,
    report: *mut CsraStepReport,
) -> CsraStatus {
    guard(|| {
        not_null!(trainer, "trainer");
        not_null!(labelled, "labelled");
        not_null!(report, "report");
        let t = &mut *trainer;
        let l = tiles(labelled, true, "labelled")?;
        let u = if unlabelled.is_null() {
            vec![]
        } else {
            tiles(unlabelled, false, "unlabelled")?
        };
        let net = t.net.write();
        let r = t.trainer.step(&net, &l, &u)?;
        *report = CsraStepReport {
            step: r.step as u64,
            loss: r.loss as f32,
            loss_sup: r.loss_sup as f32,
            loss_unsup: r.loss_unsup as f32,
            loss_contrast: r.loss_contrast as f32,
            loss_fp: r.loss_fp as f32,
            confident_ratio: r.confident_ratio as f32,
            lr: r.lr as f32,
        };
        Ok(())
    })
}

/// Writes weights, optimizer state, step and (when `sampler` is not NULL) the sampler's
/// state to `path` atomically: a crash mid-write never destroys the previous file.
#[no_mangle]
pub unsafe extern "C" fn csra_trainer_save_checkpoint(
    trainer: *const CsraTrainer,
    sampler: *const CsraSampler,
    path: *const std::ffi::c_char,
) -> CsraStatus {
    guard(|| {
        not_null!(trainer, "trainer");
        not_null!(path, "path");
        let p = path_arg(path, "path")?;
        let t = &*trainer;
        let net = t.net.read();
        let st = (!sampler.is_null()).then(|| (*sampler).sampler.state());
        Ok(save_checkpoint(
            Path::new(p),
            &net,
            &t.trainer,
            st.as_ref(),
            0,
        )?)
    })
}

/// Restores a checkpoint written by `csra_trainer_save_checkpoint` into the trainer and its
/// model (and `sampler` when not NULL).
#[no_mangle]
pub unsafe extern "C" fn csra_trainer_load_checkpoint(
    trainer: *mut CsraTrainer,
    sampler: *mut CsraSampler,
    path: *const std::ffi::c_char,
) -> CsraStatus {
    guard(|| {
        not_null!(trainer, "trainer");
        not_null!(path, "path");
        let p = path_arg(path, "path")?;
        let t = &mut *trainer;
        let net = t.net.write();
        let r = load_checkpoint(Path::new(p), &net, &mut t.trainer)?;
        if !sampler.is_null() {
            if let Some(st) = r.sampler {
                let s = &mut *sampler;
                s.sampler = CasSampler::from_state(&s.tissues, &s.presence, s.cfg.clone(), &st)?;
            }
        }
        Ok(())
    })
}

/// Frees a trainer. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn csra_trainer_free(trainer: *mut CsraTrainer) {
    if !trainer.is_null() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            drop(Box::from_raw(trainer))
        }));
    }
}

/// Creates a CAS sampler over `n` labelled tiles: `tissue_ids` (may be NULL; -1 = no
/// tissue) and `presence`, an `n x num_classes` row-major matrix of 0/1 (tile contains a
/// nucleus of class c, background excluded). `alpha0` is the oversampling intensity,
/// `period` the decay period in epochs, `total_epochs` the run length.
#[no_mangle]
pub unsafe extern "C" fn csra_sampler_create(
    tissue_ids: *const i32,
    presence: *const u8,
    n: usize,
    num_classes: usize,
    alpha0: f32,
    period: u32,
    total_epochs: u32,
    seed: u64,
    out: *mut *mut CsraSampler,
) -> CsraStatus {
    guard(|| {
        not_null!(presence, "presence");
        not_null!(out, "out");
        if n == 0 || num_classes == 0 || n.checked_mul(num_classes).is_none_or(|v| v > 1 << 28) {
            return Err(Fail::new(CsraStatus::CSRA_INVALID_ARGUMENT, format!("n ({n}) and num_classes ({num_classes}) must be positive and n * num_classes at most 2^28")));
        }
        let rows = std::slice::from_raw_parts(presence, n * num_classes);
        let presence: Vec<Vec<bool>> = rows
            .chunks(num_classes)
            .map(|r| r.iter().map(|&v| v != 0).collect())
            .collect();
        let tissues: Vec<Option<u32>> = if tissue_ids.is_null() {
            vec![None; n]
        } else {
            std::slice::from_raw_parts(tissue_ids, n)
                .iter()
                .map(|&t| (t >= 0).then_some(t as u32))
                .collect()
        };
        let cfg = CasConfig {
            alpha0: alpha0 as f64,
            period_t: period as usize,
            total_epochs: total_epochs as usize,
            ..Default::default()
        };
        let sampler = CasSampler::new(&tissues, &presence, cfg.clone(), seed)?;
        *out = Box::into_raw(Box::new(CsraSampler {
            tissues,
            presence,
            cfg,
            sampler,
        }));
        Ok(())
    })
}

/// Sets the epoch (the decay of the oversampling follows it).
#[no_mangle]
pub unsafe extern "C" fn csra_sampler_set_epoch(
    sampler: *mut CsraSampler,
    epoch: u32,
) -> CsraStatus {
    guard(|| {
        not_null!(sampler, "sampler");
        (*sampler).sampler.set_epoch(epoch as usize);
        Ok(())
    })
}

/// Draws the next tile index (with replacement, probability proportional to its weight).
#[no_mangle]
pub unsafe extern "C" fn csra_sampler_next(
    sampler: *mut CsraSampler,
    out: *mut usize,
) -> CsraStatus {
    guard(|| {
        not_null!(sampler, "sampler");
        not_null!(out, "out");
        *out = (*sampler).sampler.next();
        Ok(())
    })
}

/// Frees a sampler. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn csra_sampler_free(sampler: *mut CsraSampler) {
    if !sampler.is_null() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            drop(Box::from_raw(sampler))
        }));
    }
}
