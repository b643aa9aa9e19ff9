//! A whole training run over a dataset: splits, CAS sampling, steps, periodic
//! evaluation, atomic checkpoints and resume. The `csranet train` command drives it.

use super::sampler::{CasConfig, CasSampler, SamplerState};
use super::trainer::{StepReport, TrainConfig, TrainTile, Trainer, TrainerState};
use crate::data::{split::split_by_source, Dataset, Sample};
use crate::eval::{evaluate_model, Evaluation};
use crate::imaging::{ImageView, PixelFormat};
use crate::infer::SegmentOptions;
use crate::io::weights::{self, write_atomic};
use crate::model::{Classes, Config, CsraNet};
use crate::{Error, ErrorKind, Result};
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::{Dtype, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Options of a run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub model: Config,
    pub train: TrainConfig,
    pub cas: CasConfig,
    /// Fraction of the training tiles that keep their labels (1.0 = all).
    pub labelled_fraction: f64,
    pub batch_labelled: usize,
    pub batch_unlabelled: usize,
    pub epochs: usize,
    /// Steps per epoch (0 = labelled tiles / labelled batch, rounded up).
    pub steps_per_epoch: usize,
    /// Evaluate on `test` every this many epochs (0 = only at the end).
    pub eval_every: usize,
    /// Stop after this many seconds; the cosine schedule then anneals over the budget
    /// (the number of steps that fit is re-estimated as the run goes).
    pub time_budget_s: Option<f64>,
    /// Which clock `time_budget_s` is measured on.
    pub budget_clock: BudgetClock,
    /// Start from these weights instead of a random init.
    pub init_weights: Option<PathBuf>,
    pub out: PathBuf,
    pub resume: bool,
    /// Where the model trains (CPU, or CUDA with the `cuda` feature).
    pub device: Device,
}

/// The clock a training time budget runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BudgetClock {
    /// Elapsed wall-clock time.
    #[default]
    Wall,
    /// CPU time (user + system) of this process: runs that share a loaded machine still get
    /// the same amount of computation, which makes budgets comparable between methods.
    Cpu,
}

impl std::str::FromStr for BudgetClock {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "wall" => Ok(Self::Wall),
            "cpu" => Ok(Self::Cpu),
            o => Err(format!("budget clock must be wall or cpu, got '{o}'")),
        }
    }
}

/// Seconds of CPU time (user + system, all threads) used by this process so far.
pub fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

struct BudgetTimer {
    clock: BudgetClock,
    wall: Instant,
    cpu0: f64,
}

impl BudgetTimer {
    fn start(clock: BudgetClock) -> Self {
        Self {
            clock,
            wall: Instant::now(),
            cpu0: process_cpu_seconds(),
        }
    }
    fn elapsed(&self) -> f64 {
        match self.clock {
            BudgetClock::Wall => self.wall.elapsed().as_secs_f64(),
            BudgetClock::Cpu => process_cpu_seconds() - self.cpu0,
        }
    }
}

/// Writes a checkpoint atomically: weights, momentum buffers, trainer and sampler state.
pub fn save_checkpoint(
    path: &Path,
    model: &CsraNet,
    trainer: &Trainer,
    sampler: Option<&SamplerState>,
    epoch: usize,
) -> Result<()> {
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut push = |name: String, t: &Tensor| -> Result<()> {
        let t = t.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
        let bytes = t
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        tensors.push((name, t.dims().to_vec(), bytes));
        Ok(())
    };
    for (n, t) in model.params().snapshot()? {
        push(format!("model.{n}"), &t)?;
    }
    for (n, t) in &trainer.opt.buffers {
        push(format!("optim.{n}"), t)?;
    }
    let views = tensors
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::internal(e.to_string()).with_source(e))
        })
        .collect::<Result<Vec<_>>>()?;
    let js = |v: &dyn erased::Ser| v.json();
    let mut meta = HashMap::new();
    meta.insert(weights::CONFIG_KEY.to_string(), js(model.config()));
    meta.insert("csranet.trainer".to_string(), js(&trainer.state()));
    meta.insert("csranet.epoch".to_string(), epoch.to_string());
    if let Some(s) = sampler {
        meta.insert("csranet.sampler".to_string(), js(s));
    }
    let bytes = safetensors::tensor::serialize(views, Some(meta))
        .map_err(|e| Error::internal(e.to_string()).with_source(e))?;
    write_atomic(path, &bytes)
}

