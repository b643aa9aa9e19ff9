//! The comparison harness behind the README's Performance tables: forward-pass, large-image
//! and training-step timings of untrained models, optionally side by side with PyTorch
//! (`--torch PYTHON`, `tools/bench/torch_bench.py`), with each row's peak memory.
//!
//!     cargo bench --bench compare -- [OPTIONS]      (`-- --help` lists them)
//!
//! Every row runs in a child process (this executable with `--one ...`, or the PyTorch
//! script), so that its peak resident memory (VmHWM, which is process-wide) is its own. With
//! `--torch` each candle row is followed at once by the same PyTorch row, so both see the same
//! machine load. Run without any argument (as `cargo test --benches` does), it times one tiny
//! forward row in-process, which checks the harness. `tools/bench/build.sh` prints the path of
//! the built executable for running it directly (profilers, the device scripts).

use candle_core::{DType, Device, Tensor};
use clap::Parser;
use csranet::data::synthetic::he_image;
use csranet::infer::{segment_image, ImageView, PixelFormat, SegmentOptions};
use csranet::train::trainer::{Method, TrainConfig, TrainTile, Trainer};
use csranet::{Config, CsraNet};
use serde_json::{json, Value};
use std::fmt::Display;
use std::process::{Command, ExitCode};
use std::time::Instant;

/// Seed of the untrained models (the same models in every row and run).
const SEED: u64 = 42;

/// A failed row or bad option: a message.
type Result<T> = std::result::Result<T, String>;

/// `what: error` messages.
trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| format!("{}: {e}", what()))
    }
}

/// Time forward passes, tiled segmentation of a large image and training steps of untrained
/// models; prints a table (median times, throughput, peak memory), side by side with PyTorch
/// when `--torch` names a Python that has torch and torchvision.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "compare",
    bin_name = "cargo bench --bench compare --",
    version,
    after_help = "\
Rows: `forward` (eval mode, batches of --batch random tiles of --size px), `image` \
(csra_segment_image's Rust function on a synthetic --image-size square image, tiles of 512 px, \
overlap 64, batches of 2, instance post-processing included), `train-sup` (one supervised \
Trainer step on --train-batch labelled tiles) and `train-swc` (one CSRA-Net step: \
--train-batch labelled + --train-batch unlabelled tiles, weak pseudo-label forward and one \
training forward of all four SWC views). Each row runs in its own child process, so its peak \
RSS (VmHWM from /proc/self/status) is its own; on a GPU the memory column is the process's \
peak nvidia-smi figure. `--torch PYTHON` runs tools/bench/torch_bench.py after every row \
(torchvision DeepLabV3, same architecture; RAA has no PyTorch counterpart, so use --raa off \
for a like-for-like table) and prints the ratios candle/PyTorch. --threads sets \
RAYON_NUM_THREADS for candle's children and torch.set_num_threads (plus \
OMP_NUM_THREADS/MKL_NUM_THREADS) for PyTorch's.

