//! `CsraModel`: create, load and save weights, free.
//!
//! Thread safety: functions taking `const CsraModel*` (segmentation, save, queries) may
//! run concurrently from many threads; functions taking `CsraModel*` (loading weights)
//! take the model exclusively and wait for running segmentations to finish.

use super::status::{guard, not_null, path_arg, read_versioned, CsraStatus, Fail};
use crate::io::weights;
use crate::model::{Config, CsraNet};
use crate::{Error, ErrorKind};
use candle_core::Device;
use parking_lot::RwLock;
use std::ffi::c_char;
use std::path::Path;
use std::sync::Arc;

/// An opaque model handle.
pub struct CsraModel {
    /// Shared with trainers created from this model, so freeing the model while a trainer
    /// lives is safe.
    pub(crate) net: Arc<RwLock<CsraNet>>,
}

/// `CsraModelConfig.device`: run on the CPU.
pub const CSRA_DEVICE_CPU: u32 = 0;
/// `CsraModelConfig.device`: run on CUDA device 0 (needs a library built with `cuda`).
pub const CSRA_DEVICE_CUDA: u32 = 1;

/// Network configuration. Fill it with `csra_model_config_default`, then change fields.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CsraModelConfig {
    /// `sizeof(CsraModelConfig)`, set by `csra_model_config_default`.
    pub struct_size: usize,
    /// ResNet depth: 18, 34, 50 or 101.
    pub depth: u32,
    /// Width multiplier (1.0 = torchvision's widths).
    pub width: f32,
    /// Output stride: 8 or 16.
    pub output_stride: u32,
    /// Classes including background (CoNSeP 5, PanNuke 6).
    pub num_classes: u32,
    /// Non-zero: region-adaptive attention on.
    pub raa: u32,
    /// RAA region size in feature pixels (default 4).
    pub raa_region: u32,
    /// Seed of the random initialisation.
    pub seed: u64,
    /// `CSRA_DEVICE_CPU` or `CSRA_DEVICE_CUDA`.
    pub device: u32,
}

impl CsraModelConfig {
    fn from_config(c: &Config) -> Self {
        Self {
            struct_size: std::mem::size_of::<Self>(),
            depth: c.depth as u32,
            width: c.width as f32,
            output_stride: c.output_stride as u32,
            num_classes: c.num_classes as u32,
            raa: c.raa as u32,
            raa_region: c.raa_region as u32,
            seed: 0,
            device: CSRA_DEVICE_CPU,
        }
    }

    fn to_config(self) -> Result<Config, Fail> {
        let c = Config {
            depth: self.depth as usize,
            width: self.width as f64,
            output_stride: self.output_stride as usize,
            num_classes: self.num_classes as usize,
            raa: self.raa != 0,
            raa_region: self.raa_region as usize,
            ..Config::lite()
        };
        c.validate()
            .map_err(|e| Error::from_candle(ErrorKind::InvalidArgument, e))?;
        Ok(c)
    }
}

/// The device of a `CSRA_DEVICE_*` code: CUDA is [`ErrorKind::Unsupported`] in a build
/// without the `cuda` feature or where no CUDA device can be opened.
pub(crate) fn device(code: u32) -> crate::Result<Device> {
    match code {
        CSRA_DEVICE_CPU => Ok(Device::Cpu),
        CSRA_DEVICE_CUDA => {
            if cfg!(feature = "cuda") {
                Device::new_cuda(0).map_err(|e| Error::from_candle(ErrorKind::Unsupported, e))
            } else {
                Err(Error::unsupported(
                    "this library was built without the `cuda` feature",
                ))
            }
        }
        other => Err(Error::invalid(format!(
            "config.device must be CSRA_DEVICE_CPU (0) or CSRA_DEVICE_CUDA (1), got {other}"
        ))),
    }
}

/// Boxes a network and writes the handle.
///
/// # Safety
/// `out` must be valid for writes.
unsafe fn emit(net: CsraNet, out: *mut *mut CsraModel) -> Result<(), Fail> {
    *out = Box::into_raw(Box::new(CsraModel {
        net: Arc::new(RwLock::new(net)),
    }));
    Ok(())
}

