//! `csranet eval`: a model (or the post-processing alone) against an annotated dataset.

use super::{
    default_colours, fmt3, load_model, progress_bar, save_png, CliError, Context, ModelArgs,
    PostArgs, Result,
};
use clap::Args;
use csranet::data::{load_labelled, Sample};
use csranet::eval::{class_names_for, evaluate, sample_view, Prediction};
use csranet::infer::{segment_tile, SegmentOptions};
use csranet::io::overlay;
use csranet::metrics::{InstanceClasses, InstanceMap, MetricsSummary};
use std::path::PathBuf;

/// Evaluate a model on annotated tiles: pixel (P/R/F1/IoU) and instance (PQ, bPQ, mPQ, AJI,
/// Dice, detection F1) metrics, per class and overall.
#[derive(Args, Debug)]
#[command(after_help = "\
DIR may be a CoNSeP-style folder (images/, inst/, type/ and inst_class.json in DIR or its \
parent), a PanNuke fold (images.npy, masks.npy, types.npy) or flat tiles (NAME.png, \
NAME_inst.png, NAME_type.png, inst_class.json).

With --json the summary is printed as one JSON object on the last line of stdout (NaN as null), \
with \"tiles_per_s\" added. The progress bar goes to stderr.

--postprocess-only skips the network: the ground-truth class map is fed to the instance \
post-processing, measuring what the post-processing alone loses (an upper bound for any model).

Examples:
  csranet eval --data ../shared/data/consep/test --weights model.safetensors
  csranet eval --data ../shared/data/consep/test --postprocess-only --json
  csranet eval --data tiles --overlays pictures --overlay-count 4")]
pub struct EvalArgs {
    /// Annotated dataset folder.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Also print the summary as one line of JSON, the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Write side-by-side pictures (image | ground truth | prediction, outlines coloured by
    /// class) of the first --overlay-count tiles to this folder.
    #[arg(long, value_name = "DIR")]
    pub overlays: Option<PathBuf>,
    /// Number of tiles to draw with --overlays.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub overlay_count: usize,
    /// Evaluate only the first N tiles.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Measure the instance post-processing alone, on the ground-truth class maps (no model).
    #[arg(long)]
    pub postprocess_only: bool,
    /// With --postprocess-only: never let an instance straddle two classes (uses the class
    /// boundaries of the clean ground-truth map).
    #[arg(long, requires = "postprocess_only")]
    pub split_classes: bool,
    #[command(flatten)]
    pub post: PostArgs,
}

/// Names for the metrics table and colours for the pictures, index = class id. Names are the
/// dataset's (its labels define the classes scored), the model's for classes the dataset does
/// not name; colours are the model's (the dataset's defaults without a model). A model whose
/// names differ from the dataset's gets a note on stderr.
fn table_classes(
    data: &csranet::data::Dataset,
    model: Option<&csranet::CsraNet>,
) -> (Vec<String>, Vec<[u8; 3]>) {
    let n = model.map_or(0, |m| m.config().num_classes);
    let mut names = class_names_for(data, n);
    let mut colours = default_colours(&names);
    if let Some(m) = model {
        let classes = m.classes();
        for (c, (name, colour)) in classes.names().iter().zip(classes.colours()).enumerate() {
            if c >= data.class_names.len() {
                names[c] = name.clone();
            }
            colours[c] = *colour;
        }
        let generic =
            (1..data.class_names.len()).all(|c| data.class_names[c] == format!("class_{c}"));
        let differ = data
            .class_names
            .iter()
            .zip(classes.names())
            .skip(1)
            .any(|(d, m)| !d.eq_ignore_ascii_case(m));
        if differ && !generic {
            eprintln!(
                "note: the model's classes ({}) are not the dataset's ({}); the table uses the \
                 dataset's names",
                classes.names().get(1..).unwrap_or_default().join(", "),
                data.class_names.get(1..).unwrap_or_default().join(", ")
            );
        }
    }
    (names, colours)
}

/// The side-by-side picture of one tile.
fn tile_picture(
    s: &Sample,
    gt: &InstanceMap,
    pred: &Prediction,
    colours: &[[u8; 3]],
) -> Result<image::RgbImage> {
    let img = image::RgbImage::from_raw(s.width() as u32, s.height() as u32, s.image.data.clone())
        .ok_or_else(|| CliError(format!("tile {}: bad image buffer", s.name)))?;
    let colour = |classes: &InstanceClasses| {
        let classes = classes.clone();
        let colours = colours.to_vec();
        move |l: u32| {
            let c = classes.get(&l).copied().unwrap_or(0) as usize;
            Some(colours.get(c).copied().unwrap_or([255, 255, 255]))
        }
    };
    let panel = |inst: &InstanceMap, classes: &InstanceClasses| {
        let mut p = img.clone();
        overlay::fill_labels(&mut p, &inst.labels, colour(classes), 0.25);
        overlay::outline_labels(&mut p, &inst.labels, colour(classes));
        p
    };
    let gt_panel = panel(gt, &s.inst_class);
    let pred_panel = panel(&pred.inst, &pred.classes);
    Ok(overlay::side_by_side(
        &[img, gt_panel, pred_panel],
        4,
        [255, 255, 255],
    ))
}

