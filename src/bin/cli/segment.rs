//! `csranet segment`: images in, QuPath GeoJSON + overlay PNG + per-class table out.

use super::{
    fmt3, load_model, progress_bar, read_image, save_png, title_case, view, CliError, Context,
    ModelArgs, PostArgs, Result,
};
use clap::Args;
use csranet::infer::{segment_image, segment_tile, SegmentOptions, Segmentation};
use csranet::io::{geojson, overlay};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Images up to this size (both sides) are segmented as one tile; larger ones by overlapping
/// tiles.
pub const WHOLE_TILE_MAX: usize = 1024;

/// Segment nuclei in images: writes OUT/<stem>.geojson (QuPath detections) and
/// OUT/<stem>_overlay.png, and prints a per-class table.
#[derive(Args, Debug)]
#[command(after_help = "\
Images up to 1024x1024 are segmented in one pass; larger ones by overlapping tiles \
(--tile-size, --overlap) with a progress bar.

The GeoJSON is a FeatureCollection of QuPath detections (File > Import objects in QuPath 0.4+): \
each nucleus has its outline polygon (pixel coordinates, origin at the top-left corner), its \
class as classification {name, color} and measurements \"Area px^2\", \"Score\" (mean class \
probability), \"Centroid X px\", \"Centroid Y px\".

Examples:
  csranet segment tile.png --weights model.safetensors --out results
  csranet segment slide_region.jpg --tile-size 512 --overlap 64")]
pub struct SegmentArgs {
    /// Images to segment (PNG or JPEG, RGB / RGBA / grey, at least 32x32).
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Output folder (created if needed).
    #[arg(long, value_name = "DIR", default_value = "out")]
    pub out: PathBuf,
    /// Tile side for large images (px, rounded up to the network's size multiple).
    #[arg(long, value_name = "PX", default_value_t = SegmentOptions::default().tile_size)]
    pub tile_size: usize,
    /// Overlap of neighbouring tiles (px, at most half the tile). 0 = the model's (none for
    /// tile-invariant models, which read context around each tile instead; else 64, which
    /// must exceed twice the largest nucleus diameter).
    #[arg(long, value_name = "PX", default_value_t = SegmentOptions::default().overlap)]
    pub overlap: usize,
    /// Context read around each tile beyond the overlap (px); the network sees it, the
    /// nuclei come from the tile. Default: the model's (192 px for the nuclei network, 0 for
    /// the seed's).
    #[arg(long, value_name = "PX")]
    pub context: Option<usize>,
    /// Tiles per forward pass for large images (bounds memory).
    #[arg(long, value_name = "N", default_value_t = SegmentOptions::default().batch_size)]
    pub batch_size: usize,
    #[command(flatten)]
    pub post: PostArgs,
}

/// Per-class rows: (class id, count, mean score, mean area).
pub fn class_stats(seg: &Segmentation) -> Vec<(usize, usize, f64, f64)> {
    let k = seg
        .instances
        .iter()
        .map(|i| i.class as usize + 1)
        .max()
        .unwrap_or(0)
        .max(seg.num_classes);
    let mut n = vec![0usize; k];
    let mut score = vec![0f64; k];
    let mut area = vec![0f64; k];
    for i in &seg.instances {
        let c = i.class as usize;
        n[c] += 1;
        score[c] += i.score as f64;
        area[c] += i.area as f64;
    }
    (1..k)
        .map(|c| {
            let d = n[c].max(1) as f64;
            (c, n[c], score[c] / d, area[c] / d)
        })
        .collect()
}