Examples:
  cargo bench --bench compare
  cargo bench --bench compare -- --presets lite --batch 1,4,16 --iters 10 --json
  cargo bench --bench compare -- --rows image --image-presets lite,paper --image-size 1024,2048,4096
  cargo bench --bench compare -- --torch .venv/bin/python --raa off --threads 2 --rows forward,image,train-swc
  tools/bench/compare.sh            (the README table)"
)]
pub struct CompareArgs {
    /// Presets to time, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "lite,paper", value_parser = ["lite", "paper"])]
    pub presets: Vec<String>,
    /// Rows to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "forward,image",
          value_parser = ["forward", "image", "train-sup", "train-swc"])]
    pub rows: Vec<String>,
    /// Region-adaptive attention on or off (off = plain DeepLabv3, comparable with PyTorch).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub raa: String,
    /// Tile side (px) of the forward passes and training steps.
    #[arg(long, value_name = "PX", default_value_t = 256)]
    pub size: usize,
    /// Batch sizes of the forward rows, comma-separated (default: 1,8).
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    pub batch: Option<Vec<usize>>,
    /// Labelled tiles per training step (and as many unlabelled for train-swc).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub train_batch: usize,
    /// Timed passes (or steps) per row; the median is reported.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub iters: usize,
    /// Untimed warm-up passes per row.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub warmup: usize,
    /// Sides of the synthetic images of the image rows, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "PX,...",
        default_value = "2048"
    )]
    pub image_size: Vec<usize>,
    /// Presets of the image rows, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "lite", value_parser = ["lite", "paper"])]
    pub image_presets: Vec<String>,
    /// Threads for both sides (0: each library's default).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// Python interpreter with torch + torchvision: adds PyTorch's row after each row.
    #[arg(long, value_name = "PYTHON")]
    pub torch: Option<String>,
    /// The PyTorch side's script.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "tools/bench/torch_bench.py"
    )]
    pub torch_script: String,
    /// Device: cpu, or cuda (needs a build with --features cuda).
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "cuda"])]
    pub device: String,
    /// Float type of the forward rows (f16/bf16 also report their logit error against f32).
    #[arg(long, default_value = "f32", value_parser = ["f32", "f16", "bf16"])]
    pub dtype: String,
    /// Also print all rows as one JSON line, the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Run every candle row in this process (peak RSS is then cumulative).
    #[arg(long)]
    pub in_process: bool,
    /// Internal: run one row and print it as JSON.
    #[arg(long, hide = true, value_parser = ["forward", "image", "train-sup", "train-swc"])]
    pub one: Option<String>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    pub bench: bool,
}

/// Peak resident set size of this process in MiB (Linux), from `VmHWM`.
pub fn peak_rss_mib() -> Option<f64> {
    status_mib("VmHWM:")
}

fn status_mib(key: &str) -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// GPU memory this process holds now (MiB), from `nvidia-smi`; `None` without it.
fn gpu_used_now() -> Option<f64> {
    let out = Command::new("nvidia-smi")
        .args([
            "--query-compute-apps=pid,used_memory",
            "--format=csv,noheader,nounits",
        ])
        .output()
        .ok()?;
    let me = std::process::id().to_string();
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let mut it = l.split(',').map(str::trim);
        (it.next()? == me).then(|| it.next()?.parse().ok())?
    })
}

/// Peak GPU memory of this process, polled from `nvidia-smi` every 100 ms while a row runs
/// (the CUDA context included; torch_bench.py measures its side the same way).
struct GpuPeak {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<Option<f64>>>,
}

impl GpuPeak {
    fn start(dev: &Device) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handle = (!dev.is_cpu()).then(|| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut peak: Option<f64> = None;
                loop {
                    if let Some(v) = gpu_used_now() {
                        peak = Some(peak.map_or(v, |p| p.max(v)));
                    }
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return peak;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            })
        });
        Self { stop, handle }
    }

    fn finish(self) -> Option<f64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle?.join().ok()?
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        _ => Device::new_cuda(0).context(|| "--device cuda (a build with --features cuda)".into()),
    }
}

fn dtype(name: &str) -> DType {
    match name {
        "f16" => DType::F16,
        "bf16" => DType::BF16,
        _ => DType::F32,
    }
}

fn model(preset: &str, raa: bool, dev: &Device) -> Result<CsraNet> {
    let mut cfg = Config::preset(preset).context(|| "preset".into())?;
    cfg.raa = raa;
    CsraNet::new(&cfg, dev, SEED).context(|| "cannot build the model".into())
}

/// Times `iters` calls of `f` after `warmup` calls; milliseconds.
fn time_ms(iters: usize, warmup: usize, mut f: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    for _ in 0..warmup {
        f()?;
    }
    (0..iters.max(1))
        .map(|_| {
            let t0 = Instant::now();
            f()?;
            Ok(t0.elapsed().as_secs_f64() * 1e3)
        })
        .collect()
}

