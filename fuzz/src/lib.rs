//! Fuzz harnesses for the C ABI, shared by the cargo-fuzz targets (`fuzz/fuzz_targets/`)
//! and by the main crate's `cargo test` (`tests/reliability.rs` includes this file as a
//! module and replays `fuzz/regressions/<target>/*` through it), so a committed input
//! runs through exactly the code the fuzzer ran.
//!
//! Both harnesses call the exported `csra_*` functions as a C host would, on a tiny network
//! (ResNet-18 at width 1/16, output stride 16, RAA with 2x2 regions, 3 classes), and panic
//! when the contract breaks:
//!
//! - `weights`: any byte string given to `csra_model_load_safetensors_buffer` and
//!   `csra_model_create_from_safetensors_buffer` returns `CSRA_OK` or `CSRA_BAD_WEIGHTS`
//!   with a one-line message, never a caught panic (`CSRA_INTERNAL_ERROR`); after a failed
//!   load the model segments exactly as before (all or nothing).
//! - `segment`: an image description (size, stride, format, buffer length, options, pixels)
//!   given to `csra_segment_tile` / `csra_segment_image` returns OK, `CSRA_INVALID_ARGUMENT`,
//!   `CSRA_NUMERIC_ERROR` or `CSRA_CANCELLED`; a failure writes no output and names its
//!   reason; a success is a consistent result (sizes, classes, labels, instances,
//!   probabilities).

use csranet::ffi::model::{
    csra_model_create_from_safetensors_buffer, csra_model_free, csra_model_load_safetensors_buffer,
    CsraModel,
};
use csranet::ffi::segmentation::{
    csra_segment_image, csra_segment_options_default, csra_segment_tile,
    csra_segmentation_class_map, csra_segmentation_free, csra_segmentation_instance,
    csra_segmentation_labels, csra_segmentation_num_instances, csra_segmentation_probabilities,
    csra_segmentation_size, CsraImage, CsraInstance, CsraPixelFormat, CsraSegmentOptions,
    CsraSegmentation,
};
use csranet::ffi::{csra_last_error_message, CsraStatus};
use csranet::io::weights;
use csranet::{Config, CsraNet};
use std::ffi::{c_void, CStr};
use std::sync::{Mutex, OnceLock};

/// The tiny network both harnesses use.
pub fn tiny_config() -> Config {
    Config {
        depth: 18,
        width: 0.0625,
        output_stride: 16,
        num_classes: 3,
        raa: true,
        raa_region: 2,
        ..Config::lite()
    }
}

/// Side of the square reference image used to detect changed weights.
const REF_SIDE: u32 = 32;

struct Fixture {
    /// A model created from `valid`; it holds those weights between inputs.
    model: *mut CsraModel,
    /// The tiny network's weights as a safetensors file.
    valid: Vec<u8>,
    /// Length of `valid`'s JSON header (after its 8-byte length prefix).
    header_len: usize,
    /// A `REF_SIDE` x `REF_SIDE` RGB8 image and the model's probabilities on it.
    image: Vec<u8>,
    reference: Vec<f32>,
}

// SAFETY: the model handle is only used under the fixture's mutex, and `const CsraModel*`
// functions are documented as thread-safe anyway.
unsafe impl Send for Fixture {}

fn fixture() -> std::sync::MutexGuard<'static, Fixture> {
    static FIX: OnceLock<Mutex<Fixture>> = OnceLock::new();
    FIX.get_or_init(|| {
        let net = CsraNet::new(&tiny_config(), &candle_core::Device::Cpu, 11).expect("tiny net");
        let valid = canonical(&weights::to_bytes(&net, false).expect("serialise"));
        let header_len = u64::from_le_bytes(valid[..8].try_into().unwrap()) as usize;
        let mut model = std::ptr::null_mut();
        let st = unsafe {
            csra_model_create_from_safetensors_buffer(valid.as_ptr(), valid.len(), &mut model)
        };
        assert_eq!(st, CsraStatus::CSRA_OK, "fixture model: {}", last_error());
        let side = REF_SIDE as usize;
        let image: Vec<u8> = (0..side * side * 3)
            .map(|i| ((i * 37) % 251) as u8)
            .collect();
        let mut f = Fixture {
            model,
            valid,
            header_len,
            image,
            reference: vec![],
        };
        f.reference = probabilities_of(&f);
        Mutex::new(f)
    })
    .lock()
    .unwrap_or_else(|e| e.into_inner())
}

