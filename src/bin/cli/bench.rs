//! `csranet bench`: how fast a model runs on this computer: forward passes (tiles/s) and
//! `segment_image` on a synthetic H&E-like image (megapixels/s). The comparison with PyTorch,
//! training steps and memory figures are the `compare` bench target of the source tree
//! (`cargo bench --bench compare`).

use super::{load_model, CliError, Context, ModelArgs, Result};
use candle_core::{DType, Device, Tensor};
use clap::Args;
use csranet::data::synthetic::he_image;
use csranet::imaging::{ImageView, PixelFormat};
use csranet::infer::segment::MAX_TILE_SIDE;
use csranet::infer::{segment_image, segment_tile, SegmentOptions, Segmentation};
use csranet::metrics::agreement::agreement;
use csranet::CsraNet;
use serde_json::{json, Value};
use std::time::Instant;

/// Time forward passes and `segment_image` of a model on this computer; prints a table.
#[derive(Args, Debug, Clone)]
#[command(after_help = "\
Forward rows: batches of --batch random --size px tiles in eval mode, one warm-up pass, then \
the median of --iters passes. segment_image row: a synthetic --image-size square H&E-like \
image, tiles of 512 px, the model's default overlap, batches of 2, instance post-processing \
included, one run after a warm-up tile. Tiling rows (--tiling IMAGE): IMAGE segmented in one \
pass and with tiles of 256, 512, 1024 and 2048 px; each tiling's nuclei matched one-to-one \
with the one pass (IoU > 0.5), the class agreement of the matched ones, and the seconds. The \
model is the bundled one unless --weights or --preset says otherwise.

Examples:
  csranet bench
  csranet bench --weights model.safetensors --threads 4 --batch 1,4,16 --json
  csranet bench --preset paper --size 512 --image-size 0
  csranet bench --batch 1 --image-size 0 --tiling slide-region.png")]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Threads (0: candle's default, all cores).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// Device: cpu, or cuda (needs a build with --features cuda).
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "cuda"])]
    pub device: String,
    /// Tile side of the forward passes (px).
    #[arg(long, value_name = "PX", default_value_t = 256)]
    pub size: usize,
    /// Tiles per forward pass, comma-separated: one row each.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "N,...",
        default_value = "1,8"
    )]
    pub batch: Vec<usize>,
    /// Side of the synthetic image of the segment_image row (0: no such row).
    #[arg(long, value_name = "PX", default_value_t = 2048)]
    pub image_size: usize,
    /// An RGB image (at most 2048 px a side) for the tile-size invariance rows.
    #[arg(long, value_name = "IMAGE")]
    pub tiling: Option<std::path::PathBuf>,
    /// Timed passes per forward row.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub iters: usize,
    /// Also print the rows as one JSON line, the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

fn check(a: &BenchArgs) -> Result<()> {
    if !(32..=4096).contains(&a.size) {
        return Err(CliError(format!(
            "--size must be in [32, 4096], got {}",
            a.size
        )));
    }
    if a.batch.iter().any(|&b| b == 0 || b > 256) {
        return Err(CliError("--batch values must be in [1, 256]".into()));
    }
    if a.image_size != 0 && !(64..=65536).contains(&a.image_size) {
        return Err(CliError(format!(
            "--image-size must be 0 or in [64, 65536], got {}",
            a.image_size
        )));
    }
    if a.iters == 0 || a.iters > 1000 {
        return Err(CliError("--iters must be in [1, 1000]".into()));
    }
    Ok(())
}