/// Fields every row carries: which implementation, where, and its memory.
fn finish(mut v: Value, a: &CompareArgs, preset: &str, gpu: GpuPeak, base: Option<f64>) -> Value {
    let extra = json!({
        "impl": "candle",
        "preset": preset,
        "raa": a.raa == "on",
        "device": a.device,
        "threads": candle_core::utils::get_num_threads(),
        "base_rss_mib": base,
        "peak_rss_mib": peak_rss_mib(),
        "gpu_peak_mib": gpu.finish(),
    });
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    v
}

/// Times forward passes of a batch of `batch` random `size x size` tiles.
fn forward_row(a: &CompareArgs, preset: &str, batch: usize) -> Result<Value> {
    let dev = device(&a.device)?;
    let gpu = GpuPeak::start(&dev);
    let m = model(preset, a.raa == "on", &dev)?;
    let base = status_mib("VmRSS:");
    let x32 =
        Tensor::randn(0f32, 1f32, (batch, 3, a.size, a.size), &dev).context(|| "input".into())?;
    let dt = dtype(&a.dtype);
    let x = x32.to_dtype(dt).context(|| "input dtype".into())?;
    // Accuracy of a reduced float type against f32, on this input.
    let accuracy = if dt != DType::F32 {
        let r = m.forward_t(&x32, false).context(|| "f32 forward".into())?;
        let y = m
            .forward_t(&x, false)
            .and_then(|y| y.to_dtype(DType::F32))
            .context(|| format!("{} forward", a.dtype))?;
        let diff = (&r - &y)
            .and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>())
            .context(|| "difference".into())?;
        let scale = r
            .abs()
            .and_then(|d| d.max_all()?.to_scalar::<f32>())
            .context(|| "scale".into())?;
        let agree = r
            .argmax(1)
            .and_then(|ra| {
                ra.eq(&y.argmax(1)?)?
                    .to_dtype(DType::F32)?
                    .mean_all()?
                    .to_scalar::<f32>()
            })
            .context(|| "argmax".into())?;
        json!({"max_abs_logit_diff": diff, "max_abs_logit": scale, "argmax_agreement": agree})
    } else {
        Value::Null
    };
    let mut ms = time_ms(a.iters, a.warmup, || {
        let y = m.forward_t(&x, false).context(|| "forward".into())?;
        // Make sure the result is materialised (and, on a GPU, finished).
        y.to_dtype(DType::F32)
            .and_then(|y| y.sum_all()?.to_scalar::<f32>())
            .context(|| "forward".into())?;
        Ok(())
    })?;
    let min = ms.iter().cloned().fold(f64::INFINITY, f64::min);
    let med = median(&mut ms);
    let v = json!({
        "kind": "forward",
        "size": a.size,
        "batch": batch,
        "dtype": a.dtype,
        "iters": ms.len(),
        "median_ms": med,
        "min_ms": min,
        "ms_per_tile": med / batch as f64,
        "tiles_per_s": batch as f64 * 1e3 / med,
        "accuracy": accuracy,
    });
    Ok(finish(v, a, preset, gpu, base))
}

/// Times `segment_image` (post-processing included) on a synthetic `size x size` image.
fn image_row(a: &CompareArgs, preset: &str, size: usize) -> Result<Value> {
    let dev = device(&a.device)?;
    let gpu = GpuPeak::start(&dev);
    let m = model(preset, a.raa == "on", &dev)?;
    let img = he_image(size, 7);
    let base = status_mib("VmRSS:");
    let view = ImageView::new(&img, size, size, size * 3, PixelFormat::Rgb8)
        .context(|| "synthetic image".into())?;
    let opts = SegmentOptions {
        keep_probabilities: false,
        ..SegmentOptions::default()
    };
    // Warm-up: one small tile.
    let small = ImageView::new(
        &img,
        256.min(size),
        256.min(size),
        size * 3,
        PixelFormat::Rgb8,
    )
    .context(|| "synthetic image".into())?;
    csranet::infer::segment_tile(&m, &small, &opts).context(|| "warm-up".into())?;
    let mut tiles = 0;
    let t0 = Instant::now();
    let seg = segment_image(&m, &view, &opts, &mut |_, total| {
        tiles = total;
        true
    })
    .context(|| "segment_image".into())?
    .ok_or("segment_image was cancelled")?;
    let secs = t0.elapsed().as_secs_f64();
    let mp = (size * size) as f64 / 1e6;
    let v = json!({
        "kind": "segment_image",
        "size": size,
        "tile_size": opts.tile_size,
        "overlap": opts.overlap,
        "batch": opts.batch_size,
        "tiles": tiles,
        "seconds": secs,
        "megapixels_per_s": mp / secs,
        "instances": seg.instances.len(),
    });
    Ok(finish(v, a, preset, gpu, base))
}

