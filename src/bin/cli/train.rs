//! `csranet train`: a training run on a CoNSeP-style dataset.

use super::{CliError, Context, Result};
use clap::Args;
use csranet::data::combine::{combine, Part};
use csranet::data::{load_labelled, split::parse_fraction, Dataset};
use csranet::train::run::{run as run_training, Event, RunOptions};
use csranet::train::sampler::CasConfig;
use csranet::train::trainer::{Method, TrainConfig};
use csranet::Config;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

/// Options of `csranet train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Training data: a labelled folder (images/ + inst/ [+ type/ + inst_class.json], a
    /// PanNuke fold, or flat tiles), optionally `DIR:PATTERN` to take only tiles whose name
    /// matches a `*`-pattern (e.g. `gbm:emory_*`). Repeat to train on several sets: the first
    /// one's classes are the model's; a set with other classes trains the nuclei's outline
    /// and geometry only (partial labels).
    #[arg(long, required = true)]
    pub data: Vec<String>,
    /// Test data evaluated periodically and at the end.
    #[arg(long)]
    pub test: Option<PathBuf>,
    /// Fraction of training tiles that keep their labels (1/4, 1/8, 0.125, 1 = all).
    #[arg(long, default_value = "1")]
    pub labelled_fraction: String,
    /// Network preset: nuclei (the default network: decoder, geometry head, tile-invariant),
    /// lite (the seed's network at ResNet-18 half width) or paper (the seed's network).
    #[arg(long, default_value = "nuclei")]
    pub preset: String,
    /// RAA on or off (ablation).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub raa: bool,
    /// supervised, fixmatch, unimatch or csra.
    #[arg(long, default_value = "csra")]
    pub method: String,
    /// CAS sampling of the labelled tiles on or off (ablation).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub cas: bool,
    /// SWC contrastive term on or off (ablation; csra only).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub contrastive: bool,
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Steps per epoch (0 = labelled tiles / batch).
    #[arg(long, default_value_t = 0)]
    pub steps_per_epoch: usize,
    /// Labelled (and unlabelled) tiles per step.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Square training crop side.
    #[arg(long, default_value_t = 128)]
    pub crop: usize,
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,
    /// Learning-rate multiplier of the head (1 or 10).
    #[arg(long, default_value_t = 1.0)]
    pub head_lr_mult: f64,
    /// Clip the global gradient norm (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub clip: f64,
    /// Evaluate on --test every N epochs (0 = at the end only).
    #[arg(long, default_value_t = 0)]
    pub eval_every: usize,
    /// Stop after this many minutes, annealing the learning rate over them (checkpoint kept).
    #[arg(long)]
    pub time_budget_min: Option<f64>,
    /// Also print a plain progress line every N steps (0 = only when stderr is not a
    /// terminal, then every 10 steps), for logs of background runs.
    #[arg(long, default_value_t = 0)]
    pub log_every: usize,
    /// Clock of --time-budget-min: `wall`, or `cpu` (this process's CPU time, so methods
    /// compared on a shared, loaded machine get the same computation).
    #[arg(long, default_value = "wall")]
    pub budget_clock: String,
    /// Probability of also giving a labelled tile the strong photometric augmentation
    /// (colour, blur, stain jitter) before the supervised loss (0 = METHOD.md).
    #[arg(long, default_value_t = 0.0)]
    pub labelled_photometric: f64,
    /// Start from these weights.
    #[arg(long)]
    pub init: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder: checkpoint.safetensors, model.safetensors, metrics.json.
    #[arg(long, default_value = "runs/train")]
    pub out: PathBuf,
    /// Resume from OUT/checkpoint.safetensors when present.
    #[arg(long)]
    pub resume: bool,
    /// cpu, or cuda (needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// `DIR` or `DIR:PATTERN`: the folder and the optional tile-name pattern.
fn parse_set(arg: &str) -> (PathBuf, Option<String>) {
    if !std::path::Path::new(arg).exists() {
        if let Some((dir, pat)) = arg.rsplit_once(':') {
            return (PathBuf::from(dir), Some(pat.to_string()));
        }
    }
    (PathBuf::from(arg), None)
}