/// The same safetensors file with its JSON header's keys sorted (the metadata map is
/// written in a random order), so a position in the file means the same in every run.
fn canonical(file: &[u8]) -> Vec<u8> {
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&file[8..8 + n]).unwrap();
    let mut h = serde_json::to_string(&header).unwrap().into_bytes();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&file[8 + n..]);
    out
}

/// The thread's last error message.
pub fn last_error() -> String {
    unsafe { CStr::from_ptr(csra_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

/// A failure must come with a non-empty, one-line message.
fn check_message(what: &str, st: CsraStatus) {
    let msg = last_error();
    assert!(
        !msg.is_empty() && !msg.contains('\n'),
        "{what}: status {st:?} with message {msg:?}"
    );
}

fn reference_image(f: &Fixture) -> CsraImage {
    CsraImage {
        data: f.image.as_ptr(),
        len: f.image.len(),
        width: REF_SIDE,
        height: REF_SIDE,
        stride: REF_SIDE as usize * 3,
        format: CsraPixelFormat::CSRA_PIXEL_RGB8 as u32,
    }
}

fn probabilities_of(f: &Fixture) -> Vec<f32> {
    let img = reference_image(f);
    let mut seg = std::ptr::null_mut();
    let st = unsafe { csra_segment_tile(f.model, &img, std::ptr::null(), &mut seg) };
    assert_eq!(
        st,
        CsraStatus::CSRA_OK,
        "reference segmentation: {}",
        last_error()
    );
    let mut p = std::ptr::null();
    let mut n = 0;
    let st = unsafe { csra_segmentation_probabilities(seg, &mut p, &mut n) };
    assert_eq!(st, CsraStatus::CSRA_OK);
    let v = unsafe { std::slice::from_raw_parts(p, n) }.to_vec();
    unsafe { csra_segmentation_free(seg) };
    v
}

/// Reads bytes from the front of a fuzz input; zeros once it is used up.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn u64(&mut self) -> u64 {
        (self.u32() as u64) | ((self.u32() as u64) << 32)
    }
    fn f32(&mut self) -> f32 {
        f32::from_bits(self.u32())
    }
}

// ---- weights ---------------------------------------------------------------------------

/// Builds the weights buffer an input describes. The first byte picks the mode:
/// 0: the rest as it is; 1: the tiny model's valid file with byte patches (5 bytes each:
/// a u32 position, in the header unless its top bit is set, and the new value) after a
/// length byte (0 keeps the length, 1..=254 cuts to that fraction, 255 appends bytes);
/// 2: the valid file's tensor data behind the rest taken as its JSON header.
pub fn weights_bytes(data: &[u8]) -> Vec<u8> {
    let f = fixture();
    weights_bytes_with(&f, data)
}

fn weights_bytes_with(f: &Fixture, data: &[u8]) -> Vec<u8> {
    let Some((&mode, rest)) = data.split_first() else {
        return vec![];
    };
    match mode % 3 {
        0 => rest.to_vec(),
        1 => {
            let mut c = Cursor(rest);
            let cut = c.u8();
            let mut v = f.valid.clone();
            while c.0.len() >= 5 {
                let pos = c.u32();
                let val = c.u8();
                let span = if pos & 0x8000_0000 != 0 {
                    v.len()
                } else {
                    8 + f.header_len
                };
                let i = (pos & 0x7fff_ffff) as usize % span;
                v[i] = val;
            }
            match cut {
                0 => {}
                255 => v.extend_from_slice(&[0x7f, 0, 0, 0x80, 0xff, 0x7f, 1]),
                t => v.truncate(v.len() * t as usize / 255),
            }
            v
        }
        _ => {
            let mut v = (rest.len() as u64).to_le_bytes().to_vec();
            v.extend_from_slice(rest);
            v.extend_from_slice(&f.valid[8 + f.header_len..]);
            v
        }
    }
}

/// The tiny model's valid weights file that mode-1 inputs patch.
pub fn valid_weights() -> Vec<u8> {
    fixture().valid.clone()
}

/// The `weights` target: loads the input's buffer into the fixture model and builds a
/// model from it; panics when the contract breaks.
pub fn weights_input(data: &[u8]) {
    let f = fixture();
    let bytes = weights_bytes_with(&f, data);

    // Building a model from the buffer (its configuration comes from the metadata).
    let mut m: *mut CsraModel = std::ptr::null_mut();
    let st =
        unsafe { csra_model_create_from_safetensors_buffer(bytes.as_ptr(), bytes.len(), &mut m) };
    match st {
        CsraStatus::CSRA_OK => {
            assert!(!m.is_null(), "create: OK without a model");
            unsafe { csra_model_free(m) };
        }
        CsraStatus::CSRA_BAD_WEIGHTS => {
            check_message("create", st);
            assert!(m.is_null(), "create: failed but wrote its output");
        }
        other => panic!("create: unexpected status {other:?}: {}", last_error()),
    }

    // Loading into a live model: all or nothing.
    let st = unsafe { csra_model_load_safetensors_buffer(f.model, bytes.as_ptr(), bytes.len()) };
    match st {
        CsraStatus::CSRA_OK => {
            // New weights may be extreme: a segmentation then succeeds with finite
            // probabilities or reports CSRA_NUMERIC_ERROR, never an internal error.
            let mut seg = std::ptr::null_mut();
            let img = reference_image(&f);
            let st = unsafe { csra_segment_tile(f.model, &img, std::ptr::null(), &mut seg) };
            match st {
                CsraStatus::CSRA_OK => {
                    check_result(seg, REF_SIDE, REF_SIDE, true);
                    unsafe { csra_segmentation_free(seg) };
                }
                CsraStatus::CSRA_NUMERIC_ERROR => check_message("segment after load", st),
                other => panic!("segment after load: {other:?}: {}", last_error()),
            }
            // Back to the fixture's weights for the next input.
            let st = unsafe {
                csra_model_load_safetensors_buffer(f.model, f.valid.as_ptr(), f.valid.len())
            };
            assert_eq!(st, CsraStatus::CSRA_OK, "restore: {}", last_error());
        }
        CsraStatus::CSRA_BAD_WEIGHTS => {
            check_message("load", st);
            let now = probabilities_of(&f);
            let same = now.len() == f.reference.len()
                && now
                    .iter()
                    .zip(&f.reference)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "a failed load changed the model ({})", last_error());
        }
        other => panic!("load: unexpected status {other:?}: {}", last_error()),
    }
}