/// Fills `out` with a preset's configuration: `"lite"` (ResNet-18 at half width, OS 8,
/// RAA on; the default when `preset` is NULL) or `"paper"` (ResNet-50, OS 8, RAA on).
#[no_mangle]
pub unsafe extern "C" fn csra_model_config_default(
    preset: *const c_char,
    out: *mut CsraModelConfig,
) -> CsraStatus {
    guard(|| {
        not_null!(out, "out");
        let name = if preset.is_null() {
            "lite"
        } else {
            path_arg(preset, "preset")?
        };
        let c =
            Config::preset(name).map_err(|e| Error::from_candle(ErrorKind::InvalidArgument, e))?;
        *out = CsraModelConfig::from_config(&c);
        Ok(())
    })
}

/// Creates a randomly initialised model. Free it with `csra_model_free`.
#[no_mangle]
pub unsafe extern "C" fn csra_model_create(
    config: *const CsraModelConfig,
    out: *mut *mut CsraModel,
) -> CsraStatus {
    guard(|| {
        not_null!(config, "config");
        not_null!(out, "out");
        let defaults = CsraModelConfig::from_config(&Config::lite());
        let c = read_versioned(config, defaults, "CsraModelConfig")?;
        let dev = device(c.device)?;
        let cfg = c.to_config()?;
        let net = CsraNet::new(&cfg, &dev, c.seed)?;
        emit(net, out)
    })
}

/// Creates a model from a safetensors file written by csranet (its configuration is in
/// the file's metadata), on the CPU.
#[no_mangle]
pub unsafe extern "C" fn csra_model_create_from_safetensors(
    path: *const c_char,
    out: *mut *mut CsraModel,
) -> CsraStatus {
    guard(|| {
        not_null!(path, "path");
        not_null!(out, "out");
        let p = path_arg(path, "path")?;
        let bytes = weights::read_file(Path::new(p))?;
        let net =
            weights::model_from_bytes(&bytes, None, &Device::Cpu).map_err(|e| e.context(p))?;
        emit(net, out)
    })
}

/// Creates a model from a safetensors buffer written by csranet, on the CPU. The buffer
/// is copied; the caller keeps ownership.
#[no_mangle]
pub unsafe extern "C" fn csra_model_create_from_safetensors_buffer(
    data: *const u8,
    len: usize,
    out: *mut *mut CsraModel,
) -> CsraStatus {
    guard(|| {
        not_null!(data, "data");
        not_null!(out, "out");
        let bytes = std::slice::from_raw_parts(data, len);
        let net = weights::model_from_bytes(bytes, None, &Device::Cpu)?;
        emit(net, out)
    })
}

/// Creates the bundled default model (`lite`, trained on CoNSeP; see the model card
/// `models/README.md`) on the CPU, with no file. Returns `CSRA_NOT_AVAILABLE` in a library
/// built without the `bundled-weights` cargo feature (on by default).
#[no_mangle]
pub unsafe extern "C" fn csra_model_create_default(out: *mut *mut CsraModel) -> CsraStatus {
    guard(|| {
        not_null!(out, "out");
        let bytes = crate::io::bundled::bundled_weights().ok_or_else(|| {
            Error::not_available(
                "this library was built without the `bundled-weights` feature: no default \
                 model; load weights from a file or buffer instead",
            )
        })?;
        let net = weights::model_from_bytes(bytes, None, &Device::Cpu)
            .map_err(|e| e.context("bundled model"))?;
        emit(net, out)
    })
}

/// Loads weights from a safetensors file into `model`: names and shapes must match
/// (torchvision's `num_batches_tracked` and `aux_classifier.*` are ignored). All or
/// nothing: on error the model keeps its previous weights. Exclusive: waits for running
/// segmentations.
#[no_mangle]
pub unsafe extern "C" fn csra_model_load_safetensors(
    model: *mut CsraModel,
    path: *const c_char,
) -> CsraStatus {
    guard(|| {
        not_null!(model, "model");
        not_null!(path, "path");
        let p = path_arg(path, "path")?;
        let bytes = weights::read_file(Path::new(p))?;
        Ok(load_into(model, &bytes).map_err(|e| e.context(p))?)
    })
}

/// As `csra_model_load_safetensors`, from a caller's buffer of `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn csra_model_load_safetensors_buffer(
    model: *mut CsraModel,
    data: *const u8,
    len: usize,
) -> CsraStatus {
    guard(|| {
        not_null!(model, "model");
        not_null!(data, "data");
        Ok(load_into(model, std::slice::from_raw_parts(data, len))?)
    })
}