/// Times `Trainer::step` (supervised or CSRA-Net SWC) on synthetic tiles.
fn train_row(a: &CompareArgs, preset: &str, swc: bool) -> Result<Value> {
    let dev = device(&a.device)?;
    let gpu = GpuPeak::start(&dev);
    let m = model(preset, a.raa == "on", &dev)?;
    let s = a.size;
    let n = a.train_batch;
    let imgs: Vec<Vec<u8>> = (0..2 * n).map(|i| he_image(s, 100 + i as u64)).collect();
    // Labels: the synthetic nuclei are class 1 (their colour), the rest background.
    let labels: Vec<Vec<u8>> = imgs
        .iter()
        .map(|im| im.chunks_exact(3).map(|p| (p[0] < 120) as u8).collect())
        .collect();
    let views: Vec<ImageView> = imgs
        .iter()
        .map(|im| ImageView::new(im, s, s, s * 3, PixelFormat::Rgb8))
        .collect::<csranet::Result<_>>()
        .context(|| "synthetic tiles".into())?;
    let lab: Vec<TrainTile> = (0..n)
        .map(|i| TrainTile {
            image: views[i],
            label: Some(&labels[i]),
            instances: None,
        })
        .collect();
    let unl: Vec<TrainTile> = (n..2 * n)
        .map(|i| TrainTile {
            image: views[i],
            label: None,
            instances: None,
        })
        .collect();
    let mut cfg = TrainConfig {
        method: if swc {
            Method::Csra
        } else {
            Method::Supervised
        },
        seed: 3,
        ..Default::default()
    };
    cfg.weak.crop_width = s;
    cfg.weak.crop_height = s;
    cfg.optim.total_steps = 1000;
    let mut t = Trainer::new(cfg).context(|| "trainer".into())?;
    let base = status_mib("VmRSS:");
    let mut ms = time_ms(a.iters, a.warmup, || {
        t.step(&m, &lab, if swc { &unl } else { &[] })
            .map(|_| ())
            .context(|| "training step".into())
    })?;
    let min = ms.iter().cloned().fold(f64::INFINITY, f64::min);
    let med = median(&mut ms);
    let v = json!({
        "kind": if swc { "train-swc" } else { "train-sup" },
        "size": s,
        "batch": n,
        "iters": ms.len(),
        "median_ms": med,
        "min_ms": min,
        "seconds_per_step": med / 1e3,
    });
    Ok(finish(v, a, preset, gpu, base))
}

/// Runs one candle row in this process.
pub fn run_one(a: &CompareArgs, kind: &str, preset: &str, param: usize) -> Result<Value> {
    match kind {
        "forward" => forward_row(a, preset, param),
        "image" => image_row(a, preset, param),
        "train-sup" => train_row(a, preset, false),
        _ => train_row(a, preset, true),
    }
}

/// Parses the last stdout line of a child as JSON.
fn child_json(what: &str, out: std::process::Output) -> Result<Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.trim().lines().rev().take(5).collect();
        return Err(format!(
            "{what} failed ({}): {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ));
    }
    let last = stdout.lines().last().unwrap_or("");
    serde_json::from_str(last).context(|| format!("{what}: unreadable child output"))
}