fn print_table(sum: &MetricsSummary, tiles_per_s: f64, what: &str) {
    println!("{} tiles, {what}, {:.2} tiles/s\n", sum.tiles, tiles_per_s);
    println!(
        "{:<18} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "class", "precision", "recall", "F1", "IoU", "PQ", "F1_det"
    );
    for (name, c) in &sum.per_class {
        println!(
            "{:<18} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7}",
            name,
            fmt3(c.precision),
            fmt3(c.recall),
            fmt3(c.f1),
            fmt3(c.iou),
            fmt3(c.pq),
            fmt3(c.f1_det)
        );
    }
    let p = &sum.pixel;
    let i = &sum.instance;
    println!(
        "{:<18} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "overall",
        fmt3(p.precision),
        fmt3(p.recall),
        fmt3(p.f1),
        fmt3(p.miou),
        fmt3(i.pq),
        fmt3(i.f1_det)
    );
    println!("  (pixel scores: means over nucleus classes; PQ: binary, mean over tiles)\n");
    println!(
        "bPQ {}  mPQ {}  AJI {}  Dice {}  F1_det {}  type acc {}  (PQ {} = DQ {} x SQ {})",
        fmt3(i.bpq),
        fmt3(i.mpq),
        fmt3(i.aji),
        fmt3(i.dice),
        fmt3(i.f1_det),
        fmt3(i.acc_type),
        fmt3(i.pq),
        fmt3(i.dq),
        fmt3(i.sq)
    );
    if !sum.per_tissue.is_empty() && sum.per_tissue.iter().any(|t| t.tissue.is_some()) {
        println!(
            "\n{:<20} {:>6} {:>7} {:>7}",
            "tissue", "tiles", "bPQ", "mPQ"
        );
        for t in &sum.per_tissue {
            let name = t
                .name
                .clone()
                .or_else(|| t.tissue.map(|x| x.to_string()))
                .unwrap_or_else(|| "(none)".into());
            println!(
                "{:<20} {:>6} {:>7} {:>7}",
                name,
                t.tiles,
                fmt3(t.bpq),
                fmt3(t.mpq)
            );
        }
    }
}

pub fn run(args: EvalArgs) -> Result<()> {
    if !args.data.exists() {
        return Err(CliError(format!(
            "--data {}: no such directory",
            args.data.display()
        )));
    }
    let mut data = load_labelled(&args.data).context(|| "cannot load the dataset".into())?;
    if let Some(n) = args.limit {
        data.samples.truncate(n);
    }
    if data.is_empty() {
        return Err(CliError(format!(
            "{}: no tiles to evaluate",
            args.data.display()
        )));
    }
    let mut post = args.post.config();
    let model = if args.postprocess_only {
        post.split_classes = args.split_classes;
        None
    } else {
        let (m, desc) = load_model(&args.model)?;
        eprintln!("model: {desc}");
        Some(m)
    };
    let what = match &model {
        Some(m) => format!("model {}", super::describe_config(m.config())),
        None => "post-processing only (ground-truth class maps)".to_string(),
    };
    let (k, colours) = table_classes(&data, model.as_ref());
    let opts = SegmentOptions {
        keep_probabilities: false,
        post: post.clone(),
        ..SegmentOptions::default()
    };
    if let Some(dir) = &args.overlays {
        std::fs::create_dir_all(dir).context(|| format!("cannot create {}", dir.display()))?;
    }

    let pb = progress_bar(data.len() as u64, "tiles");
    let result = evaluate(
        &data,
        k,
        &mut |s| match &model {
            Some(m) => {
                Prediction::from_segmentation(&s.name, segment_tile(m, &sample_view(s)?, &opts)?)
            }
            None => Prediction::from_ground_truth(s, &post),
        },
        &mut |idx, s, gt, pred| {
            if let Some(dir) = &args.overlays {
                if idx < args.overlay_count {
                    let pic = tile_picture(s, gt, pred, &colours)
                        .map_err(|e| candle_core::Error::Msg(e.0))?;
                    save_png(&pic, &dir.join(format!("{}.png", s.name)))
                        .map_err(|e| candle_core::Error::Msg(e.0))?;
                }
            }
            pb.inc(1);
            Ok(())
        },
    )
    .context(|| "evaluation".into())?;
    pb.finish_and_clear();

    let sum = result.summary;
    let tiles_per_s = result.tiles_per_s;
    print_table(&sum, tiles_per_s, &what);
    if let Some(dir) = &args.overlays {
        println!(
            "\npictures of {} tile(s) in {} (image | ground truth | prediction)",
            args.overlay_count.min(sum.tiles),
            dir.display()
        );
    }
    if args.json {
        // Append "tiles_per_s" to the summary's own JSON (keeps its key order).
        let js = sum.to_json();
        let body = js
            .strip_suffix('}')
            .ok_or_else(|| CliError("summary JSON is not an object".into()))?;
        let tps = if tiles_per_s.is_finite() {
            serde_json::json!(tiles_per_s)
        } else {
            serde_json::Value::Null
        };
        println!("{body},\"tiles_per_s\":{tps}}}");
    }
    Ok(())
}