/// Loads every `--data` set and combines them (the first set's classes are the model's).
fn load_training_sets(args: &[String]) -> Result<Dataset> {
    let mut parts = Vec::new();
    for arg in args {
        let (dir, pattern) = parse_set(arg);
        let data = load_labelled(&dir).context(|| format!("--data {arg}"))?;
        parts.push(Part { data, pattern });
    }
    let classes = parts[0].data.class_names.clone();
    combine(parts, &classes).context(|| "--data".into())
}

pub fn run(a: TrainArgs) -> Result<()> {
    let method: Method = a.method.parse().map_err(CliError)?;
    let mut model = Config::preset(&a.preset).context(|| "--preset".into())?;
    model.raa = a.raa;
    let fraction = parse_fraction(&a.labelled_fraction).context(|| "--labelled-fraction".into())?;
    let mut train = TrainConfig {
        method,
        seed: a.seed,
        contrastive: a.contrastive,
        labelled_photometric: a.labelled_photometric,
        ..Default::default()
    };
    train.optim.lr = a.lr;
    train.optim.head_lr_mult = a.head_lr_mult;
    train.optim.clip_norm = a.clip;
    train.weak.crop_width = a.crop;
    train.weak.crop_height = a.crop;
    let cas = CasConfig {
        enabled: a.cas,
        ..Default::default()
    };
    let data = load_training_sets(&a.data)?;
    model.num_classes = data.num_classes();
    let test = match &a.test {
        Some(t) => Some(load_labelled(t).context(|| format!("--test {}", t.display()))?),
        None => None,
    };
    let device = match a.device.as_str() {
        "cpu" => candle_core::Device::Cpu,
        "cuda" => candle_core::Device::new_cuda(0).context(|| "--device cuda".into())?,
        o => return Err(CliError(format!("--device must be cpu or cuda, got {o}"))),
    };
    let opts = RunOptions {
        device,
        model,
        train,
        cas,
        labelled_fraction: fraction,
        batch_labelled: a.batch,
        batch_unlabelled: a.batch,
        epochs: a.epochs,
        steps_per_epoch: a.steps_per_epoch,
        eval_every: a.eval_every,
        time_budget_s: a.time_budget_min.map(|m| m * 60.0),
        budget_clock: a.budget_clock.parse().map_err(CliError)?,
        init_weights: a.init.clone(),
        out: a.out.clone(),
        resume: a.resume,
    };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} {per_sec} ETA {eta} {msg}",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let mut steps = 0u64;
    let log_every = match a.log_every {
        0 if bar.is_hidden() => 10,
        n => n,
    };
    let result = run_training(&opts, &data, test.as_ref(), &mut |e| match e {
        Event::Step {
            report: r,
            total_steps,
            ..
        } => {
            steps = r.step as u64 + 1;
            bar.set_length(total_steps as u64);
            bar.set_position(r.step as u64 + 1);
            let msg = format!(
                "loss {:.3} (sup {:.3} [cls {:.3} fg {:.3} hv {:.3}] unsup {:.3} con {:.3} fp {:.3}) conf {:.2} lr {:.2e}",
                r.loss,
                r.loss_sup,
                r.loss_class,
                r.loss_foreground,
                r.loss_geometry,
                r.loss_unsup,
                r.loss_contrast,
                r.loss_fp,
                r.confident_ratio,
                r.lr
            );
            if log_every > 0 && (r.step % log_every == 0 || r.step as u64 + 1 == total_steps as u64)
            {
                eprintln!(
                    "{:.0}s cpu {:.0}s step {}/{} {msg}",
                    started.elapsed().as_secs_f64(),
                    csranet::train::run::process_cpu_seconds(),
                    r.step + 1,
                    total_steps
                );
            }
            bar.set_message(msg);
        }
        Event::Eval { epoch, eval } => bar.println(format!(
            "epoch {epoch}: mIoU {:.4} F1 {:.4} bPQ {:.4} mPQ {:.4} F1_det {:.4}",
            eval.summary.pixel.miou,
            eval.summary.pixel.f1,
            eval.summary.instance.bpq,
            eval.summary.instance.mpq,
            eval.summary.instance.f1_det
        )),
        Event::Checkpoint { .. } => {}
    })
    .context(|| "training".into())?;
    bar.abandon();
    eprintln!(
        "trained to step {steps} in {:.1} min; weights in {}",
        started.elapsed().as_secs_f64() / 60.0,
        a.out.join("model.safetensors").display()
    );
    if let Some(e) = result {
        println!("{}", e.summary.to_json());
    }
    Ok(())
}