/// Loads a weights buffer into `model` under its write lock (all or nothing).
unsafe fn load_into(model: *mut CsraModel, bytes: &[u8]) -> crate::Result<()> {
    let net = (*model).net.write();
    weights::load_bytes(&net, bytes)
}

/// Saves the weights (f32, with the configuration in the metadata) to `path`
/// atomically: a crash mid-write leaves any previous file intact.
#[no_mangle]
pub unsafe extern "C" fn csra_model_save_safetensors(
    model: *const CsraModel,
    path: *const c_char,
) -> CsraStatus {
    guard(|| {
        not_null!(model, "model");
        not_null!(path, "path");
        let p = path_arg(path, "path")?;
        let net = (*model).net.read();
        Ok(weights::save_file(&net, Path::new(p), false)?)
    })
}

/// Writes the model's configuration to `out`.
#[no_mangle]
pub unsafe extern "C" fn csra_model_get_config(
    model: *const CsraModel,
    out: *mut CsraModelConfig,
) -> CsraStatus {
    guard(|| {
        not_null!(model, "model");
        not_null!(out, "out");
        let net = (*model).net.read();
        let mut c = CsraModelConfig::from_config(net.config());
        c.device = if net.device().is_cuda() {
            CSRA_DEVICE_CUDA
        } else {
            CSRA_DEVICE_CPU
        };
        *out = c;
        Ok(())
    })
}

/// Frees a model. NULL is a no-op. No other call may be using it.
#[no_mangle]
pub unsafe extern "C" fn csra_model_free(model: *mut CsraModel) {
    if !model.is_null() {
        let _ =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(Box::from_raw(model))));
    }
}

/// Writes the number of classes (background included, class 0) to `out`.
#[no_mangle]
pub unsafe extern "C" fn csra_model_num_classes(
    model: *const CsraModel,
    out: *mut usize,
) -> CsraStatus {
    guard(|| {
        not_null!(model, "model");
        not_null!(out, "out");
        *out = (*model).net.read().config().num_classes;
        Ok(())
    })
}

/// `CSRA_INVALID_ARGUMENT` unless `class_index` is a class of `classes`.
fn class_index_arg(classes: &crate::model::Classes, class_index: usize) -> Result<(), Fail> {
    if class_index >= classes.len() {
        return Err(Fail::new(
            CsraStatus::CSRA_INVALID_ARGUMENT,
            format!(
                "class_index {class_index} is out of range: the model has {} classes (0..={})",
                classes.len(),
                classes.len() - 1
            ),
        ));
    }
    Ok(())
}

/// Writes to `*name_out` the name of class `class_index` (0 = background) as a
/// NUL-terminated UTF-8 string: the name stored with the weights, or the default for the
/// class count (CoNSeP's for 5 classes, PanNuke's for 6, "class N" otherwise). The string
/// belongs to the model: it stays valid until the model is freed or weights are loaded into
/// it (`csra_model_load_safetensors*`); copy it to keep it longer. `CSRA_INVALID_ARGUMENT`
/// when `class_index` is not below the number of classes.
#[no_mangle]
pub unsafe extern "C" fn csra_model_class_name(
    model: *const CsraModel,
    class_index: usize,
    name_out: *mut *const c_char,
) -> CsraStatus {
    guard(|| {
        not_null!(model, "model");
        not_null!(name_out, "name_out");
        // The model's `Arc` keeps the string alive after this clone is dropped.
        let classes = (*model).net.read().classes();
        class_index_arg(&classes, class_index)?;
        let name = classes.c_name(class_index).expect("index checked");
        *name_out = name.as_ptr();
        Ok(())
    })
}

/// Writes the colour of class `class_index` (0 = background) as 8-bit red, green, blue to
/// `rgb_out[0..3]`: the colour stored with the weights, or the default for its name (QuPath's
/// own colour for the classes QuPath predefines, such as "Other"). `CSRA_INVALID_ARGUMENT`
/// when `class_index` is not below the number of classes.
#[no_mangle]
pub unsafe extern "C" fn csra_model_class_colour(
    model: *const CsraModel,
    class_index: usize,
    rgb_out: *mut u8,
) -> CsraStatus {
    guard(|| {
        not_null!(model, "model");
        not_null!(rgb_out, "rgb_out");
        let classes = (*model).net.read().classes();
        class_index_arg(&classes, class_index)?;
        let c = classes.colour(class_index).expect("index checked");
        std::ptr::copy_nonoverlapping(c.as_ptr(), rgb_out, 3);
        Ok(())
    })
}
