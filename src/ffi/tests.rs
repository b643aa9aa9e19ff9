//! Each kind of library error reaches C as its status, through the exported functions.

use super::csra_last_error_message;
use super::model::*;
use super::segmentation::*;
use super::status::CsraStatus::{self, *};
use super::trainer::*;
use candle_core::{Device, Tensor};
use std::ffi::{c_void, CStr, CString};
use std::path::PathBuf;

fn last_error() -> String {
    unsafe { CStr::from_ptr(csra_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

/// `st` must be `want`, with a message containing `needle`.
fn expect(st: CsraStatus, want: CsraStatus, needle: &str, what: &str) {
    let msg = last_error();
    assert_eq!(st, want, "{what}: {msg}");
    assert!(msg.contains(needle), "{what}: `{msg}` lacks `{needle}`");
}

fn ok(st: CsraStatus, what: &str) {
    assert_eq!(st, CSRA_OK, "{what}: {}", last_error());
}

/// A directory of its own for each test, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let d =
            std::env::temp_dir().join(format!("csranet-ffi-status-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }

    fn path(&self, file: &str) -> CString {
        CString::new(self.0.join(file).to_str().unwrap()).unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tiny_config() -> CsraModelConfig {
    let mut c: CsraModelConfig = unsafe { std::mem::zeroed() };
    ok(
        unsafe { csra_model_config_default(std::ptr::null(), &mut c) },
        "config",
    );
    c.depth = 18;
    c.width = 0.0625;
    c.output_stride = 16;
    c.num_classes = 3;
    c.raa_region = 2;
    c.seed = 1;
    c
}

/// A model freed on drop.
struct Model(*mut CsraModel);

impl Model {
    fn tiny() -> Self {
        let mut m = std::ptr::null_mut();
        ok(
            unsafe { csra_model_create(&tiny_config(), &mut m) },
            "create",
        );
        Self(m)
    }

    /// The last convolution's weights at +-f32::MAX: finite weights whose logits are
    /// +-inf, so softmax and the loss are NaN.
    fn overflowing(self) -> Self {
        let net = unsafe { (*self.0).net.read() };
        let w = net.params().get("classifier.4.weight").unwrap();
        let dims = w.as_tensor().dims().to_vec();
        let n: usize = dims.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| if i % 2 == 0 { f32::MAX } else { -f32::MAX })
            .collect();
        w.set(&Tensor::from_vec(v, dims, &Device::Cpu).unwrap())
            .unwrap();
        drop(net);
        self
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        unsafe { csra_model_free(self.0) }
    }
}

/// A 64x64 RGB image with some structure, and a 3-class label map for it.
fn image() -> (Vec<u8>, Vec<u8>) {
    let rgb = (0..64 * 64 * 3).map(|i| (i * 7 % 251) as u8).collect();
    let labels = (0..64 * 64).map(|i| ((i / 64) % 3) as u8).collect();
    (rgb, labels)
}

fn view(rgb: &[u8]) -> CsraImage {
    CsraImage {
        data: rgb.as_ptr(),
        len: rgb.len(),
        width: 64,
        height: 64,
        stride: 64 * 3,
        format: CsraPixelFormat::CSRA_PIXEL_RGB8 as u32,
    }
}

fn options(f: impl FnOnce(&mut CsraSegmentOptions)) -> CsraSegmentOptions {
    let mut o: CsraSegmentOptions = unsafe { std::mem::zeroed() };
    ok(unsafe { csra_segment_options_default(&mut o) }, "options");
    f(&mut o);
    o
}

#[test]
fn missing_files_are_io_errors() {
    let dir = Scratch::new("io");
    let missing = dir.path("missing.safetensors");
    let mut m = std::ptr::null_mut();
    let st = unsafe { csra_model_create_from_safetensors(missing.as_ptr(), &mut m) };
    expect(
        st,
        CSRA_IO_ERROR,
        "missing.safetensors",
        "create from a missing file",
    );
    assert!(m.is_null());
    let model = Model::tiny();
    let st = unsafe { csra_model_load_safetensors(model.0, missing.as_ptr()) };
    expect(
        st,
        CSRA_IO_ERROR,
        "missing.safetensors",
        "load a missing file",
    );
    // Saving into a directory that does not exist.
    let nowhere = dir.path("no/such/dir/w.safetensors");
    let st = unsafe { csra_model_save_safetensors(model.0, nowhere.as_ptr()) };
    expect(
        st,
        CSRA_IO_ERROR,
        "w.safetensors",
        "save into a missing directory",
    );
}

#[test]
fn malformed_weights_are_bad_weights() {
    let dir = Scratch::new("weights");
    let garbage = b"this is not a safetensors file";
    let mut m = std::ptr::null_mut();
    let st = unsafe {
        csra_model_create_from_safetensors_buffer(garbage.as_ptr(), garbage.len(), &mut m)
    };
    expect(
        st,
        CSRA_BAD_WEIGHTS,
        "not a valid safetensors",
        "garbage buffer",
    );
    let p = dir.0.join("garbage.safetensors");
    std::fs::write(&p, garbage).unwrap();
    let cp = dir.path("garbage.safetensors");
    let st = unsafe { csra_model_create_from_safetensors(cp.as_ptr(), &mut m) };
    expect(st, CSRA_BAD_WEIGHTS, "garbage.safetensors", "garbage file");
    // Weights of another configuration.
    let a = Model::tiny();
    let saved = dir.path("a.safetensors");
    ok(
        unsafe { csra_model_save_safetensors(a.0, saved.as_ptr()) },
        "save",
    );
    let mut c = tiny_config();
    c.num_classes = 5;
    let mut b = std::ptr::null_mut();
    ok(unsafe { csra_model_create(&c, &mut b) }, "create b");
    let b = Model(b);
    let st = unsafe { csra_model_load_safetensors(b.0, saved.as_ptr()) };
    expect(
        st,
        CSRA_BAD_WEIGHTS,
        "a.safetensors",
        "another configuration",
    );
    // Checkpoints: missing is I/O, garbage is bad weights.
    let mut tc: CsraTrainConfig = unsafe { std::mem::zeroed() };
    ok(
        unsafe { csra_train_config_default(&mut tc) },
        "train config",
    );
    let mut t = std::ptr::null_mut();
    ok(unsafe { csra_trainer_create(a.0, &tc, &mut t) }, "trainer");
    let missing = dir.path("missing.ckpt");
    let st = unsafe { csra_trainer_load_checkpoint(t, std::ptr::null_mut(), missing.as_ptr()) };
    expect(st, CSRA_IO_ERROR, "missing.ckpt", "missing checkpoint");
    let st = unsafe { csra_trainer_load_checkpoint(t, std::ptr::null_mut(), cp.as_ptr()) };
    expect(
        st,
        CSRA_BAD_WEIGHTS,
        "garbage.safetensors",
        "garbage checkpoint",
    );
    unsafe { csra_trainer_free(t) };
}

unsafe extern "C" fn stop_at_once(_: *mut c_void, _: u32, _: u32) -> i32 {
    1
}

#[test]
fn a_cancelled_segmentation_is_cancelled() {
    let model = Model::tiny();
    let (rgb, _) = image();
    let im = view(&rgb);
    let mut seg = std::ptr::null_mut();
    let st = unsafe {
        csra_segment_image(
            model.0,
            &im,
            std::ptr::null(),
            Some(stop_at_once),
            std::ptr::null_mut(),
            &mut seg,
        )
    };
    expect(st, CSRA_CANCELLED, "cancelled", "cancel");
    assert!(seg.is_null());
}

#[test]
fn overflowing_weights_and_diverged_training_are_numeric_errors() {
    let model = Model::tiny().overflowing();
    let (rgb, labels) = image();
    let im = view(&rgb);
    let mut seg = std::ptr::null_mut();
    let st = unsafe { csra_segment_tile(model.0, &im, std::ptr::null(), &mut seg) };
    expect(
        st,
        CSRA_NUMERIC_ERROR,
        "non-finite",
        "segment with overflowing weights",
    );
    assert!(seg.is_null());
    let mut tc: CsraTrainConfig = unsafe { std::mem::zeroed() };
    ok(
        unsafe { csra_train_config_default(&mut tc) },
        "train config",
    );
    tc.method = CSRA_METHOD_SUPERVISED;
    tc.crop_size = 64;
    let mut t = std::ptr::null_mut();
    ok(
        unsafe { csra_trainer_create(model.0, &tc, &mut t) },
        "trainer",
    );
    let label_ptr = labels.as_ptr();
    let batch = CsraTrainBatch {
        images: &im,
        labels: &label_ptr,
        count: 1,
    };
    let mut report = CsraStepReport::default();
    let st = unsafe { csra_trainer_step(t, &batch, std::ptr::null(), &mut report) };
    expect(st, CSRA_NUMERIC_ERROR, "loss is", "diverged step");
    unsafe { csra_trainer_free(t) };
}

#[test]
fn bad_options_are_invalid_arguments() {
    let model = Model::tiny();
    let (rgb, labels) = image();
    let im = view(&rgb);
    let o = options(|o| o.tile_size = 1);
    let mut seg = std::ptr::null_mut();
    let st = unsafe { csra_segment_image(model.0, &im, &o, None, std::ptr::null_mut(), &mut seg) };
    expect(st, CSRA_INVALID_ARGUMENT, "tile_size", "tile_size 1");
    let o = options(|o| o.std = [0.0; 3]);
    let st = unsafe { csra_segment_tile(model.0, &im, &o, &mut seg) };
    expect(st, CSRA_INVALID_ARGUMENT, "std", "std 0");
    let mut c = tiny_config();
    c.depth = 19;
    let mut m = std::ptr::null_mut();
    let st = unsafe { csra_model_create(&c, &mut m) };
    expect(st, CSRA_INVALID_ARGUMENT, "depth", "depth 19");
    let mut tc: CsraTrainConfig = unsafe { std::mem::zeroed() };
    ok(
        unsafe { csra_train_config_default(&mut tc) },
        "train config",
    );
    tc.lr = -1.0;
    let mut t = std::ptr::null_mut();
    let st = unsafe { csra_trainer_create(model.0, &tc, &mut t) };
    expect(
        st,
        CSRA_INVALID_ARGUMENT,
        "optim.lr",
        "negative learning rate",
    );
    // A label outside the model's classes.
    tc.lr = 0.01;
    tc.method = CSRA_METHOD_SUPERVISED;
    tc.crop_size = 64;
    ok(
        unsafe { csra_trainer_create(model.0, &tc, &mut t) },
        "trainer",
    );
    let bad = vec![7u8; labels.len()];
    let label_ptr = bad.as_ptr();
    let batch = CsraTrainBatch {
        images: &im,
        labels: &label_ptr,
        count: 1,
    };
    let mut report = CsraStepReport::default();
    let st = unsafe { csra_trainer_step(t, &batch, std::ptr::null(), &mut report) };
    expect(
        st,
        CSRA_INVALID_ARGUMENT,
        "out of range",
        "label 7 of 3 classes",
    );
    unsafe { csra_trainer_free(t) };
    // A sampler with a negative oversampling intensity.
    let mut s = std::ptr::null_mut();
    let presence = [1u8];
    let st = unsafe {
        csra_sampler_create(
            std::ptr::null(),
            presence.as_ptr(),
            1,
            1,
            -1.0,
            1,
            1,
            0,
            &mut s,
        )
    };
    expect(st, CSRA_INVALID_ARGUMENT, "alpha0", "negative alpha0");
}

#[test]
fn dropped_probabilities_are_not_available() {
    let model = Model::tiny();
    let (rgb, _) = image();
    let im = view(&rgb);
    let o = options(|o| o.keep_probabilities = 0);
    let mut seg = std::ptr::null_mut();
    ok(
        unsafe { csra_segment_tile(model.0, &im, &o, &mut seg) },
        "segment",
    );
    let (mut p, mut n) = (std::ptr::null(), 0usize);
    let st = unsafe { csra_segmentation_probabilities(seg, &mut p, &mut n) };
    expect(
        st,
        CSRA_NOT_AVAILABLE,
        "keep_probabilities",
        "probabilities",
    );
    unsafe { csra_segmentation_free(seg) };
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_in_a_cpu_build_is_unsupported() {
    let mut c = tiny_config();
    c.device = CSRA_DEVICE_CUDA;
    let mut m = std::ptr::null_mut();
    let st = unsafe { csra_model_create(&c, &mut m) };
    expect(st, CSRA_UNSUPPORTED, "cuda", "CUDA device");
    assert!(m.is_null());
}
