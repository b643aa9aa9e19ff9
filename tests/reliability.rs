//! Reliability of the C ABI under what a host process does to it (issue 8), through the
//! exported `csra_*` functions called from Rust exactly as a C host calls them.
//!
//! - `concurrent_segment_load_train`: one model (a tiny network, see
//!   `fuzz/src/lib.rs::tiny_config`); 8 threads each run 40 segmentations (alternating
//!   `csra_segment_tile` on 64x64 and `csra_segment_image` on 96x96 in four 64x64 tiles)
//!   while a ninth thread does 40 weight loads (A and B alternately from a file or a
//!   buffer, every fourth a corrupt buffer that must fail) and a tenth 12 supervised
//!   training steps (batch 2, 64x64). Every result must equal, bit for bit, the result of
//!   one whole weight state: A, B (precomputed) or a state a loader or trainer left (each
//!   writer records the output of the state it produced while the other writer waits).
//!   A watchdog fails the test after 300 s instead of hanging.
//! - `sigkill_during_weights_save`: 30 times, a child process (this test binary re-run
//!   with `CSRANET_RELIABILITY_CHILD`) saves two `lite` models in turn to one path and is
//!   killed with SIGKILL at a random moment; the file must then load and equal one of
//!   the two, and the temporary files of killed writers must not stop later saves.
//! - `sigkill_during_checkpoint_save`: the same, 20 times, for `csra_trainer_save_checkpoint`.
//! - `save_errors_are_reported_and_keep_the_old_file`: a file-size limit (RLIMIT_FSIZE in a
//!   child, the disk-full path: `write` fails), a parent that is a regular file, a target
//!   that is a directory, a directory that refuses files (/proc): each a `CSRA_IO_ERROR`
//!   naming the path and the reason, the previous file intact, no temporary file left.
//! - `bad_weights_are_refused_whole`: truncations, garbage, absurd header lengths, shapes
//!   and offsets, wrong dtypes, missing, extra and renamed tensors, NaN values, bad
//!   metadata, other architectures: each `CSRA_BAD_WEIGHTS` with a message naming the
//!   problem, and the model segments exactly as before.
//! - `hostile_images_are_refused` and `non_finite_computations_are_reported`: sizes,
//!   strides, lengths and formats that do not fit, and inputs that overflow to NaN.
//! - `fuzz_regressions_replay` and `fuzz_seeds_replay`: the committed inputs under
//!   `fuzz/regressions/` and `fuzz/seeds/` through the fuzz harnesses.
//!
//! Counts and timings are printed (`cargo test --test reliability -- --nocapture`);
//! RELIABILITY.md has the table.
#![cfg(target_os = "linux")]

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod harness;

use csranet::ffi::model::*;
use csranet::ffi::segmentation::*;
use csranet::ffi::trainer::*;
use csranet::ffi::CsraStatus;
use csranet::ffi::CsraStatus::*;
use harness::last_error;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, HashSet};
use std::ffi::CString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---- shared helpers -----------------------------------------------------------------------

fn ok(st: CsraStatus, what: &str) {
    assert_eq!(st, CSRA_OK, "{what}: {}", last_error());
}

fn cpath(p: &Path) -> CString {
    CString::new(p.to_str().unwrap()).unwrap()
}

/// A scratch directory for one test of this process (those of dead processes removed).
fn scratch(test: &str) -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    if let Ok(entries) = std::fs::read_dir(&tmp) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("reliability-") {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    let d = tmp
        .join(format!("reliability-{}", std::process::id()))
        .join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A model handle owned by the test; the ABI lets many threads use one model.
struct Model(*mut CsraModel);
// SAFETY: the C ABI documents `CsraModel` as usable from many threads (const functions
// concurrently, loads and training steps exclusive under the library's own lock).
unsafe impl Send for Model {}
unsafe impl Sync for Model {}
impl Drop for Model {
    fn drop(&mut self) {
        unsafe { csra_model_free(self.0) }
    }
}

fn model_config(preset: &str, f: impl FnOnce(&mut CsraModelConfig)) -> CsraModelConfig {
    let mut c: CsraModelConfig = unsafe { std::mem::zeroed() };
    let name = CString::new(preset).unwrap();
    ok(
        unsafe { csra_model_config_default(name.as_ptr(), &mut c) },
        "config",
    );
    f(&mut c);
    c
}

/// The tiny network of the fuzz harnesses, from C's side.
fn tiny_config(seed: u64) -> CsraModelConfig {
    let t = harness::tiny_config();
    model_config("lite", |c| {
        c.depth = t.depth as u32;
        c.width = t.width as f32;
        c.output_stride = t.output_stride as u32;
        c.num_classes = t.num_classes as u32;
        c.raa = t.raa as u32;
        c.raa_region = t.raa_region as u32;
        c.seed = seed;
    })
}

fn create(c: &CsraModelConfig) -> Model {
    let mut m = std::ptr::null_mut();
    ok(unsafe { csra_model_create(c, &mut m) }, "create");
    Model(m)
}

fn save(m: &Model, p: &Path) {
    let c = cpath(p);
    ok(
        unsafe { csra_model_save_safetensors(m.0, c.as_ptr()) },
        "save",
    );
}

fn load_file(p: &Path) -> Model {
    let c = cpath(p);
    let mut m = std::ptr::null_mut();
    ok(
        unsafe { csra_model_create_from_safetensors(c.as_ptr(), &mut m) },
        "create from file",
    );
    Model(m)
}

/// The fixture tile (256x256 RGB8).
fn fixture_rgb() -> (Vec<u8>, u32, u32) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let img = image::open(root.join("tests/fixtures/tiles/patch1.png"))
        .unwrap()
        .to_rgb8();
    let (w, h) = img.dimensions();
    (img.into_raw(), w, h)
}

/// A `w` x `h` window at (x, y) of an RGB8 buffer of width `full_w`, read in place.
fn window(rgb: &[u8], full_w: u32, x: u32, y: u32, w: u32, h: u32) -> CsraImage {
    let stride = full_w as usize * 3;
    let off = y as usize * stride + x as usize * 3;
    CsraImage {
        data: rgb[off..].as_ptr(),
        len: stride * (h as usize - 1) + w as usize * 3,
        width: w,
        height: h,
        stride,
        format: CsraPixelFormat::CSRA_PIXEL_RGB8 as u32,
    }
}

/// Everything a segmentation returns, as bytes: class map, labels, probabilities (bits).
fn result_bytes(seg: *mut CsraSegmentation) -> Vec<u8> {
    unsafe {
        let mut out = Vec::new();
        let (mut c, mut n) = (std::ptr::null(), 0);
        ok(
            csra_segmentation_class_map(seg, &mut c, &mut n),
            "class map",
        );
        out.extend_from_slice(std::slice::from_raw_parts(c, n));
        let (mut l, mut n) = (std::ptr::null(), 0);
        ok(csra_segmentation_labels(seg, &mut l, &mut n), "labels");
        for v in std::slice::from_raw_parts(l, n) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let (mut p, mut n) = (std::ptr::null(), 0);
        ok(
            csra_segmentation_probabilities(seg, &mut p, &mut n),
            "probs",
        );
        for v in std::slice::from_raw_parts(p, n) {
            out.extend_from_slice(&v.to_bits().to_le_bytes());
        }
        csra_segmentation_free(seg);
        out
    }
}

