//! `csranet bench`: forward-pass and large-image timings of untrained models.
//!
//! Every row runs in a child process of this binary (`csranet bench --one ...`), so that its peak
//! resident memory (VmHWM, which is process-wide) is its own.

use super::{CliError, Context, Result};
use candle_core::{Device, Tensor};
use clap::Args;
use csranet::infer::{segment_image, ImageView, PixelFormat, SegmentOptions};
use csranet::{Config, CsraNet};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::process::Command;
use std::time::Instant;

/// Time forward passes (eval mode, after warm-up) of untrained models, and tiled segmentation of a
/// large synthetic image; prints a table (median ms per batch, tiles/s, peak memory).
#[derive(Args, Debug, Clone)]
#[command(after_help = "\
Each row runs in its own child process, so its peak RSS (VmHWM from /proc/self/status) is its \
own. Default batches: 1,8 for lite, 1 for paper (paper at batch 8 is slow on a small CPU); \
--batch applies to every preset.

Examples:
  csranet bench
  csranet bench --presets lite --batch 1,4,16 --iters 10 --json
  csranet bench --presets paper --image-size 0")]
pub struct BenchArgs {
    /// Presets to time, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "lite,paper", value_parser = ["lite", "paper"])]
    pub presets: Vec<String>,
    /// Tile side (px) of the forward passes.
    #[arg(long, value_name = "PX", default_value_t = 256)]
    pub size: usize,
    /// Batch sizes, comma-separated (default: 1,8 for lite, 1 for paper).
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    pub batch: Option<Vec<usize>>,
    /// Timed forward passes per row (the median is reported).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub iters: usize,
    /// Untimed warm-up passes per row.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub warmup: usize,
    /// Side of the synthetic image for the segment_image row (0 skips it).
    #[arg(long, value_name = "PX", default_value_t = 2048)]
    pub image_size: usize,
    /// Presets for the segment_image row, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "lite", value_parser = ["lite", "paper"])]
    pub image_presets: Vec<String>,
    /// Also print all rows as one JSON line, the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Run every row in this process (peak RSS is then cumulative).
    #[arg(long)]
    pub in_process: bool,
    /// Internal: run one row (`forward` or `image`) and print it as JSON.
    #[arg(long, hide = true, value_parser = ["forward", "image"])]
    pub one: Option<String>,
}

/// Peak resident set size of this process in MiB (Linux), from `VmHWM`.
pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
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

fn model(preset: &str) -> Result<CsraNet> {
    let cfg = Config::preset(preset).context(|| "preset".into())?;
    CsraNet::new(&cfg, &Device::Cpu, super::RANDOM_SEED).context(|| "cannot build the model".into())
}

/// Times `iters` forward passes of a batch of `batch` random `size x size` tiles.
fn forward_row(
    preset: &str,
    size: usize,
    batch: usize,
    iters: usize,
    warmup: usize,
) -> Result<Value> {
    let m = model(preset)?;
    let x = Tensor::randn(0f32, 1f32, (batch, 3, size, size), &Device::Cpu)
        .context(|| "input".into())?;
    let run = || -> Result<f64> {
        let t0 = Instant::now();
        let y = m.forward_t(&x, false).context(|| "forward".into())?;
        // Make sure the result is materialised.
        let _ = y.sum_all().and_then(|s| s.to_scalar::<f32>());
        Ok(t0.elapsed().as_secs_f64() * 1e3)
    };
    for _ in 0..warmup {
        run()?;
    }
    let mut ms: Vec<f64> = (0..iters.max(1)).map(|_| run()).collect::<Result<_>>()?;
    let min = ms.iter().cloned().fold(f64::INFINITY, f64::min);
    let med = median(&mut ms);
    Ok(json!({
        "kind": "forward",
        "preset": preset,
        "size": size,
        "batch": batch,
        "iters": iters.max(1),
        "median_ms": med,
        "min_ms": min,
        "ms_per_tile": med / batch as f64,
        "tiles_per_s": batch as f64 * 1e3 / med,
        "peak_rss_mib": peak_rss_mib(),
    }))
}

/// A synthetic H&E-like RGB image: pink background with purple discs ("nuclei").
pub fn synthetic_he(size: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut img = vec![0u8; size * size * 3];
    for px in img.chunks_exact_mut(3) {
        let n: i32 = rng.random_range(-12..12);
        px[0] = (235 + n).clamp(0, 255) as u8;
        px[1] = (190 + n).clamp(0, 255) as u8;
        px[2] = (215 + n).clamp(0, 255) as u8;
    }
    let count = size * size / 700;
    for _ in 0..count {
        let cx = rng.random_range(0..size) as i64;
        let cy = rng.random_range(0..size) as i64;
        let r: i64 = rng.random_range(4..9);
        for y in (cy - r).max(0)..(cy + r + 1).min(size as i64) {
            for x in (cx - r).max(0)..(cx + r + 1).min(size as i64) {
                if (x - cx).pow(2) + (y - cy).pow(2) <= r * r {
                    let o = (y as usize * size + x as usize) * 3;
                    img[o..o + 3].copy_from_slice(&[95, 55, 140]);
                }
            }
        }
    }
    img
}