/// The per-class table of one segmentation.
pub fn format_table(seg: &Segmentation, names: &[String]) -> String {
    let mut s = format!(
        "  {:<16} {:>6} {:>11} {:>14}\n",
        "class", "count", "mean score", "mean area px"
    );
    let rows = class_stats(seg);
    let name = |c: usize| {
        names
            .get(c)
            .map(|n| title_case(n))
            .unwrap_or_else(|| format!("class {c}"))
    };
    let (mut tn, mut ts, mut ta) = (0usize, 0f64, 0f64);
    for (c, n, sc, ar) in rows {
        let (a, b) = if n == 0 {
            ("-".to_string(), "-".to_string())
        } else {
            (fmt3(sc), format!("{ar:.1}"))
        };
        s += &format!("  {:<16} {:>6} {:>11} {:>14}\n", name(c), n, a, b);
        tn += n;
        ts += sc * n as f64;
        ta += ar * n as f64;
    }
    let d = tn.max(1) as f64;
    let (a, b) = if tn == 0 {
        ("-".to_string(), "-".to_string())
    } else {
        (fmt3(ts / d), format!("{:.1}", ta / d))
    };
    s += &format!("  {:<16} {:>6} {:>11} {:>14}\n", "all", tn, a, b);
    s
}

fn segment_one(
    model: &csranet::CsraNet,
    path: &Path,
    args: &SegmentArgs,
    opts: &SegmentOptions,
) -> Result<()> {
    let classes = model.classes();
    let img = read_image(path)?;
    let v = view(&img).context(|| path.display().to_string())?;
    let (w, h) = (v.width(), v.height());
    let t0 = Instant::now();
    let seg = if w <= WHOLE_TILE_MAX && h <= WHOLE_TILE_MAX {
        segment_tile(model, &v, opts).context(|| format!("segmenting {}", path.display()))?
    } else {
        let pb = progress_bar(0, "tiles");
        let res = segment_image(model, &v, opts, &mut |done, total| {
            pb.set_length(total as u64);
            pb.set_position(done as u64);
            true
        });
        pb.finish_and_clear();
        res.context(|| format!("segmenting {}", path.display()))?
            .ok_or_else(|| CliError(format!("segmenting {}: cancelled", path.display())))?
    };
    let secs = t0.elapsed().as_secs_f64();

    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    std::fs::create_dir_all(&args.out)
        .context(|| format!("cannot create {}", args.out.display()))?;
    let geo_path = args.out.join(format!("{stem}.geojson"));
    let geo = geojson::to_geojson_classes(&seg, &classes);
    let text = serde_json::to_string(&geo).context(|| "GeoJSON".into())?;
    std::fs::write(&geo_path, text + "\n")
        .context(|| format!("cannot write {}", geo_path.display()))?;
    let ov_path = args.out.join(format!("{stem}_overlay.png"));
    save_png(
        &overlay::segmentation_overlay(&img, &seg, classes.colours()),
        &ov_path,
    )?;

    println!(
        "{}: {w}x{h}, {} nuclei in {secs:.2} s -> {}, {}",
        path.display(),
        seg.instances.len(),
        geo_path.display(),
        ov_path.display()
    );
    print!("{}", format_table(&seg, classes.names()));
    Ok(())
}

pub fn run(args: SegmentArgs) -> Result<()> {
    // Check the inputs before the (slow) model load.
    for p in &args.images {
        if !p.exists() {
            return Err(CliError(format!("{}: no such file", p.display())));
        }
    }
    let opts = SegmentOptions {
        tile_size: args.tile_size,
        overlap: args.overlap,
        context: args.context,
        batch_size: args.batch_size,
        keep_probabilities: false,
        post: args.post.config(),
        ..SegmentOptions::default()
    };
    opts.validate().context(|| "invalid options".into())?;
    let (model, desc) = load_model(&args.model)?;
    eprintln!("model: {desc}");
    let mut failed = 0;
    for p in &args.images {
        if let Err(e) = segment_one(&model, p, &args, &opts) {
            eprintln!("error: {e}");
            failed += 1;
        }
    }
    if failed > 0 {
        return Err(CliError(format!(
            "{failed} of {} image(s) failed",
            args.images.len()
        )));
    }
    Ok(())
}