fn thread_env(cmd: &mut Command, threads: usize) {
    if threads > 0 {
        let t = threads.to_string();
        for k in ["RAYON_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"] {
            cmd.env(k, &t);
        }
    }
}

/// The options both benchmark children (csranet's and the PyTorch script) take alike.
fn shared_args(a: &CompareArgs, batch: usize, image: usize) -> Vec<String> {
    [
        ("--size", a.size.to_string()),
        ("--batch", batch.to_string()),
        ("--iters", a.iters.to_string()),
        ("--warmup", a.warmup.to_string()),
        ("--image-size", image.to_string()),
        ("--device", a.device.clone()),
        ("--dtype", a.dtype.clone()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_string(), v])
    .collect()
}

/// Runs one candle row in a child process (or here with `--in-process`).
fn candle_row(a: &CompareArgs, kind: &str, preset: &str, param: usize) -> Result<Value> {
    if a.in_process {
        return run_one(a, kind, preset, param);
    }
    let exe = std::env::current_exe().context(|| "cannot find this executable".into())?;
    let mut cmd = Command::new(exe);
    let (batch, image) = if kind == "image" {
        (1, param)
    } else {
        (param, a.image_size.first().copied().unwrap_or(0))
    };
    cmd.args([
        "--one",
        kind,
        "--presets",
        preset,
        "--image-presets",
        preset,
        "--raa",
        &a.raa,
        "--train-batch",
        &a.train_batch.to_string(),
    ]);
    cmd.args(shared_args(a, batch, image));
    thread_env(&mut cmd, a.threads);
    let out = cmd
        .output()
        .context(|| "cannot run a benchmark child process".into())?;
    child_json(&format!("candle {kind} {preset} {param}"), out)
}

/// Runs the PyTorch script for the same row.
fn torch_row(a: &CompareArgs, py: &str, kind: &str, preset: &str, param: usize) -> Result<Value> {
    let mut cmd = Command::new(py);
    let (batch, image) = if kind == "image" {
        (1, param)
    } else {
        (param, 0)
    };
    cmd.args([
        a.torch_script.as_str(),
        "--one",
        kind,
        "--preset",
        preset,
        "--threads",
        &a.threads.to_string(),
    ]);
    let batch = if kind.starts_with("train") {
        a.train_batch
    } else {
        batch
    };
    cmd.args(shared_args(a, batch, image));
    thread_env(&mut cmd, a.threads);
    let out = cmd
        .output()
        .context(|| format!("cannot run {py} {}", a.torch_script))?;
    child_json(&format!("pytorch {kind} {preset} {param}"), out)
}

fn num(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(f64::NAN)
}

/// (time in its unit, unit, throughput, throughput unit) of a row.
fn measure(v: &Value) -> (f64, &'static str, f64, &'static str) {
    match v["kind"].as_str().unwrap_or("") {
        "forward" => (num(v, "median_ms"), "ms", num(v, "tiles_per_s"), "tiles/s"),
        "segment_image" => (num(v, "seconds"), "s", num(v, "megapixels_per_s"), "MP/s"),
        _ => (num(v, "seconds_per_step"), "s", f64::NAN, ""),
    }
}

fn mem(v: &Value) -> f64 {
    // On a GPU the device memory is the one that matters; host RSS otherwise.
    v["gpu_peak_mib"]
        .as_f64()
        .or(v["peak_rss_mib"].as_f64())
        .unwrap_or(f64::NAN)
}

fn fmt(x: f64, prec: usize) -> String {
    if x.is_finite() {
        format!("{x:.prec$}")
    } else {
        "-".into()
    }
}

fn row_name(kind: &str, preset: &str, param: usize, a: &CompareArgs) -> String {
    match kind {
        "forward" => format!("forward {preset} b{param} {}px", a.size),
        "image" => format!("segment_image {preset} {param}px"),
        "train-sup" => format!("train-sup {preset} {}x{}px", a.train_batch, a.size),
        k => format!("{k} {preset} {0}+{0}x{1}px", a.train_batch, a.size),
    }
}