fn segment_tile(m: &Model, img: &CsraImage) -> Vec<u8> {
    let mut seg = std::ptr::null_mut();
    ok(
        unsafe { csra_segment_tile(m.0, img, std::ptr::null(), &mut seg) },
        "segment tile",
    );
    result_bytes(seg)
}

/// `csra_segment_image` by 64-pixel tiles, 16 overlap, one tile per batch.
fn segment_tiled(m: &Model, img: &CsraImage) -> Vec<u8> {
    let mut o: CsraSegmentOptions = unsafe { std::mem::zeroed() };
    ok(unsafe { csra_segment_options_default(&mut o) }, "options");
    o.tile_size = 64;
    o.overlap = 16;
    o.batch_size = 1;
    let mut seg = std::ptr::null_mut();
    ok(
        unsafe { csra_segment_image(m.0, img, &o, None, std::ptr::null_mut(), &mut seg) },
        "segment image",
    );
    result_bytes(seg)
}

/// Tensor name -> raw data, and the metadata, of a safetensors file.
type Tensors = (BTreeMap<String, Vec<u8>>, BTreeMap<String, String>);

fn tensors_of(bytes: &[u8]) -> Result<Tensors, String> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let t = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.data().to_vec()))
        .collect();
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
    let m = meta
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    Ok((t, m))
}