// ---- segment ---------------------------------------------------------------------------

unsafe extern "C" fn cancel_after(user: *mut c_void, done: u32, _total: u32) -> i32 {
    let limit = *(user as *const u32);
    (limit != 0 && done >= limit) as i32
}

/// The `segment` target. Input layout (missing bytes read as 0): flags, width, height,
/// format, stride padding, length cut, tile size, overlap, batch size, minimum area,
/// cancel-after, struct size, then raw f32 overrides (mean, std, h, sigma, polygon
/// tolerance) when flag 0x20 is set, raw u32 sides when 0x08 is set, a raw u64 stride when
/// 0x40 is set, and the rest as pixel values (repeated to fill the buffer).
pub fn segment_input(data: &[u8]) {
    let f = fixture();
    let mut c = Cursor(data);
    let flags = c.u8();
    let tiled = flags & 0x01 != 0;
    let with_options = flags & 0x02 != 0;
    let keep = flags & 0x04 != 0;
    let mut width = 32 + c.u8() as u32 % 97;
    let mut height = 32 + c.u8() as u32 % 97;
    let format = match c.u8() % 6 {
        k @ 0..=3 => k as u32,
        4 => 4,
        _ => u32::MAX,
    };
    let bpp = if format == 1 || format == 3 { 4 } else { 3 };
    let pad = (c.u8() % 16) as usize;
    let cut = c.u8() as usize;
    let tile = 32 + 2 * c.u8() as u32;
    let overlap = c.u8() as u32 % 64;
    let batch = c.u8() as u32 % 4;
    let min_area = c.u8() as u32;
    let mut cancel: u32 = c.u8() as u32 % 8;
    let struct_size = c.u8() as usize;
    let mut o = CsraSegmentOptions {
        struct_size: 0,
        mean: [0.0; 3],
        std: [0.0; 3],
        min_area: 0,
        h: 0.0,
        sigma: 0.0,
        polygon_tolerance: 0.0,
        tile_size: 0,
        overlap: 0,
        batch_size: 0,
        keep_probabilities: 0,
    };
    assert_eq!(
        unsafe { csra_segment_options_default(&mut o) },
        CsraStatus::CSRA_OK
    );
    o.tile_size = tile;
    o.overlap = overlap;
    o.batch_size = batch;
    o.min_area = min_area;
    o.keep_probabilities = keep as u32;
    if flags & 0x80 != 0 {
        o.struct_size = struct_size;
    }
    if flags & 0x20 != 0 {
        let which = c.u8();
        for k in 0..3 {
            if which & (1 << k) != 0 {
                o.mean[k] = c.f32();
            }
            if which & (8 << k) != 0 {
                o.std[k] = c.f32();
            }
        }
        if which & 0x40 != 0 {
            o.h = c.f32();
            o.sigma = c.f32();
        }
        if which & 0x80 != 0 {
            o.polygon_tolerance = c.f32();
        }
    }
    if flags & 0x08 != 0 {
        width = c.u32();
        height = c.u32();
    }
    let row = width as usize * bpp;
    let mut stride = row + pad;
    if flags & 0x40 != 0 {
        stride = c.u64() as usize;
    }
    // The buffer the caller really has: what the description needs, less `cut` bytes; an
    // impossible size gets a small buffer (its claimed length is always the real one).
    let need = stride
        .checked_mul(height.max(1) as usize - 1)
        .and_then(|v| v.checked_add(row));
    let len = match need {
        Some(n) if n <= 1 << 22 => n.saturating_sub(cut),
        _ => 4096,
    };
    let pixels = c.0;
    let buf: Vec<u8> = if pixels.is_empty() {
        vec![128; len]
    } else {
        pixels.iter().copied().cycle().take(len).collect()
    };
    let img = CsraImage {
        data: buf.as_ptr(),
        len: buf.len(),
        width,
        height,
        stride,
        format,
    };
    // The options the library saw: the defaults overwritten by the first struct_size bytes.
    let mut seen = CsraSegmentOptions { ..o };
    assert_eq!(
        unsafe { csra_segment_options_default(&mut seen) },
        CsraStatus::CSRA_OK
    );
    if with_options {
        let n = o.struct_size.min(std::mem::size_of::<CsraSegmentOptions>());
        unsafe {
            std::ptr::copy_nonoverlapping(
                &o as *const CsraSegmentOptions as *const u8,
                &mut seen as *mut CsraSegmentOptions as *mut u8,
                n,
            )
        };
    }
    let opts: *const CsraSegmentOptions = if with_options { &o } else { std::ptr::null() };
    let sentinel = 0x5eu8;
    let sentinel_ptr = &sentinel as *const u8 as *mut CsraSegmentation;
    let mut seg = sentinel_ptr;
    let st = unsafe {
        if tiled {
            let cb = if flags & 0x10 != 0 {
                Some(cancel_after as unsafe extern "C" fn(*mut c_void, u32, u32) -> i32)
            } else {
                None
            };
            csra_segment_image(
                f.model,
                &img,
                opts,
                cb,
                &mut cancel as *mut u32 as *mut c_void,
                &mut seg,
            )
        } else {
            csra_segment_tile(f.model, &img, opts, &mut seg)
        }
    };
    // A normalisation that sends some pixel value beyond the f32 range must be refused.
    let overflows = (0..3).any(|k| {
        let (m, s) = (seen.mean[k], seen.std[k]);
        m.is_finite()
            && s.is_finite()
            && s > 0.0
            && !(((0.0 - m) / s).is_finite() && ((1.0 - m) / s).is_finite())
    });
    assert!(
        !(overflows && st == CsraStatus::CSRA_OK),
        "mean {:?} / std {:?} overflow f32, yet the segmentation succeeded",
        seen.mean,
        seen.std
    );
    match st {
        CsraStatus::CSRA_OK => {
            assert!(seg != sentinel_ptr && !seg.is_null(), "OK without a result");
            check_result(seg, width, height, seen.keep_probabilities != 0);
            unsafe { csra_segmentation_free(seg) };
        }
        CsraStatus::CSRA_INVALID_ARGUMENT
        | CsraStatus::CSRA_NUMERIC_ERROR
        | CsraStatus::CSRA_CANCELLED => {
            check_message("segment", st);
            assert!(seg == sentinel_ptr, "a failed call wrote its output");
        }
        other => panic!("segment: unexpected status {other:?}: {}", last_error()),
    }
}