/// Median forward time of a batch of `batch` random tiles, as a JSON row.
fn forward_row(m: &CsraNet, dev: &Device, a: &BenchArgs, batch: usize) -> Result<Value> {
    let x = Tensor::randn(0f32, 1f32, (batch, 3, a.size, a.size), dev)
        .context(|| "random input".into())?;
    // Reading one number back makes sure the pass has finished (on a GPU too).
    let pass = || {
        m.forward_t(&x, false)
            .and_then(|y| y.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>())
            .context(|| format!("forward pass of batch {batch}"))
    };
    pass()?;
    let mut ms = Vec::with_capacity(a.iters);
    for _ in 0..a.iters {
        let t0 = Instant::now();
        pass()?;
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    let median = (ms[(n - 1) / 2] + ms[n / 2]) / 2.0;
    Ok(json!({
        "kind": "forward",
        "size": a.size,
        "batch": batch,
        "iters": n,
        "median_ms": median,
        "tiles_per_s": batch as f64 * 1e3 / median,
    }))
}

/// One timed `segment_image` of a synthetic `size x size` image, as a JSON row.
fn image_row(m: &CsraNet, size: usize) -> Result<Value> {
    let img = he_image(size, 7);
    let view = |side: usize| {
        ImageView::new(&img, side, side, size * 3, PixelFormat::Rgb8)
            .context(|| "synthetic image".into())
    };
    let opts = SegmentOptions {
        keep_probabilities: false,
        ..SegmentOptions::default()
    };
    segment_tile(m, &view(256.min(size))?, &opts).context(|| "warm-up tile".into())?;
    let mut tiles = 0;
    let t0 = Instant::now();
    let seg = segment_image(m, &view(size)?, &opts, &mut |_, total| {
        tiles = total;
        true
    })
    .context(|| "segment_image".into())?
    .ok_or_else(|| CliError("segment_image was cancelled".into()))?;
    let secs = t0.elapsed().as_secs_f64();
    Ok(json!({
        "kind": "segment_image",
        "size": size,
        "tiles": tiles,
        "seconds": secs,
        "megapixels_per_s": (size * size) as f64 / 1e6 / secs,
        "instances": seg.instances.len(),
    }))
}

/// Tile sides of the tiling rows.
const TILINGS: [usize; 4] = [256, 512, 1024, 2048];

fn classes(s: &Segmentation) -> Vec<u32> {
    s.instances.iter().map(|i| i.class).collect()
}

/// The tile-size invariance rows: one pass, then each tiling against it.
fn tiling_rows(m: &CsraNet, path: &std::path::Path) -> Result<Vec<Value>> {
    let img = super::read_image(path)?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w > MAX_TILE_SIDE || h > MAX_TILE_SIDE {
        return Err(CliError(format!(
            "--tiling: {} is {w}x{h}; the reference is one pass, so at most \
             {MAX_TILE_SIDE} px a side",
            path.display()
        )));
    }
    let view = ImageView::new(img.as_raw(), w, h, w * 3, PixelFormat::Rgb8)
        .context(|| path.display().to_string())?;
    let opts = SegmentOptions {
        keep_probabilities: false,
        ..SegmentOptions::default()
    };
    let t0 = Instant::now();
    let one = segment_tile(m, &view, &opts).context(|| "one pass".into())?;
    let mut rows = vec![json!({
        "kind": "tiling",
        "tile": 0,
        "nuclei": one.instances.len(),
        "seconds": t0.elapsed().as_secs_f64(),
    })];
    let ref_classes = classes(&one);
    for tile in TILINGS {
        let o = SegmentOptions {
            tile_size: tile,
            ..opts.clone()
        };
        let t0 = Instant::now();
        let seg = segment_image(m, &view, &o, &mut |_, _| true)
            .context(|| format!("tiles of {tile} px"))?
            .ok_or_else(|| CliError("segment_image was cancelled".into()))?;
        let secs = t0.elapsed().as_secs_f64();
        let a = agreement(&seg.labels, &classes(&seg), &one.labels, &ref_classes);
        rows.push(json!({
            "kind": "tiling",
            "tile": tile,
            "nuclei": seg.instances.len(),
            "matched_pct": 100.0 * a.matched_fraction(),
            "class_agreement_pct": 100.0 * a.class_agreement(),
            "seconds": secs,
        }));
    }
    Ok(rows)
}

fn print_tiling(rows: &[Value]) {
    println!();
    println!("| tiling   | nuclei | matched with one pass | class agreement | seconds |");
    println!("|----------|-------:|----------------------:|----------------:|--------:|");
    for r in rows {
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        let tile = r["tile"].as_u64().unwrap_or(0);
        let name = if tile == 0 {
            "one pass".to_string()
        } else {
            format!("{tile} px")
        };
        let pct = |k: &str| {
            if tile == 0 {
                "-".to_string()
            } else {
                format!("{:.2}%", f(k))
            }
        };
        println!(
            "| {name:<8} | {:>6} | {:>21} | {:>15} | {:>7.2} |",
            r["nuclei"].as_u64().unwrap_or(0),
            pct("matched_pct"),
            pct("class_agreement_pct"),
            f("seconds")
        );
    }
}

fn print_row(name: &str, time: String, throughput: String) {
    println!("| {name:<30} | {time:>11} | {throughput:>14} |");
}

/// Runs `csranet bench`: the forward rows, then the segment_image row.
pub fn run(a: BenchArgs) -> Result<()> {
    check(&a)?;
    if a.threads > 0 {
        // Read by candle's CPU kernels and the tiling's thread pool when they first start.
        std::env::set_var("RAYON_NUM_THREADS", a.threads.to_string());
    }
    let (model, desc) = load_model(&a.model)?;
    let dev = match a.device.as_str() {
        "cpu" => Device::Cpu,
        _ => Device::new_cuda(0).context(|| "--device cuda".into())?,
    };
    let model = if dev.is_cpu() {
        model
    } else {
        csranet::io::weights::to_bytes(&model, false)
            .and_then(|b| csranet::io::weights::model_from_bytes(&b, Some(model.config()), &dev))
            .context(|| format!("cannot move the model to {}", a.device))?
    };
    let threads = candle_core::utils::get_num_threads();
    println!("csranet bench: {desc}, {threads} thread(s), {}", a.device);
    print_row("row", "time".into(), "throughput".into());
    println!("|{:-<32}|{:->13}|{:->16}|", "", "", "");
    let mut rows = Vec::new();
    let num = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    for &b in &a.batch {
        let v = forward_row(&model, &dev, &a, b)?;
        print_row(
            &format!("forward {0}x{0}, batch {b}", a.size),
            format!("{:.1} ms", num(&v, "median_ms")),
            format!("{:.2} tiles/s", num(&v, "tiles_per_s")),
        );
        rows.push(v);
    }
    if a.image_size > 0 {
        let v = image_row(&model, a.image_size)?;
        print_row(
            &format!("segment_image {0}x{0}", a.image_size),
            format!("{:.2} s", num(&v, "seconds")),
            format!("{:.3} MP/s", num(&v, "megapixels_per_s")),
        );
        rows.push(v);
    }
    println!(
        "forward: median of {} after a warm-up pass; segment_image: tiles of 512 px, the \
         model's overlap ({} px), batches of 2, post-processing included",
        a.iters,
        SegmentOptions::default().resolved(model.config()).overlap
    );
    if let Some(p) = &a.tiling {
        let t = tiling_rows(&model, p)?;
        print_tiling(&t);
        rows.extend(t);
    }
    if a.json {
        println!(
            "{}",
            json!({"model": desc, "threads": threads, "device": a.device, "rows": rows})
        );
    }
    Ok(())
}