/// `.NAME.tmp-*` files that `write_atomic` left beside `target`.
fn temp_files(target: &Path) -> Vec<PathBuf> {
    let prefix = format!(".{}.tmp-", target.file_name().unwrap().to_string_lossy());
    let mut v: Vec<PathBuf> = std::fs::read_dir(target.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

fn seed_rng(what: &str) -> ChaCha8Rng {
    let seed = std::env::var("CSRANET_RELIABILITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("{what}: random seed {seed} (CSRANET_RELIABILITY_SEED={seed} repeats it)");
    ChaCha8Rng::seed_from_u64(seed)
}

// ---- concurrency ----------------------------------------------------------------------------

const SEGMENT_THREADS: usize = 8;
const SEGMENTS_PER_THREAD: usize = 40;
const LOADS: usize = 40;
const TRAIN_STEPS: usize = 12;
const WATCHDOG: Duration = Duration::from_secs(300);

struct Trainer(*mut CsraTrainer);
// SAFETY: used by one thread at a time (the trainer thread).
unsafe impl Send for Trainer {}

#[test]
fn concurrent_segment_load_train() {
    let dir = scratch("concurrency");
    let (rgb, fw, _) = fixture_rgb();
    let rgb = Arc::new(rgb);

    // Weights A and B, as files and buffers.
    let a_path = dir.join("a.safetensors");
    let b_path = dir.join("b.safetensors");
    save(&create(&tiny_config(1)), &a_path);
    save(&create(&tiny_config(2)), &b_path);
    let a_bytes = Arc::new(std::fs::read(&a_path).unwrap());
    let b_bytes = Arc::new(std::fs::read(&b_path).unwrap());

    let model = Arc::new(load_file(&a_path));
    let tile = move |rgb: &[u8]| window(rgb, fw, 10, 20, 64, 64);
    let big = move |rgb: &[u8]| window(rgb, fw, 100, 90, 96, 96);

    // The results of whole states: A and B now, trained states as they appear.
    let legit_tile = Arc::new(Mutex::new(HashSet::new()));
    let legit_image = Arc::new(Mutex::new(HashSet::new()));
    for (bytes, name) in [(&b_bytes, "B"), (&a_bytes, "A")] {
        let st =
            unsafe { csra_model_load_safetensors_buffer(model.0, bytes.as_ptr(), bytes.len()) };
        ok(st, name);
        legit_tile
            .lock()
            .unwrap()
            .insert(segment_tile(&model, &tile(&rgb)));
        legit_image
            .lock()
            .unwrap()
            .insert(segment_tiled(&model, &big(&rgb)));
    }
    let (a_tile, a_image) = {
        let t = segment_tile(&model, &tile(&rgb));
        let i = segment_tiled(&model, &big(&rgb));
        (t, i)
    };
    assert_eq!(legit_tile.lock().unwrap().len(), 2, "A and B must differ");

    let writers = Arc::new(Mutex::new(()));
    let progress: Arc<Vec<AtomicUsize>> = Arc::new(
        (0..SEGMENT_THREADS + 2)
            .map(|_| AtomicUsize::new(0))
            .collect(),
    );
    let finished = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut handles = Vec::new();

    // Segmenting threads.
    for t in 0..SEGMENT_THREADS {
        let (model, rgb, progress, finished) = (
            model.clone(),
            rgb.clone(),
            progress.clone(),
            finished.clone(),
        );
        handles.push(std::thread::spawn(move || {
            let mut out = Vec::with_capacity(SEGMENTS_PER_THREAD);
            for k in 0..SEGMENTS_PER_THREAD {
                let tiled = (t + k) % 2 == 1;
                let r = if tiled {
                    segment_tiled(&model, &big(&rgb))
                } else {
                    segment_tile(&model, &tile(&rgb))
                };
                out.push((tiled, r));
                progress[t].fetch_add(1, Ordering::Relaxed);
            }
            finished.fetch_add(1, Ordering::SeqCst);
            out
        }));
    }

    // The loader: A and B in turn, from a file or a buffer; every fourth load is corrupt.
    let loader = {
        let (model, rgb, progress, finished, writers) = (
            model.clone(),
            rgb.clone(),
            progress.clone(),
            finished.clone(),
            writers.clone(),
        );
        let (a_bytes, b_bytes, legit_tile, legit_image) = (
            a_bytes.clone(),
            b_bytes.clone(),
            legit_tile.clone(),
            legit_image.clone(),
        );
        let (a_c, b_c) = (cpath(&a_path), cpath(&b_path));
        std::thread::spawn(move || {
            let mut refused = 0;
            for k in 0..LOADS {
                let _w = writers.lock().unwrap();
                let (bytes, path) = if k % 2 == 0 {
                    (&b_bytes, &b_c)
                } else {
                    (&a_bytes, &a_c)
                };
                let st = if k % 4 == 3 {
                    let cut = &bytes[..bytes.len() - 1 - k];
                    unsafe { csra_model_load_safetensors_buffer(model.0, cut.as_ptr(), cut.len()) }
                } else if k % 4 == 1 {
                    unsafe { csra_model_load_safetensors(model.0, path.as_ptr()) }
                } else {
                    unsafe {
                        csra_model_load_safetensors_buffer(model.0, bytes.as_ptr(), bytes.len())
                    }
                };
                if k % 4 == 3 {
                    assert_eq!(st, CSRA_BAD_WEIGHTS, "corrupt load {k}: {}", last_error());
                    refused += 1;
                } else {
                    ok(st, "load");
                }
                legit_tile
                    .lock()
                    .unwrap()
                    .insert(segment_tile(&model, &tile(&rgb)));
                legit_image
                    .lock()
                    .unwrap()
                    .insert(segment_tiled(&model, &big(&rgb)));
                progress[SEGMENT_THREADS].fetch_add(1, Ordering::Relaxed);
            }
            finished.fetch_add(1, Ordering::SeqCst);
            refused
        })
    };

    // The trainer: supervised steps on two 64x64 windows of the same model.
    let trainer = {
        let (model, rgb, progress, finished, writers) = (
            model.clone(),
            rgb.clone(),
            progress.clone(),
            finished.clone(),
            writers.clone(),
        );
        let (legit_tile, legit_image) = (legit_tile.clone(), legit_image.clone());
        let mut tc: CsraTrainConfig = unsafe { std::mem::zeroed() };
        ok(
            unsafe { csra_train_config_default(&mut tc) },
            "train config",
        );
        tc.method = CSRA_METHOD_SUPERVISED;
        tc.crop_size = 64;
        tc.total_steps = 100;
        tc.lr = 0.05;
        let mut t = std::ptr::null_mut();
        ok(
            unsafe { csra_trainer_create(model.0, &tc, &mut t) },
            "trainer",
        );
        let t = Trainer(t);
        std::thread::spawn(move || {
            let t = t;
            let images = [
                window(&rgb, fw, 0, 0, 64, 64),
                window(&rgb, fw, 128, 128, 64, 64),
            ];
            let labels: Vec<Vec<u8>> = (0..2)
                .map(|i| {
                    (0..64 * 64)
                        .map(|k| ((k / 64 / 16 + k % 64 / 16 + i) % 3) as u8)
                        .collect()
                })
                .collect();
            let label_ptrs = [labels[0].as_ptr(), labels[1].as_ptr()];
            let batch = CsraTrainBatch {
                images: images.as_ptr(),
                labels: label_ptrs.as_ptr(),
                count: 2,
            };
            for _ in 0..TRAIN_STEPS {
                let _w = writers.lock().unwrap();
                let mut report = CsraStepReport::default();
                ok(
                    unsafe { csra_trainer_step(t.0, &batch, std::ptr::null(), &mut report) },
                    "train step",
                );
                legit_tile
                    .lock()
                    .unwrap()
                    .insert(segment_tile(&model, &tile(&rgb)));
                legit_image
                    .lock()
                    .unwrap()
                    .insert(segment_tiled(&model, &big(&rgb)));
                progress[SEGMENT_THREADS + 1].fetch_add(1, Ordering::Relaxed);
            }
            drop(t);
            finished.fetch_add(1, Ordering::SeqCst);
        })
    };

    // Watchdog: a deadlock fails the test instead of hanging it.
    while finished.load(Ordering::SeqCst) < SEGMENT_THREADS + 2 {
        if started.elapsed() > WATCHDOG {
            let p: Vec<usize> = progress.iter().map(|p| p.load(Ordering::Relaxed)).collect();
            eprintln!(
                "concurrent_segment_load_train: not finished after {WATCHDOG:?} (deadlock?); \
                 progress per thread (8 segmenters, loader, trainer): {p:?}"
            );
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = started.elapsed();
    let results: Vec<(bool, Vec<u8>)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let refused = loader.join().unwrap();
    trainer.join().unwrap();

    let legit_tile = legit_tile.lock().unwrap();
    let legit_image = legit_image.lock().unwrap();
    let mut seen = HashSet::new();
    let mut from_a = 0;
    for (i, (tiled, r)) in results.iter().enumerate() {
        let legit = if *tiled { &*legit_image } else { &*legit_tile };
        assert!(
            legit.contains(r),
            "result {i} ({}) equals no whole weight state: torn weights",
            if *tiled {
                "segment_image"
            } else {
                "segment_tile"
            }
        );
        seen.insert(r.clone());
        if *r == a_tile || *r == a_image {
            from_a += 1;
        }
    }
    eprintln!(
        "concurrency: {SEGMENT_THREADS} threads x {SEGMENTS_PER_THREAD} segmentations, \
         {LOADS} loads ({refused} corrupt, refused), {TRAIN_STEPS} training steps in \
         {:.1} s; the {} results show {} distinct whole states ({from_a} from A) of the \
         {} tile and {} image results the writers recorded",
        elapsed.as_secs_f64(),
        results.len(),
        seen.len(),
        legit_tile.len(),
        legit_image.len(),
    );
    assert_eq!(results.len(), SEGMENT_THREADS * SEGMENTS_PER_THREAD);
    assert!(
        seen.len() >= 3,
        "segmentations saw only {} states: the writers did not interleave",
        seen.len()
    );
}

// ---- crash safety: child processes -----------------------------------------------------------

/// Set in a re-run of this test binary that plays a child process; its value is the job,
/// fields separated by newlines.
const CHILD_ENV: &str = "CSRANET_RELIABILITY_CHILD";

/// A child process's entry point: a no-op in a normal test run.
#[test]
fn child_process_entry() {
    let Ok(job) = std::env::var(CHILD_ENV) else {
        return;
    };
    let f: Vec<&str> = job.split('\n').collect();
    let code = match f[0] {
        "save-weights" => child_save_weights(Path::new(f[1]), Path::new(f[2]), Path::new(f[3])),
        "save-checkpoint" => child_save_checkpoint(
            Path::new(f[1]),
            Path::new(f[2]),
            Path::new(f[3]),
            Path::new(f[4]),
        ),
        "fsize" => child_file_size_limit(Path::new(f[1]), Path::new(f[2])),
        other => {
            eprintln!("unknown child job {other}");
            2
        }
    };
    std::process::exit(code);
}

fn spawn_child(job: &[&str], stderr: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "child_process_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, job.join("\n"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap()
}

/// Waits until the child prints `ready` (it then writes in a loop).
fn wait_ready(child: &mut Child, stderr: &Path) {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if line.ends_with("ready") {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(120)).is_err() {
        let _ = child.kill();
        panic!(
            "the child never got ready:\n{}",
            std::fs::read_to_string(stderr).unwrap_or_default()
        );
    }
}

fn child_save_weights(target: &Path, a: &Path, b: &Path) -> i32 {
    let (a, b) = (load_file(a), load_file(b));
    let t = cpath(target);
    println!("ready");
    loop {
        for m in [&b, &a] {
            let st = unsafe { csra_model_save_safetensors(m.0, t.as_ptr()) };
            if st != CSRA_OK {
                eprintln!("save failed: {st:?} {}", last_error());
                return 3;
            }
        }
    }
}

/// A trainer on a new model from `weights`, restored from `ckpt`.
fn trainer_from(weights: &Path, ckpt: &Path) -> Trainer {
    let m = load_file(weights);
    let t = new_trainer(&m);
    let c = cpath(ckpt);
    ok(
        unsafe { csra_trainer_load_checkpoint(t.0, std::ptr::null_mut(), c.as_ptr()) },
        "load checkpoint",
    );
    t
}

fn new_trainer(m: &Model) -> Trainer {
    let mut tc: CsraTrainConfig = unsafe { std::mem::zeroed() };
    ok(
        unsafe { csra_train_config_default(&mut tc) },
        "train config",
    );
    tc.method = CSRA_METHOD_SUPERVISED;
    tc.crop_size = 64;
    tc.total_steps = 100;
    let mut t = std::ptr::null_mut();
    ok(unsafe { csra_trainer_create(m.0, &tc, &mut t) }, "trainer");
    Trainer(t)
}

impl Drop for Trainer {
    fn drop(&mut self) {
        unsafe { csra_trainer_free(self.0) }
    }
}

fn child_save_checkpoint(target: &Path, weights: &Path, ck_a: &Path, ck_b: &Path) -> i32 {
    let (a, b) = (trainer_from(weights, ck_a), trainer_from(weights, ck_b));
    let t = cpath(target);
    println!("ready");
    loop {
        for tr in [&b, &a] {
            let st = unsafe { csra_trainer_save_checkpoint(tr.0, std::ptr::null(), t.as_ptr()) };
            if st != CSRA_OK {
                eprintln!("checkpoint failed: {st:?} {}", last_error());
                return 3;
            }
        }
    }
}

/// Saves under a 16 KiB file-size limit (writes fail with EFBIG, as on a full disk) and
/// prints each status and message.
fn child_file_size_limit(dir: &Path, weights: &Path) -> i32 {
    let m = load_file(weights);
    let t = new_trainer(&m);
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let lim = libc::rlimit {
            rlim_cur: 16 << 10,
            rlim_max: 16 << 10,
        };
        if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
            eprintln!("setrlimit failed");
            return 4;
        }
    }
    let w = cpath(&dir.join("old.safetensors"));
    let st = unsafe { csra_model_save_safetensors(m.0, w.as_ptr()) };
    println!("weights {} {}", st as i32, last_error());
    let c = cpath(&dir.join("old.ckpt"));
    let st = unsafe { csra_trainer_save_checkpoint(t.0, std::ptr::null(), c.as_ptr()) };
    println!("checkpoint {} {}", st as i32, last_error());
    0
}

/// Kills a writing child `reps` times at random moments; after each kill `check` must
/// accept the target file. Returns (kills that left a temporary file, i.e. landed
/// mid-write; seconds).
fn kill_loop(
    name: &str,
    reps: usize,
    job: &[&str],
    target: &Path,
    max_delay: Duration,
    check: &dyn Fn(usize) -> String,
) -> (usize, f64) {
    let dir = target.parent().unwrap();
    let stderr = dir.join("child.stderr");
    let mut rng = seed_rng(name);
    let started = Instant::now();
    let mut mid_write = 0;
    let mut seen = BTreeMap::new();
    for rep in 0..reps {
        let before = temp_files(target).len();
        let mut child = spawn_child(job, &stderr);
        wait_ready(&mut child, &stderr);
        let delay = rng.random_range(0..max_delay.as_micros() as u64);
        std::thread::sleep(Duration::from_micros(delay));
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{name}: the child exited by itself ({status}) at repetition {rep}:\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if temp_files(target).len() > before {
            mid_write += 1;
        }
        *seen.entry(check(rep)).or_insert(0) += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{name}: {reps} SIGKILLs (delay up to {max_delay:?}) in {secs:.1} s; {mid_write} left a \
         temporary file (killed mid-write); the file held afterwards: {seen:?}; {} temporary \
         files remain",
        temp_files(target).len()
    );
    (mid_write, secs)
}

#[test]
fn sigkill_during_weights_save() {
    let dir = scratch("kill-weights");
    let (a, b) = (dir.join("a.safetensors"), dir.join("b.safetensors"));
    let lite_a = create(&model_config("lite", |c| c.seed = 1));
    save(&lite_a, &a);
    save(&create(&model_config("lite", |c| c.seed = 2)), &b);
    let ta = tensors_of(&std::fs::read(&a).unwrap()).unwrap().0;
    let tb = tensors_of(&std::fs::read(&b).unwrap()).unwrap().0;
    assert_ne!(ta, tb);
    let target = dir.join("model.safetensors");
    let t0 = Instant::now();
    save(&lite_a, &target);
    let one_save = t0.elapsed();
    drop(lite_a);

    let check = |rep: usize| -> String {
        let bytes = std::fs::read(&target).unwrap();
        let (t, _) = tensors_of(&bytes)
            .unwrap_or_else(|e| panic!("repetition {rep}: the file does not parse: {e}"));
        let which = if t == ta {
            "A"
        } else if t == tb {
            "B"
        } else {
            panic!("repetition {rep}: the file is neither A nor B")
        };
        drop(load_file(&target));
        which.to_string()
    };
    let job = [
        "save-weights",
        target.to_str().unwrap(),
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ];
    let (mid, _) = kill_loop(
        "sigkill_during_weights_save",
        30,
        &job,
        &target,
        one_save * 5 / 2,
        &check,
    );
    eprintln!(
        "one save of lite ({} bytes) took {one_save:?}",
        std::fs::metadata(&a).unwrap().len()
    );
    assert!(mid > 0, "no kill landed mid-write: the test proved nothing");
    // Left-over temporary files do not stop a save.
    save(&load_file(&b), &target);
    assert_eq!(check(usize::MAX), "B");
    let _ = std::fs::remove_dir_all(&dir); // the killed writers' temporary files
}

#[test]
fn sigkill_during_checkpoint_save() {
    let dir = scratch("kill-checkpoint");
    let w = dir.join("w.safetensors");
    let m = create(&model_config("lite", |c| c.seed = 5));
    save(&m, &w);
    // Two checkpoints of one run: after one and after two supervised steps.
    let (rgb, fw, _) = fixture_rgb();
    let images = [
        window(&rgb, fw, 0, 0, 64, 64),
        window(&rgb, fw, 64, 64, 64, 64),
    ];
    let labels: Vec<Vec<u8>> = (0..2)
        .map(|i| (0..64 * 64).map(|k| ((k / 7 + i) % 5) as u8).collect())
        .collect();
    let lp = [labels[0].as_ptr(), labels[1].as_ptr()];
    let batch = CsraTrainBatch {
        images: images.as_ptr(),
        labels: lp.as_ptr(),
        count: 2,
    };
    let t = new_trainer(&m);
    let (ck_a, ck_b) = (dir.join("a.ckpt"), dir.join("b.ckpt"));
    let target = dir.join("run.ckpt");
    let mut one_save = Duration::ZERO;
    for ck in [&ck_a, &ck_b] {
        let mut r = CsraStepReport::default();
        ok(
            unsafe { csra_trainer_step(t.0, &batch, std::ptr::null(), &mut r) },
            "step",
        );
        let c = cpath(ck);
        let t0 = Instant::now();
        ok(
            unsafe { csra_trainer_save_checkpoint(t.0, std::ptr::null(), c.as_ptr()) },
            "checkpoint",
        );
        one_save = t0.elapsed();
    }
    std::fs::copy(&ck_a, &target).unwrap();
    drop(t);
    let ta = tensors_of(&std::fs::read(&ck_a).unwrap()).unwrap();
    let tb = tensors_of(&std::fs::read(&ck_b).unwrap()).unwrap();
    assert_ne!(ta, tb);

    let check = |rep: usize| -> String {
        let bytes = std::fs::read(&target).unwrap();
        let t = tensors_of(&bytes)
            .unwrap_or_else(|e| panic!("repetition {rep}: the checkpoint does not parse: {e}"));
        let which = if t == ta {
            "A"
        } else if t == tb {
            "B"
        } else {
            panic!("repetition {rep}: the checkpoint is neither A nor B")
        };
        drop(trainer_from(&w, &target));
        which.to_string()
    };
    let job = [
        "save-checkpoint",
        target.to_str().unwrap(),
        w.to_str().unwrap(),
        ck_a.to_str().unwrap(),
        ck_b.to_str().unwrap(),
    ];
    let (mid, _) = kill_loop(
        "sigkill_during_checkpoint_save",
        20,
        &job,
        &target,
        one_save * 5 / 2,
        &check,
    );
    eprintln!(
        "one checkpoint ({} bytes) took {one_save:?}",
        std::fs::metadata(&ck_a).unwrap().len()
    );
    assert!(mid > 0, "no kill landed mid-write: the test proved nothing");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn save_errors_are_reported_and_keep_the_old_file() {
    let dir = scratch("save-errors");
    let a = dir.join("a.safetensors");
    let m = create(&tiny_config(1));
    save(&m, &a);
    let old_w = dir.join("old.safetensors");
    save(&create(&tiny_config(2)), &old_w);
    let t = new_trainer(&m);
    let old_c = dir.join("old.ckpt");
    let c = cpath(&old_c);
    ok(
        unsafe { csra_trainer_save_checkpoint(t.0, std::ptr::null(), c.as_ptr()) },
        "checkpoint",
    );
    let before_w = std::fs::read(&old_w).unwrap();
    let before_c = std::fs::read(&old_c).unwrap();

    // A full disk, as a file-size limit in a child: the write fails.
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_process_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            CHILD_ENV,
            ["fsize", dir.to_str().unwrap(), a.to_str().unwrap()].join("\n"),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cases = 0;
    for what in ["weights", "checkpoint"] {
        let line = stdout
            .lines()
            .find_map(|l| l.find(&format!("{what} ")).map(|i| &l[i..]))
            .unwrap_or_else(|| panic!("no `{what}` line in {stdout}"));
        assert!(
            line.starts_with(&format!("{what} 3 ")) && line.contains("File too large"),
            "{line}"
        );
        eprintln!("file-size limit, {line}");
        cases += 1;
    }
    assert_eq!(
        std::fs::read(&old_w).unwrap(),
        before_w,
        "weights file changed"
    );
    assert_eq!(
        std::fs::read(&old_c).unwrap(),
        before_c,
        "checkpoint changed"
    );
    assert!(temp_files(&old_w).is_empty() && temp_files(&old_c).is_empty());

    // Paths that cannot be written, even by root.
    let file = dir.join("regular-file");
    std::fs::write(&file, b"x").unwrap();
    let as_dir = dir.join("a-directory");
    std::fs::create_dir(&as_dir).unwrap();
    let bad: [(PathBuf, &str); 3] = [
        (file.join("w.safetensors"), "Not a directory"),
        (as_dir.clone(), "directory"),
        (PathBuf::from("/proc/csranet-reliability.bin"), "/proc"),
    ];
    for (p, needle) in &bad {
        let c = cpath(p);
        let st = unsafe { csra_model_save_safetensors(m.0, c.as_ptr()) };
        let msg = last_error();
        assert_eq!(st, CSRA_IO_ERROR, "save to {}: {msg}", p.display());
        assert!(msg.contains(needle) && msg.contains("cannot"), "{msg}");
        eprintln!("save to {}: {msg}", p.display());
        let st = unsafe { csra_trainer_save_checkpoint(t.0, std::ptr::null(), c.as_ptr()) };
        let msg = last_error();
        assert_eq!(st, CSRA_IO_ERROR, "checkpoint to {}: {msg}", p.display());
        assert!(msg.contains(needle), "{msg}");
        cases += 2;
    }
    assert!(as_dir.is_dir() && std::fs::read_dir(&as_dir).unwrap().next().is_none());
    assert!(temp_files(&as_dir).is_empty(), "a temporary file was left");
    if unsafe { libc::geteuid() } != 0 {
        use std::os::unix::fs::PermissionsExt;
        let ro = dir.join("read-only");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o500)).unwrap();
        let c = cpath(&ro.join("w.safetensors"));
        let st = unsafe { csra_model_save_safetensors(m.0, c.as_ptr()) };
        assert_eq!(st, CSRA_IO_ERROR, "{}", last_error());
        assert!(
            last_error().contains("Permission denied"),
            "{}",
            last_error()
        );
        cases += 1;
    } else {
        eprintln!("running as root: a read-only directory does not stop root, not tried");
    }
    eprintln!("save errors: {cases} cases, each CSRA_IO_ERROR with the reason, old files intact");
}

/// One tensor of a safetensors file: name, dtype, shape, raw data.
type Entry = (String, safetensors::Dtype, Vec<usize>, Vec<u8>);

// ---- bad weights ------------------------------------------------------------------------------

/// A safetensors file from (name, dtype, shape, data) entries and metadata.
fn build(entries: &[Entry], meta: &BTreeMap<String, String>) -> Vec<u8> {
    let views: Vec<(String, safetensors::tensor::TensorView)> = entries
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let meta: std::collections::HashMap<String, String> = meta.clone().into_iter().collect();
    safetensors::tensor::serialize(views, Some(meta)).unwrap()
}

/// A file with its JSON header replaced (no checks: for broken headers).
fn with_header(header: &str, data: &[u8]) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(data);
    v
}

#[test]
fn bad_weights_are_refused_whole() {
    use safetensors::Dtype;
    let dir = scratch("bad-weights");
    let a = dir.join("a.safetensors");
    save(&create(&tiny_config(1)), &a);
    let valid = std::fs::read(&a).unwrap();
    let hl = u64::from_le_bytes(valid[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&valid[8..8 + hl]).unwrap();
    let data = &valid[8 + hl..];
    let (tensors, meta) = tensors_of(&valid).unwrap();
    let st = safetensors::SafeTensors::deserialize(&valid).unwrap();
    let entries: Vec<Entry> = tensors
        .iter()
        .map(|(n, d)| {
            let v = st.tensor(n).unwrap();
            (n.clone(), v.dtype(), v.shape().to_vec(), d.clone())
        })
        .collect();
    // A 4-d convolution weight with two different leading dims, to transpose.
    let conv = entries
        .iter()
        .position(|(_, _, s, _)| s.len() == 4 && s[0] != s[1])
        .unwrap();
    let first = header
        .keys()
        .find(|k| *k != "__metadata__")
        .unwrap()
        .clone();

    let mut cases: Vec<(String, Vec<u8>, &str)> = Vec::new();
    let mut case =
        |name: String, bytes: Vec<u8>, needle: &'static str| cases.push((name, bytes, needle));

    // Truncated anywhere, and around the header's edges.
    let mut cuts: Vec<usize> = (0..64).map(|i| valid.len() * i / 64).collect();
    cuts.extend([1, 7, 8, 9, 8 + hl - 1, 8 + hl, 8 + hl + 1, valid.len() - 1]);
    for c in cuts {
        case(
            format!("truncated to {c} bytes"),
            valid[..c].to_vec(),
            "safetensors",
        );
    }
    // Garbage, raw and behind a plausible header length.
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    for i in 0..32 {
        let n = rng.random_range(0..4096);
        let mut g: Vec<u8> = (0..n).map(|_| rng.random()).collect();
        if i % 2 == 1 && g.len() >= 8 {
            let claimed = (g.len() as u64 - 8) / 2;
            g[..8].copy_from_slice(&claimed.to_le_bytes());
        }
        case(format!("{n} random bytes"), g, "safetensors");
    }
    // Absurd header lengths.
    for (what, v) in [
        ("u64::MAX", u64::MAX),
        ("file length", valid.len() as u64),
        ("zero", 0),
        ("2^40", 1 << 40),
    ] {
        let mut b = valid.clone();
        b[..8].copy_from_slice(&v.to_le_bytes());
        case(format!("header length {what}"), b, "safetensors");
    }
    // Headers that are not JSON objects of tensors.
    for (what, h) in [
        ("a JSON array", "[]".to_string()),
        ("cut JSON", "{\"a\":".to_string()),
        ("empty object + data", "{}".to_string()),
    ] {
        case(
            format!("header {what}"),
            with_header(&h, data),
            "safetensors",
        );
    }
    let mut b = with_header("{}", data);
    b[8] = 0xff;
    case("header not UTF-8".into(), b, "safetensors");
    // Absurd shapes and offsets in an otherwise valid header.
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let set = |key: &'static str, v: serde_json::Value| -> Edit {
        Box::new(move |t: &mut serde_json::Value| t[key] = v.clone())
    };
    let big = 1u64 << 62;
    let edits: Vec<(&str, Edit)> = vec![
        (
            "shape [2^40, 2^40]",
            set("shape", serde_json::json!([1u64 << 40, 1u64 << 40])),
        ),
        (
            "shape [2^62, 2^62, 2^62]",
            set("shape", serde_json::json!([big, big, big])),
        ),
        ("shape []", set("shape", serde_json::json!([]))),
        ("shape [0]", set("shape", serde_json::json!([0]))),
        (
            "offsets [0, 2^62]",
            set("data_offsets", serde_json::json!([0, big])),
        ),
        (
            "offsets past the end",
            set("data_offsets", serde_json::json!([u64::MAX - 4, u64::MAX])),
        ),
        (
            "offsets negative",
            set("data_offsets", serde_json::json!([-4, 0])),
        ),
        (
            "offsets reversed",
            Box::new(|t: &mut serde_json::Value| {
                let o = t["data_offsets"].clone();
                t["data_offsets"] = serde_json::json!([o[1], o[0]]);
            }),
        ),
        ("dtype unknown", set("dtype", serde_json::json!("F128"))),
        ("dtype I32", set("dtype", serde_json::json!("I32"))),
        ("dtype U32", set("dtype", serde_json::json!("U32"))),
        ("dtype U8", set("dtype", serde_json::json!("U8"))),
        ("dtype BOOL", set("dtype", serde_json::json!("BOOL"))),
        (
            "no dtype",
            Box::new(|t: &mut serde_json::Value| {
                t.as_object_mut().unwrap().remove("dtype");
            }),
        ),
        (
            "a string",
            Box::new(|t: &mut serde_json::Value| *t = serde_json::json!("tensor")),
        ),
    ];
    for (what, f) in &edits {
        let mut h = header.clone();
        f(h.get_mut(&first).unwrap());
        let bytes = with_header(&serde_json::to_string(&h).unwrap(), data);
        let needle = if what.starts_with("dtype I32") || what.starts_with("dtype U32") {
            "dtype"
        } else {
            ""
        };
        case(format!("first tensor: {what}"), bytes, needle);
    }
    // Well-formed files that do not fit this model.
    let rebuilt = |f: &dyn Fn(&mut Vec<Entry>)| {
        let mut e = entries.clone();
        f(&mut e);
        build(&e, &meta)
    };
    case(
        "a tensor missing".into(),
        rebuilt(&|e| {
            e.remove(3);
        }),
        "lacks tensor",
    );
    case(
        "an extra tensor".into(),
        rebuilt(&|e| {
            e.push((
                "backbone.extra.weight".into(),
                Dtype::F32,
                vec![2],
                vec![0; 8],
            ))
        }),
        "backbone.extra.weight",
    );
    case(
        "a tensor renamed".into(),
        rebuilt(&|e| e[5].0.push_str("_renamed")),
        "lacks tensor",
    );
    case(
        "a convolution transposed".into(),
        rebuilt(&|e| e[conv].2.swap(0, 1)),
        "has shape",
    );
    case(
        "a tensor as I32".into(),
        rebuilt(&|e| e[conv].1 = Dtype::I32),
        "dtype",
    );
    case(
        "a tensor as I64 (two floats per value)".into(),
        rebuilt(&|e| {
            e[conv].1 = Dtype::I64;
            let n = e[conv].2.iter().product::<usize>();
            e[conv].3 = vec![1; n * 8];
        }),
        "dtype",
    );
    for (what, bits) in [
        ("NaN", f32::NAN),
        ("+inf", f32::INFINITY),
        ("-inf", f32::NEG_INFINITY),
    ] {
        case(
            format!("a {what} value"),
            rebuilt(&|e| e[conv].3[4..8].copy_from_slice(&bits.to_le_bytes())),
            "NaN or infinite",
        );
    }
    // Other architectures.
    for (what, c) in [
        (
            "lite (ResNet-18 at half width, 5 classes)",
            model_config("lite", |c| c.seed = 3),
        ),
        ("6 classes", {
            let mut c = tiny_config(3);
            c.num_classes = 6;
            c
        }),
        ("ResNet-34", {
            let mut c = tiny_config(3);
            c.depth = 34;
            c
        }),
        ("no RAA", {
            let mut c = tiny_config(3);
            c.raa = 0;
            c
        }),
        ("width 1/8", {
            let mut c = tiny_config(3);
            c.width = 0.125;
            c
        }),
    ] {
        let p = dir.join("other.safetensors");
        save(&create(&c), &p);
        case(
            format!("weights of {what}"),
            std::fs::read(&p).unwrap(),
            "tensor",
        );
    }

    // Each must be refused whole, from a buffer and from a file, and by create.
    let model = load_file(&a);
    let (rgb, fw, _) = fixture_rgb();
    let img = window(&rgb, fw, 0, 0, 64, 64);
    let reference = segment_tile(&model, &img);
    let file = dir.join("case.safetensors");
    let fc = cpath(&file);
    for (name, bytes, needle) in &cases {
        let st =
            unsafe { csra_model_load_safetensors_buffer(model.0, bytes.as_ptr(), bytes.len()) };
        let msg = last_error();
        assert_eq!(st, CSRA_BAD_WEIGHTS, "{name}: {msg}");
        assert!(
            msg.contains(needle) && !msg.contains('\n'),
            "{name}: message {msg:?} lacks {needle:?}"
        );
        std::fs::write(&file, bytes).unwrap();
        let st = unsafe { csra_model_load_safetensors(model.0, fc.as_ptr()) };
        assert_eq!(st, CSRA_BAD_WEIGHTS, "{name} (file): {}", last_error());
        assert!(
            last_error().contains("case.safetensors"),
            "{}",
            last_error()
        );
        let mut m = std::ptr::null_mut();
        let st = unsafe {
            csra_model_create_from_safetensors_buffer(bytes.as_ptr(), bytes.len(), &mut m)
        };
        if st == CSRA_OK {
            // Another architecture carries its own configuration: a model of its own.
            assert!(name.starts_with("weights of"), "{name}: created a model");
            unsafe { csra_model_free(m) };
        } else {
            assert_eq!(st, CSRA_BAD_WEIGHTS, "{name} (create): {}", last_error());
            assert!(m.is_null());
        }
        eprintln!("refused: {name}: {msg}");
    }
    assert_eq!(
        segment_tile(&model, &img),
        reference,
        "failed loads changed the model"
    );

    // Bad configuration metadata: refused by create (loading ignores metadata).
    let mut meta_cases = 0;
    for (what, cfg) in [
        ("not JSON", "{depth".to_string()),
        (
            "depth 19",
            serde_json::to_string(&csranet::Config {
                depth: 19,
                ..harness::tiny_config()
            })
            .unwrap(),
        ),
        (
            "width 1e9",
            serde_json::to_string(&csranet::Config {
                width: 1e9,
                ..harness::tiny_config()
            })
            .unwrap(),
        ),
        ("a number", "7".to_string()),
    ] {
        let mut mt = meta.clone();
        mt.insert("csranet.config".into(), cfg);
        let b = build(&entries, &mt);
        let mut m = std::ptr::null_mut();
        let st = unsafe { csra_model_create_from_safetensors_buffer(b.as_ptr(), b.len(), &mut m) };
        assert_eq!(st, CSRA_BAD_WEIGHTS, "metadata {what}: {}", last_error());
        eprintln!("refused: metadata {what}: {}", last_error());
        meta_cases += 1;
    }
    // A few hundred bytes whose metadata claims a huge network: refused before any model
    // is built (it used to allocate ~4 GB and take ~40 s for ResNet-101 at width 4).
    for (depth, width) in [(50usize, 1.0f64), (101, 4.0)] {
        let cfg = csranet::Config {
            depth,
            width,
            ..csranet::Config::paper()
        };
        let mut mt = BTreeMap::new();
        mt.insert(
            "csranet.config".to_string(),
            serde_json::to_string(&cfg).unwrap(),
        );
        let b = build(&entries[..1], &mt);
        let t0 = Instant::now();
        let mut m = std::ptr::null_mut();
        let st = unsafe { csra_model_create_from_safetensors_buffer(b.as_ptr(), b.len(), &mut m) };
        let secs = t0.elapsed().as_secs_f64();
        let msg = last_error();
        assert_eq!(st, CSRA_BAD_WEIGHTS, "{msg}");
        assert!(msg.contains("backbone.layer4.0.conv2.weight"), "{msg}");
        assert!(
            secs < 2.0,
            "refusing a {}-byte file took {secs:.1} s",
            b.len()
        );
        eprintln!(
            "refused: {} bytes claiming ResNet-{depth} at width {width}, in {:.3} s: {msg}",
            b.len(),
            secs
        );
        meta_cases += 1;
    }
    // Accepted variants: f16 data, torchvision's extra tensors.
    let half = {
        let mut e = entries.clone();
        for t in e.iter_mut() {
            t.1 = Dtype::F16;
            t.3 =
                t.3.chunks(4)
                    .flat_map(|c| {
                        half::f16::from_f32(f32::from_le_bytes(c.try_into().unwrap())).to_le_bytes()
                    })
                    .collect();
        }
        e.push((
            "backbone.bn1.num_batches_tracked".into(),
            Dtype::I64,
            vec![],
            vec![0; 8],
        ));
        e.push((
            "aux_classifier.0.weight".into(),
            Dtype::F32,
            vec![1],
            vec![0; 4],
        ));
        build(&e, &meta)
    };
    ok(
        unsafe { csra_model_load_safetensors_buffer(model.0, half.as_ptr(), half.len()) },
        "f16 + torchvision extras",
    );
    ok(
        unsafe { csra_model_load_safetensors_buffer(model.0, valid.as_ptr(), valid.len()) },
        "back to A",
    );
    assert_eq!(segment_tile(&model, &img), reference);
    eprintln!(
        "bad weights: {} malformed or mismatched inputs refused from buffer and file, {meta_cases} \
         bad metadata refused by create, the model unchanged after all of them",
        cases.len()
    );
}

// ---- hostile images, non-finite computations ---------------------------------------------------

#[test]
fn hostile_images_are_refused() {
    let model = create(&tiny_config(1));
    let sides: [u32; 9] = [0, 1, 31, 32, 2048, 2049, 1 << 20, (1 << 20) + 1, u32::MAX];
    let formats: [u32; 6] = [0, 1, 2, 3, 4, u32::MAX];
    let mut o: CsraSegmentOptions = unsafe { std::mem::zeroed() };
    ok(unsafe { csra_segment_options_default(&mut o) }, "options");
    o.tile_size = 256;
    o.overlap = 16;
    o.keep_probabilities = 0;
    let (mut calls, mut refused, mut segmented) = (0usize, 0usize, 0usize);
    let started = Instant::now();
    for &w in &sides {
        for &h in &sides {
            for &format in &formats {
                let bpp = if format == 1 || format == 3 { 4 } else { 3 };
                let row = w as usize * bpp;
                for stride in [
                    row.wrapping_sub(1),
                    row,
                    row + 5,
                    0,
                    usize::MAX / 2,
                    usize::MAX,
                ] {
                    let need = stride
                        .checked_mul((h as usize).saturating_sub(1))
                        .and_then(|v| v.checked_add(row));
                    // The caller's real buffer: what is needed (when that is small), or 4 KiB.
                    let (real, fits) = match need {
                        Some(n) if n <= 8 << 20 => (n, true),
                        _ => (4096, false),
                    };
                    for len in [0, real.saturating_sub(1), real] {
                        let buf = vec![77u8; len];
                        let img = CsraImage {
                            data: buf.as_ptr(),
                            len,
                            width: w,
                            height: h,
                            stride,
                            format,
                        };
                        let valid_view = (32..=1 << 20).contains(&w)
                            && (32..=1 << 20).contains(&h)
                            && format <= 3
                            && stride >= row
                            && fits
                            && len == real
                            && len > 0;
                        for tiled in [false, true] {
                            let valid = valid_view && (tiled || (w <= 2048 && h <= 2048));
                            let sentinel =
                                std::ptr::NonNull::<CsraSegmentation>::dangling().as_ptr();
                            let mut seg = sentinel;
                            let st = unsafe {
                                if tiled {
                                    csra_segment_image(
                                        model.0,
                                        &img,
                                        &o,
                                        None,
                                        std::ptr::null_mut(),
                                        &mut seg,
                                    )
                                } else {
                                    csra_segment_tile(model.0, &img, &o, &mut seg)
                                }
                            };
                            calls += 1;
                            let what = format!(
                                "{w}x{h} format {format} stride {stride} len {len} ({})",
                                if tiled {
                                    "segment_image"
                                } else {
                                    "segment_tile"
                                }
                            );
                            if valid {
                                ok(st, &what);
                                let (mut sw, mut sh) = (0, 0);
                                ok(
                                    unsafe {
                                        csra_segmentation_size(
                                            seg,
                                            &mut sw,
                                            &mut sh,
                                            std::ptr::null_mut(),
                                        )
                                    },
                                    "size",
                                );
                                assert_eq!((sw, sh), (w, h));
                                unsafe { csra_segmentation_free(seg) };
                                segmented += 1;
                            } else {
                                let msg = last_error();
                                assert_eq!(st, CSRA_INVALID_ARGUMENT, "{what}: {msg}");
                                assert!(seg == sentinel, "{what}: output written");
                                assert!(!msg.is_empty() && !msg.contains('\n'));
                                refused += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "hostile images: {calls} calls ({} sizes x {} formats x 6 strides x 3 lengths x 2 \
         functions): {refused} refused with CSRA_INVALID_ARGUMENT, {segmented} valid ones \
         segmented, in {:.1} s",
        sides.len() * sides.len(),
        formats.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn non_finite_computations_are_reported() {
    let dir = scratch("non-finite");
    let model = create(&tiny_config(1));
    let (rgb, fw, _) = fixture_rgb();
    let img = window(&rgb, fw, 0, 0, 64, 64);
    let mut cases = 0;
    // Normalisations that overflow f32 for some pixel values: refused up front.
    for (what, mean, std) in [
        ("std 1e-40 (subnormal)", 0.5f32, 1e-40f32),
        ("mean 3e38, std 1e-3", 3e38, 1e-3),
        ("mean -3e38, std 0.5", -3e38, 0.5),
        ("std f32::MIN_POSITIVE", 0.5, f32::MIN_POSITIVE),
    ] {
        let mut o: CsraSegmentOptions = unsafe { std::mem::zeroed() };
        ok(unsafe { csra_segment_options_default(&mut o) }, "options");
        o.mean = [mean; 3];
        o.std = [std; 3];
        let mut seg = std::ptr::null_mut();
        let st = unsafe { csra_segment_tile(model.0, &img, &o, &mut seg) };
        let msg = last_error();
        eprintln!("normalisation {what}: {st:?} {msg}");
        if st == CSRA_OK {
            // Finite inputs (up to 4e37 here): a result is fine if it is finite.
            let (mut p, mut n) = (std::ptr::null(), 0);
            ok(
                unsafe { csra_segmentation_probabilities(seg, &mut p, &mut n) },
                "probs",
            );
            let p = unsafe { std::slice::from_raw_parts(p, n) };
            assert!(p.iter().all(|v| v.is_finite()), "{what}: non-finite result");
            unsafe { csra_segmentation_free(seg) };
        } else {
            assert!(
                st == CSRA_INVALID_ARGUMENT || st == CSRA_NUMERIC_ERROR,
                "normalisation {what}: {st:?} {msg}"
            );
            assert!(seg.is_null() && !msg.is_empty());
        }
        cases += 1;
    }
    // Finite but huge weights: the last convolution's weights at +-f32::MAX (alternating
    // signs) turn any feature into +-inf logits, and softmax into NaN.
    let p = dir.join("w.safetensors");
    save(&model, &p);
    let bytes = std::fs::read(&p).unwrap();
    let (t, meta) = tensors_of(&bytes).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let entries: Vec<_> = t
        .iter()
        .map(|(n, d)| {
            let v = st.tensor(n).unwrap();
            let data = if n == "classifier.4.weight" {
                (0..d.len() / 4)
                    .flat_map(|i| if i % 2 == 0 { f32::MAX } else { -f32::MAX }.to_le_bytes())
                    .collect()
            } else {
                d.clone()
            };
            (n.clone(), v.dtype(), v.shape().to_vec(), data)
        })
        .collect();
    assert!(t.contains_key("classifier.4.weight"));
    let huge = build(&entries, &meta);
    ok(
        unsafe { csra_model_load_safetensors_buffer(model.0, huge.as_ptr(), huge.len()) },
        "huge weights load (finite)",
    );
    for tiled in [false, true] {
        let mut seg = std::ptr::null_mut();
        let st = unsafe {
            if tiled {
                csra_segment_image(
                    model.0,
                    &img,
                    std::ptr::null(),
                    None,
                    std::ptr::null_mut(),
                    &mut seg,
                )
            } else {
                csra_segment_tile(model.0, &img, std::ptr::null(), &mut seg)
            }
        };
        let msg = last_error();
        eprintln!(
            "last layer at +-f32::MAX ({}): {st:?} {msg}",
            if tiled { "image" } else { "tile" }
        );
        assert_eq!(st, CSRA_NUMERIC_ERROR, "{msg}");
        assert!(seg.is_null() && msg.contains("non-finite"));
        cases += 1;
    }
    eprintln!("non-finite: {cases} cases reported as errors");
}

// ---- fuzz inputs ------------------------------------------------------------------------------

fn fuzz_dir(kind: &str, target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target)
}

/// Runs every input under `fuzz/<kind>/<target>/` through its harness; panics naming all
/// the inputs that broke the contract.
fn replay(kind: &str) -> usize {
    let mut n = 0;
    let mut failed = Vec::new();
    for (target, run) in [
        ("weights", harness::weights_input as fn(&[u8])),
        ("segment", harness::segment_input),
    ] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir(kind, target)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files
            .iter()
            .filter(|f| f.is_file() && f.extension().is_none_or(|e| e != "md"))
        {
            let data = std::fs::read(f).unwrap();
            let r = std::panic::catch_unwind(|| run(&data));
            eprintln!(
                "{kind}/{target}/{}: {}",
                f.file_name().unwrap().to_string_lossy(),
                if r.is_ok() { "ok" } else { "FAILED" }
            );
            if r.is_err() {
                failed.push(f.display().to_string());
            }
            n += 1;
        }
    }
    assert!(
        failed.is_empty(),
        "inputs that break the contract: {failed:?}"
    );
    n
}

/// Inputs that once broke the contract (`fuzz/regressions/<target>/`, see its README.md),
/// through the same harness the fuzzer runs.
#[test]
fn fuzz_regressions_replay() {
    let n = replay("regressions");
    eprintln!("{n} regression inputs replayed");
}

/// The fuzzers' seed inputs (`fuzz/seeds/<target>/`); `CSRANET_WRITE_FUZZ_SEEDS=1`
/// rewrites them from `harness::seed_inputs`.
#[test]
fn fuzz_seeds_replay() {
    if std::env::var_os("CSRANET_WRITE_FUZZ_SEEDS").is_some_and(|v| v == "1") {
        for target in ["weights", "segment"] {
            let d = fuzz_dir("seeds", target);
            std::fs::create_dir_all(&d).unwrap();
            for (name, bytes) in harness::seed_inputs(target) {
                std::fs::write(d.join(name), bytes).unwrap();
            }
        }
    }
    let n = replay("seeds");
    assert!(n >= 7, "only {n} seed inputs");
}