mod erased {
    pub trait Ser {
        fn json(&self) -> String;
    }
    impl<T: serde::Serialize> Ser for T {
        fn json(&self) -> String {
            serde_json::to_string(self).expect("serialisable")
        }
    }
}

/// What `load_checkpoint` returns besides restoring model and trainer.
pub struct Restored {
    pub epoch: usize,
    pub sampler: Option<SamplerState>,
}

/// Restores a checkpoint into `model` (all or nothing) and `trainer`. An unreadable file
/// is [`ErrorKind::Io`]; a malformed checkpoint, or one for another configuration,
/// [`ErrorKind::BadWeights`].
pub fn load_checkpoint(path: &Path, model: &CsraNet, trainer: &mut Trainer) -> Result<Restored> {
    let bytes = weights::read_file(path)?;
    let bad = |what: String| Error::bad_weights(format!("{}: {what}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(format!("not a checkpoint: {e}")))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(format!("not a checkpoint: {e}")))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let get = |k: &str| {
        meta.get(k)
            .ok_or_else(|| bad(format!("checkpoint lacks `{k}`")))
    };
    let json_err = |k: &str, e: serde_json::Error| bad(format!("bad `{k}` in checkpoint: {e}"));
    let cfg: Config = serde_json::from_str(get(weights::CONFIG_KEY)?)
        .map_err(|e| json_err(weights::CONFIG_KEY, e))?;
    if &cfg != model.config() {
        return Err(bad("checkpoint is for another model configuration".into()));
    }
    let ts: TrainerState = serde_json::from_str(get("csranet.trainer")?)
        .map_err(|e| json_err("csranet.trainer", e))?;
    let epoch: usize = get("csranet.epoch")?
        .parse()
        .map_err(|e| bad(format!("bad `csranet.epoch` in checkpoint: {e}")))?;
    let sampler = match meta.get("csranet.sampler") {
        Some(s) => Some(serde_json::from_str(s).map_err(|e| json_err("csranet.sampler", e))?),
        None => None,
    };
    // Re-serialise the model part as a plain weights buffer and load it strictly.
    let mut model_t = BTreeMap::new();
    let mut optim = BTreeMap::new();
    for (name, v) in st.tensors() {
        let t = Tensor::from_raw_buffer(v.data(), DType::F32, v.shape(), &Device::Cpu)
            .map_err(|e| Error::from_candle(ErrorKind::BadWeights, e).context(path.display()))?;
        if let Some(n) = name.strip_prefix("model.") {
            model_t.insert(n.to_string(), t);
        } else if let Some(n) = name.strip_prefix("optim.") {
            optim.insert(n.to_string(), t.to_device(model.device())?);
        }
    }
    for (n, shape) in model.params().shapes() {
        match model_t.get(&n) {
            Some(t) if t.dims() == shape.as_slice() => {}
            _ => {
                return Err(bad(format!(
                    "checkpoint tensor `model.{n}` missing or misshapen"
                )))
            }
        }
    }
    model.params().set_all(&model_t)?;
    trainer.restore(&ts, optim);
    Ok(Restored { epoch, sampler })
}

/// Whether a dataset's classes have names (an annotation's `classes` table) rather than the
/// loader's placeholders `class_1`, `class_2`, ...
fn has_class_names(data: &Dataset) -> bool {
    (1..data.class_names.len()).any(|c| data.class_names[c] != format!("class_{c}"))
}

fn presence(s: &Sample, num_classes: usize) -> Vec<bool> {
    let mut p = vec![false; num_classes.saturating_sub(1)];
    for &c in &s.class_map {
        if c >= 1 && (c as usize) < num_classes {
            p[c as usize - 1] = true;
        }
    }
    p
}

fn tile(s: &Sample, labelled: bool) -> Result<TrainTile<'_>> {
    let (w, h) = (s.width(), s.height());
    Ok(TrainTile {
        image: ImageView::new(&s.image.data, w, h, w * 3, PixelFormat::Rgb8)
            .map_err(|e| Error::bad_data(e.message()).context(format!("tile {}", s.name)))?,
        label: labelled.then_some(s.class_map.as_slice()),
        instances: labelled.then_some(s.inst.as_slice()),
    })
}