fn print_header(torch: bool, mem_label: &str) {
    if torch {
        println!(
            "| {:<30} | {:>10} | {:>10} | {:>6} | {:>13} | {:>13} | {:>9} | {:>9} | {:>6} |",
            "row",
            "candle",
            "pytorch",
            "ratio",
            "candle/s",
            "torch/s",
            &format!("candle {mem_label}"),
            &format!("torch {mem_label}"),
            "ratio"
        );
        println!(
            "|{:-<32}|{:->12}|{:->12}|{:->8}|{:->15}|{:->15}|{:->11}|{:->11}|{:->8}|",
            "", "", "", "", "", "", "", "", ""
        );
    } else {
        println!(
            "| {:<30} | {:>10} | {:>14} | {:>10} |",
            "row",
            "time",
            "throughput",
            &format!("peak {mem_label}")
        );
        println!("|{:-<32}|{:->12}|{:->16}|{:->12}|", "", "", "", "");
    }
}

fn print_row(name: &str, c: &Result<Value>, t: Option<&Result<Value>>) {
    let cell = |r: &Result<Value>| -> (String, f64, String, f64) {
        match r {
            Ok(v) => {
                let (x, unit, thr, thr_unit) = measure(v);
                let thr = if thr.is_finite() {
                    format!("{} {thr_unit}", fmt(thr, 2))
                } else {
                    "-".into()
                };
                (format!("{} {unit}", fmt(x, 2)), x, thr, mem(v))
            }
            Err(_) => ("failed".into(), f64::NAN, "-".into(), f64::NAN),
        }
    };
    let (ct, cx, cthr, cm) = cell(c);
    match t {
        None => println!(
            "| {name:<30} | {ct:>10} | {:>14} | {:>10} |",
            cthr,
            fmt(cm, 0)
        ),
        Some(t) => {
            let (tt, tx, tthr, tm) = cell(t);
            println!(
                "| {name:<30} | {ct:>10} | {tt:>10} | {:>6} | {cthr:>13} | {tthr:>13} | {:>9} | {:>9} | {:>6} |",
                fmt(cx / tx, 2),
                fmt(cm, 0),
                fmt(tm, 0),
                fmt(cm / tm, 2)
            );
        }
    }
    for r in std::iter::once(c).chain(t) {
        if let Err(e) = r {
            println!("  {name}: {e}");
        }
    }
}