/// Times `segment_image` (post-processing included) on a synthetic `size x size` image.
fn image_row(preset: &str, size: usize) -> Result<Value> {
    let m = model(preset)?;
    let img = synthetic_he(size, 7);
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
    .ok_or_else(|| CliError("segment_image was cancelled".into()))?;
    let secs = t0.elapsed().as_secs_f64();
    let mp = (size * size) as f64 / 1e6;
    Ok(json!({
        "kind": "segment_image",
        "preset": preset,
        "size": size,
        "tile_size": opts.tile_size,
        "overlap": opts.overlap,
        "batch": opts.batch_size,
        "tiles": tiles,
        "seconds": secs,
        "megapixels_per_s": mp / secs,
        "instances": seg.instances.len(),
        "peak_rss_mib": peak_rss_mib(),
    }))
}

/// Runs one row in a child process (or here with `--in-process`) and returns its JSON.
fn row(args: &BenchArgs, kind: &str, preset: &str, batch: usize) -> Result<Value> {
    if args.in_process {
        return match kind {
            "forward" => forward_row(preset, args.size, batch, args.iters, args.warmup),
            _ => image_row(preset, args.image_size),
        };
    }
    let exe = std::env::current_exe().context(|| "cannot find this executable".into())?;
    let out = Command::new(exe)
        .args([
            "bench",
            "--one",
            kind,
            "--presets",
            preset,
            "--image-presets",
            preset,
            "--size",
            &args.size.to_string(),
            "--batch",
            &batch.to_string(),
            "--iters",
            &args.iters.to_string(),
            "--warmup",
            &args.warmup.to_string(),
            "--image-size",
            &args.image_size.to_string(),
        ])
        .output()
        .context(|| "cannot run a benchmark child process".into())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(CliError(format!(
            "{kind} {preset} batch {batch} failed ({}): {}",
            out.status,
            err.trim()
        )));
    }
    let last = stdout.lines().last().unwrap_or("");
    serde_json::from_str(last).context(|| format!("{kind} {preset}: unreadable child output"))
}

fn num(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(f64::NAN)
}

fn rss(v: &Value) -> String {
    match v["peak_rss_mib"].as_f64() {
        Some(x) => format!("{x:.0}"),
        None => "-".into(),
    }
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.size < 32 || args.size > 4096 {
        return Err(CliError(format!(
            "--size must be in [32, 4096], got {}",
            args.size
        )));
    }
    if let Some(b) = &args.batch {
        if b.iter().any(|&x| x == 0 || x > 256) {
            return Err(CliError("--batch values must be in [1, 256]".into()));
        }
    }
    if args.image_size != 0 && args.image_size < 64 {
        return Err(CliError(format!(
            "--image-size must be 0 or at least 64, got {}",
            args.image_size
        )));
    }
    // Child mode: one row, one JSON line.
    if let Some(kind) = &args.one {
        let preset = args.presets.first().map(String::as_str).unwrap_or("lite");
        let batch = args
            .batch
            .as_ref()
            .and_then(|b| b.first().copied())
            .unwrap_or(1);
        let v = match kind.as_str() {
            "forward" => forward_row(preset, args.size, batch, args.iters, args.warmup)?,
            _ => image_row(preset, args.image_size)?,
        };
        println!("{v}");
        return Ok(());
    }

    let threads = candle_core::utils::get_num_threads();
    println!(
        "csranet bench: untrained models, {s}x{s} tiles, {threads} thread(s), eval mode, {} warm-up + median of {} passes{}",
        args.warmup,
        args.iters.max(1),
        if args.in_process { " (in one process: peak RSS is cumulative)" } else { "" },
        s = args.size
    );
    println!(
        "{:<7} {:>5} {:>11} {:>9} {:>9} {:>13}",
        "preset", "batch", "ms/batch", "ms/tile", "tiles/s", "peak RSS MiB"
    );
    let mut rows = Vec::new();
    let mut failed = 0;
    for preset in &args.presets {
        let batches = match (&args.batch, preset.as_str()) {
            (Some(b), _) => b.clone(),
            (None, "paper") => vec![1],
            (None, _) => vec![1, 8],
        };
        for b in batches {
            match row(&args, "forward", preset, b) {
                Ok(v) => {
                    println!(
                        "{:<7} {:>5} {:>11.1} {:>9.1} {:>9.2} {:>13}",
                        preset,
                        b,
                        num(&v, "median_ms"),
                        num(&v, "ms_per_tile"),
                        num(&v, "tiles_per_s"),
                        rss(&v)
                    );
                    rows.push(v);
                }
                Err(e) => {
                    println!("{preset:<7} {b:>5}  failed: {e}");
                    failed += 1;
                }
            }
        }
    }
    if args.image_size > 0 {
        for preset in &args.image_presets {
            match row(&args, "image", preset, 1) {
                Ok(v) => {
                    println!(
                        "segment_image {preset}, {s}x{s} synthetic image ({} tiles of {} px, overlap {}, post-processing included): {:.2} s, {:.3} MP/s, {} nuclei, peak RSS {} MiB",
                        v["tiles"],
                        v["tile_size"],
                        v["overlap"],
                        num(&v, "seconds"),
                        num(&v, "megapixels_per_s"),
                        v["instances"],
                        rss(&v),
                        s = args.image_size
                    );
                    rows.push(v);
                }
                Err(e) => {
                    println!("segment_image {preset}: failed: {e}");
                    failed += 1;
                }
            }
        }
    }
    if args.json {
        println!(
            "{}",
            json!({"threads": threads, "size": args.size, "rows": rows})
        );
    }
    if failed > 0 {
        return Err(CliError(format!("{failed} benchmark row(s) failed")));
    }
    Ok(())
}