/// Progress events of a run.
pub enum Event<'a> {
    Step {
        epoch: usize,
        report: &'a StepReport,
        total_steps: usize,
    },
    Eval {
        epoch: usize,
        eval: &'a Evaluation,
    },
    Checkpoint {
        path: &'a Path,
    },
}

/// Runs training; returns the final evaluation on `test` when given.
pub fn run(
    opts: &RunOptions,
    train: &Dataset,
    test: Option<&Dataset>,
    on: &mut dyn FnMut(Event),
) -> Result<Option<Evaluation>> {
    let nc = opts.model.num_classes;
    if train.class_names.len() != nc {
        return Err(Error::invalid(format!(
            "the training data has {} classes, the model {nc}",
            train.class_names.len()
        )));
    }
    opts.model
        .validate()
        .map_err(|e| Error::from_candle(ErrorKind::InvalidArgument, e))?;
    std::fs::create_dir_all(&opts.out).map_err(|e| {
        Error::io_msg(format!("cannot create {}: {e}", opts.out.display())).with_source(e)
    })?;
    let (lab, unl) = if opts.labelled_fraction >= 1.0 {
        ((0..train.len()).collect::<Vec<_>>(), vec![])
    } else {
        let s = split_by_source(&train.names(), opts.labelled_fraction, opts.train.seed)?;
        (s.labelled, s.unlabelled)
    };
    if lab.is_empty() {
        return Err(Error::invalid("no labelled tiles"));
    }
    let semi = opts.train.method != super::trainer::Method::Supervised;
    if semi && unl.len() < 2 {
        return Err(Error::invalid(format!(
            "method {:?} needs unlabelled tiles: use --labelled-fraction below 1",
            opts.train.method
        )));
    }
    let steps_per_epoch = if opts.steps_per_epoch > 0 {
        opts.steps_per_epoch
    } else {
        lab.len().div_ceil(opts.batch_labelled)
    };
    let total_steps = steps_per_epoch * opts.epochs;
    let mut tcfg = opts.train.clone();
    tcfg.optim.total_steps = total_steps.max(1);
    let model = CsraNet::new(&opts.model, &opts.device, opts.train.seed)?;
    if let Some(w) = &opts.init_weights {
        weights::load_file(&model, w)?;
    }
    // The saved model names its classes as the training data does, when the data names them.
    if has_class_names(train) {
        model.set_classes(Classes::with_default_colours(train.class_names.clone())?)?;
    }
    let mut trainer = Trainer::new(tcfg)?;
    let tissues: Vec<Option<u32>> = lab.iter().map(|&i| train.samples[i].tissue).collect();
    let pres: Vec<Vec<bool>> = lab
        .iter()
        .map(|&i| presence(&train.samples[i], nc))
        .collect();
    let mut cas = opts.cas.clone();
    cas.total_epochs = opts.epochs.max(1);
    let mut sampler = CasSampler::new(&tissues, &pres, cas.clone(), opts.train.seed)?;
    let ckpt = opts.out.join("checkpoint.safetensors");
    let mut start_epoch = 0;
    if opts.resume && ckpt.exists() {
        let r = load_checkpoint(&ckpt, &model, &mut trainer)?;
        start_epoch = r.epoch;
        if let Some(s) = r.sampler {
            sampler = CasSampler::from_state(&tissues, &pres, cas, &s)?;
        }
    }
    let mut urng =
        ChaCha8Rng::seed_from_u64(opts.train.seed ^ 0x0005_eed0_u64 ^ trainer.step as u64);
    let started = BudgetTimer::start(opts.budget_clock);
    let first_step = trainer.step;
    let seg_opts = SegmentOptions {
        keep_probabilities: false,
        ..Default::default()
    };
    let mut last_eval = None;
    'outer: for epoch in start_epoch..opts.epochs {
        sampler.set_epoch(epoch);
        for _ in 0..steps_per_epoch {
            let li: Vec<usize> = (0..opts.batch_labelled)
                .map(|_| lab[sampler.next()])
                .collect();
            let lt = li
                .iter()
                .map(|&i| tile(&train.samples[i], true))
                .collect::<Result<Vec<_>>>()?;
            let ut = if semi {
                (0..opts.batch_unlabelled)
                    .map(|_| tile(&train.samples[unl[urng.random_range(0..unl.len())]], false))
                    .collect::<Result<Vec<_>>>()?
            } else {
                vec![]
            };
            if let Some(budget) = opts.time_budget_s {
                // Anneal over the time budget: re-estimate how many steps fit in it.
                let done = (trainer.step - first_step) as f64;
                let el = started.elapsed();
                if done >= 3.0 && el > 0.0 {
                    let fit = trainer.step as f64 + done / el * (budget - el).max(0.0);
                    trainer.opt.cfg.total_steps =
                        (fit.ceil() as usize).clamp(trainer.step + 1, total_steps.max(1));
                }
            }
            let report = trainer.step(&model, &lt, &ut)?;
            on(Event::Step {
                epoch,
                report: &report,
                total_steps,
            });
            if opts.time_budget_s.is_some_and(|b| started.elapsed() > b) {
                save_checkpoint(&ckpt, &model, &trainer, Some(&sampler.state()), epoch)?;
                on(Event::Checkpoint { path: &ckpt });
                break 'outer;
            }
        }
        save_checkpoint(&ckpt, &model, &trainer, Some(&sampler.state()), epoch + 1)?;
        on(Event::Checkpoint { path: &ckpt });
        if let Some(t) = test {
            if opts.eval_every > 0 && (epoch + 1) % opts.eval_every == 0 && epoch + 1 < opts.epochs
            {
                let e = evaluate_model(&model, t, &seg_opts)?;
                on(Event::Eval { epoch, eval: &e });
            }
        }
    }
    weights::save_file(&model, &opts.out.join("model.safetensors"), false)?;
    if let Some(t) = test {
        let e = evaluate_model(&model, t, &seg_opts)?;
        let path = opts.out.join("metrics.json");
        std::fs::write(&path, e.summary.to_json()).map_err(|e| Error::io(&path, e))?;
        on(Event::Eval {
            epoch: opts.epochs,
            eval: &e,
        });
        last_eval = Some(e);
    }
    Ok(last_eval)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::trainer::Method;

    #[test]
    fn checkpoint_resume_continues_identically() -> Result<()> {
        let cfg = Config {
            depth: 18,
            width: 0.125,
            output_stride: 16,
            aspp_dropout: 0.0,
            ..Config::lite()
        };
        let mut tc = TrainConfig {
            method: Method::Supervised,
            seed: 5,
            ..Default::default()
        };
        tc.weak.crop_width = 64;
        tc.weak.crop_height = 64;
        tc.optim.total_steps = 10;
        let img: Vec<u8> = (0..64 * 64 * 3).map(|i| (i * 7 % 251) as u8).collect();
        let lab: Vec<u8> = (0..64 * 64).map(|i| ((i / 64) % 3) as u8).collect();
        let view = ImageView::new(&img, 64, 64, 192, PixelFormat::Rgb8)?;
        let batch = [
            TrainTile {
                image: view,
                label: Some(&lab),
                instances: None,
            },
            TrainTile {
                image: view,
                label: Some(&lab),
                instances: None,
            },
        ];
        let a = CsraNet::new(&cfg, &Device::Cpu, 1)?;
        let mut ta = Trainer::new(tc.clone())?;
        ta.step(&a, &batch, &[])?;
        let dir = std::env::temp_dir().join(format!("csranet-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.safetensors");
        save_checkpoint(&path, &a, &ta, None, 3)?;
        let b = CsraNet::new(&cfg, &Device::Cpu, 99)?;
        let mut tb = Trainer::new(tc)?;
        let r = load_checkpoint(&path, &b, &mut tb)?;
        assert_eq!(r.epoch, 3);
        assert_eq!(tb.step, 1);
        let ra = ta.step(&a, &batch, &[])?;
        let rb = tb.step(&b, &batch, &[])?;
        assert_eq!(ra.loss, rb.loss);
        for ((n, x), (_, y)) in a.params().snapshot()?.iter().zip(b.params().snapshot()?) {
            let d = (x - y)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert_eq!(d, 0.0, "{n} differs after resuming");
        }
        // A truncated checkpoint is refused and leaves the model as it was.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
        let before = b.params().snapshot()?;
        let e = load_checkpoint(&path, &b, &mut tb).err().expect("refused");
        assert_eq!(e.kind(), ErrorKind::BadWeights, "{e}");
        let e = load_checkpoint(&dir.join("missing"), &b, &mut tb)
            .err()
            .expect("refused");
        assert_eq!(e.kind(), ErrorKind::Io, "{e}");
        for ((n, x), (_, y)) in before.iter().zip(b.params().snapshot()?) {
            assert_eq!((x - y)?.abs()?.max_all()?.to_scalar::<f32>()?, 0.0, "{n}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
        Ok(())
    }

    #[test]
    fn the_saved_model_names_the_datasets_classes() -> Result<()> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiles");
        let mut data = crate::data::load_labelled(&root)?;
        data.samples.truncate(1);
        let nc = data.class_names.len();
        let mut train = TrainConfig {
            method: Method::Supervised,
            ..Default::default()
        };
        train.weak.crop_width = 64;
        train.weak.crop_height = 64;
        let dir = std::env::temp_dir().join(format!("csranet-run-classes-{}", std::process::id()));
        let opts = RunOptions {
            model: Config {
                depth: 18,
                width: 0.0625,
                output_stride: 16,
                num_classes: nc,
                raa: false,
                ..Config::lite()
            },
            train,
            cas: CasConfig::default(),
            labelled_fraction: 1.0,
            batch_labelled: 1,
            batch_unlabelled: 1,
            epochs: 1,
            steps_per_epoch: 1,
            eval_every: 0,
            time_budget_s: None,
            budget_clock: BudgetClock::Wall,
            init_weights: None,
            out: dir.clone(),
            resume: false,
            device: Device::Cpu,
        };
        let saved = |data: &Dataset| -> Result<Classes> {
            run(&opts, data, None, &mut |_| {})?;
            let bytes = weights::read_file(&dir.join("model.safetensors"))?;
            weights::classes_of(&bytes, nc)
        };
        // Named classes are recorded, with their default colours.
        let names: Vec<String> = (0..nc)
            .map(|c| {
                ["background", "other", "lymphocyte"]
                    .get(c)
                    .map_or(format!("type {c}"), |s| s.to_string())
            })
            .collect();
        data.class_names = names.clone();
        let c = saved(&data)?;
        assert_eq!(c.names(), names);
        assert_eq!(c.colour(1), Some([255, 200, 0]));
        // The loader's placeholders are not names: the defaults stay.
        data.class_names = (0..nc)
            .map(|c| {
                if c == 0 {
                    "background".into()
                } else {
                    format!("class_{c}")
                }
            })
            .collect();
        assert!(!has_class_names(&data));
        assert_eq!(saved(&data)?, Classes::defaults(nc));
        std::fs::remove_dir_all(&dir).unwrap();
        Ok(())
    }
}