/// Checks the options, then runs the rows they ask for and prints the table (or, with `--one`,
/// runs that row and prints its JSON line).
pub fn run(args: CompareArgs) -> Result<()> {
    if args.size < 32 || args.size > 4096 {
        return Err(format!("--size must be in [32, 4096], got {}", args.size));
    }
    if let Some(b) = &args.batch {
        if b.iter().any(|&x| x == 0 || x > 256) {
            return Err("--batch values must be in [1, 256]".into());
        }
    }
    if args.train_batch == 0 || args.train_batch > 64 {
        return Err("--train-batch must be in [1, 64]".into());
    }
    if args
        .image_size
        .iter()
        .any(|&s| s != 0 && !(64..=65536).contains(&s))
    {
        return Err("--image-size values must be 0 or in [64, 65536]".into());
    }
    if args.threads > 0 {
        std::env::set_var("RAYON_NUM_THREADS", args.threads.to_string());
    }
    // Child mode: one row, one JSON line.
    if let Some(kind) = &args.one {
        let preset = args.presets.first().map(String::as_str).unwrap_or("lite");
        let param = match kind.as_str() {
            "image" => args.image_size.first().copied().unwrap_or(2048),
            _ => args
                .batch
                .as_ref()
                .and_then(|b| b.first().copied())
                .unwrap_or(1),
        };
        println!("{}", run_one(&args, kind, preset, param)?);
        return Ok(());
    }
    if args.dtype != "f32" && args.rows.iter().any(|r| r != "forward") {
        return Err("--dtype f16/bf16 applies to forward rows only (--rows forward)".into());
    }

    // The rows: (kind, preset, batch or image side).
    let mut plan: Vec<(&str, String, usize)> = Vec::new();
    for kind in ["forward", "train-sup", "train-swc"] {
        if !args.rows.iter().any(|r| r == kind) {
            continue;
        }
        for p in &args.presets {
            if kind == "forward" {
                for &b in args.batch.as_deref().unwrap_or(&[1, 8]) {
                    plan.push((kind, p.clone(), b));
                }
            } else {
                plan.push((kind, p.clone(), args.train_batch));
            }
        }
    }
    if args.rows.iter().any(|r| r == "image") {
        for p in &args.image_presets {
            for &s in args.image_size.iter().filter(|&&s| s > 0) {
                plan.push(("image", p.clone(), s));
            }
        }
    }

    let threads = if args.threads > 0 {
        args.threads
    } else {
        candle_core::utils::get_num_threads()
    };
    println!(
        "compare: untrained models, RAA {}, {s}x{s} tiles, {threads} thread(s), device {}, {}, {} warm-up + median of {} (image rows: one run after a warm-up tile){}",
        args.raa,
        args.device,
        args.dtype,
        args.warmup,
        args.iters.max(1),
        if args.in_process { "; in one process: peak RSS is cumulative" } else { "" },
        s = args.size
    );
    if args.torch.is_some() && args.raa == "on" {
        println!(
            "note: RAA is on for candle and absent in PyTorch: not like-for-like (use --raa off)"
        );
    }
    let mem_label = if args.device == "cpu" {
        "MiB"
    } else {
        "GPU MiB"
    };
    print_header(args.torch.is_some(), mem_label);
    let mut rows = Vec::new();
    let mut failed = 0;
    for (kind, preset, param) in &plan {
        let name = row_name(kind, preset, *param, &args);
        let c = candle_row(&args, kind, preset, *param);
        let t = args
            .torch
            .as_deref()
            .map(|py| torch_row(&args, py, kind, preset, *param));
        print_row(&name, &c, t.as_ref());
        for r in std::iter::once(c).chain(t) {
            match r {
                Ok(v) => rows.push(v),
                Err(_) => failed += 1,
            }
        }
    }
    for v in &rows {
        if let Some(acc) = v["accuracy"].as_object() {
            println!(
                "{} {} b{} {}: max |logit - f32 logit| {:.3e} (logits up to {:.2}), argmax agreement {:.4}",
                v["impl"].as_str().unwrap_or(""),
                v["preset"].as_str().unwrap_or(""),
                v["batch"],
                v["dtype"].as_str().unwrap_or(""),
                acc["max_abs_logit_diff"].as_f64().unwrap_or(f64::NAN),
                acc["max_abs_logit"].as_f64().unwrap_or(f64::NAN),
                acc["argmax_agreement"].as_f64().unwrap_or(f64::NAN),
            );
        }
    }
    if args.json {
        println!(
            "{}",
            json!({"threads": threads, "size": args.size, "rows": rows})
        );
    }
    if failed > 0 {
        return Err(format!("{failed} benchmark row(s) failed"));
    }
    Ok(())
}

/// The options of the check run when no argument is given (`cargo test --benches`).
const SMOKE: [&str; 14] = [
    "--rows",
    "forward",
    "--presets",
    "lite",
    "--batch",
    "1",
    "--size",
    "64",
    "--iters",
    "1",
    "--warmup",
    "0",
    "--raa",
    "off",
];

fn main() -> ExitCode {
    let mut argv: Vec<String> = std::env::args().collect();
    if argv.len() == 1 {
        println!("compare: no arguments; one tiny in-process forward row checks the harness (`cargo bench --bench compare -- --help` for the options)");
        argv.extend(SMOKE.iter().map(|s| s.to_string()));
        argv.push("--in-process".into());
    }
    match run(CompareArgs::parse_from(argv)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