/// A result must hold together: sizes, class values, labels and instances agree.
fn check_result(seg: *mut CsraSegmentation, w: u32, h: u32, keep: bool) {
    unsafe {
        let (mut sw, mut sh, mut nc) = (0, 0, 0);
        assert_eq!(
            csra_segmentation_size(seg, &mut sw, &mut sh, &mut nc),
            CsraStatus::CSRA_OK
        );
        assert_eq!((sw, sh, nc), (w, h, 3), "result size");
        let n = w as usize * h as usize;
        let (mut cls, mut len) = (std::ptr::null(), 0);
        assert_eq!(
            csra_segmentation_class_map(seg, &mut cls, &mut len),
            CsraStatus::CSRA_OK
        );
        assert_eq!(len, n, "class map length");
        let cls = std::slice::from_raw_parts(cls, len);
        assert!(cls.iter().all(|&k| (k as u32) < nc), "class out of range");
        let (mut lab, mut llen) = (std::ptr::null(), 0);
        assert_eq!(
            csra_segmentation_labels(seg, &mut lab, &mut llen),
            CsraStatus::CSRA_OK
        );
        assert_eq!(llen, n, "label map length");
        let lab = std::slice::from_raw_parts(lab, llen);
        let mut count = 0usize;
        assert_eq!(
            csra_segmentation_num_instances(seg, &mut count),
            CsraStatus::CSRA_OK
        );
        assert!(
            lab.iter().all(|&l| l as usize <= count),
            "label beyond the instances"
        );
        for i in 0..count {
            let mut inst: CsraInstance = std::mem::zeroed();
            assert_eq!(
                csra_segmentation_instance(seg, i, &mut inst),
                CsraStatus::CSRA_OK
            );
            assert_eq!(inst.id as usize, i + 1);
            assert!(inst.class_id >= 1 && inst.class_id < nc);
            assert!(inst.bbox_x0 < inst.bbox_x1 && inst.bbox_x1 <= w);
            assert!(inst.bbox_y0 < inst.bbox_y1 && inst.bbox_y1 <= h);
            assert!(inst.score.is_finite());
            let poly = std::slice::from_raw_parts(inst.polygon, 2 * inst.polygon_len);
            for p in poly.chunks(2) {
                assert!(
                    p[0].is_finite()
                        && p[1].is_finite()
                        && (0.0..=w as f32).contains(&p[0])
                        && (0.0..=h as f32).contains(&p[1]),
                    "polygon point {p:?} outside the image"
                );
            }
        }
        let (mut p, mut plen) = (std::ptr::null(), 0);
        let st = csra_segmentation_probabilities(seg, &mut p, &mut plen);
        match (st, keep) {
            (CsraStatus::CSRA_OK, true) => {
                assert_eq!(plen, nc as usize * n);
                let p = std::slice::from_raw_parts(p, plen);
                assert!(p.iter().all(|v| v.is_finite()), "non-finite probability");
                for i in 0..n {
                    let s: f32 = (0..nc as usize).map(|k| p[k * n + i]).sum();
                    assert!((s - 1.0).abs() < 1e-3, "probabilities sum to {s}");
                }
            }
            (CsraStatus::CSRA_NOT_AVAILABLE, false) => {}
            (st, keep) => panic!("probabilities: {st:?} with keep_probabilities {keep}"),
        }
    }
}

/// Seed inputs for a target (committed under `fuzz/seeds/<target>/`, rewritten by
/// `CSRANET_WRITE_FUZZ_SEEDS=1 cargo test --test reliability fuzz_`): the tiny model's
/// valid file patched, cut and as a header, and a few image descriptions.
pub fn seed_inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    match target {
        "weights" => {
            let f = fixture();
            let mut header = vec![2u8];
            header.extend_from_slice(&f.valid[8..8 + f.header_len]);
            vec![
                ("valid-patched".into(), vec![1, 0]),
                ("valid-cut".into(), vec![1, 200]),
                ("valid-header".into(), header),
            ]
        }
        _ => vec![
            ("tile-64".into(), vec![0x00, 32, 32, 0, 0, 0]),
            (
                "image-96-tiles".into(),
                vec![0x07, 64, 64, 1, 3, 0, 16, 16, 1, 5, 0, 0],
            ),
            (
                "options-floats".into(),
                vec![
                    0x22, 10, 20, 2, 0, 0, 32, 8, 2, 10, 0, 0, 0xff, 0, 0, 0, 0x3f,
                ],
            ),
            ("cancel".into(), vec![0x17, 96, 96, 3, 0, 0, 16, 8, 1, 0, 2]),
        ],
    }
}
