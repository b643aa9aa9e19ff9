//! Shared pieces of the `csranet` subcommands: errors, class colours, model loading,
//! post-processing options, images and progress bars.

pub mod bench;
pub mod convert;
pub mod eval;
pub mod segment;
pub mod train;

use clap::Args;
use csranet::imaging::{ImageView, PixelFormat};
use csranet::infer::PostprocessConfig;
use csranet::{Config, CsraNet};
use indicatif::{ProgressBar, ProgressStyle};
use std::fmt;
use std::path::{Path, PathBuf};

/// A command-line error: a message for the user (no backtrace).
#[derive(Debug)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

pub type Result<T> = std::result::Result<T, CliError>;

/// Wraps any displayable error with context: `context: error`.
pub trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| CliError(format!("{}: {e}", what())))
    }
}

// ---------------------------------------------------------------------------------------------
// Classes

pub use csranet::model::classes::title_case;

/// Colours for class names that come without a model (e.g. the ground truth of
/// `eval --postprocess-only`): the library's defaults ([`csranet::model::classes::default_colour`]).
pub fn default_colours(names: &[String]) -> Vec<[u8; 3]> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| csranet::model::classes::default_colour(i, n))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Models

/// Where the model comes from.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Weights (.safetensors). Files written by csranet carry their configuration; for files
    /// without it (e.g. a converted torchvision state dict) give --preset. Without --weights the
    /// bundled trained model is used (an untrained one with --preset, or in a build without
    /// the `bundled-weights` feature).
    #[arg(long, value_name = "FILE")]
    pub weights: Option<PathBuf>,
    /// Network preset (`lite` or `paper`): the configuration for --weights files that carry none,
    /// or, without --weights, an untrained model of that preset instead of the bundled one.
    #[arg(long, value_name = "NAME", value_parser = ["lite", "paper"])]
    pub preset: Option<String>,
}

/// Seed of the untrained models, so that runs are reproducible.
pub const RANDOM_SEED: u64 = 42;

fn warn_untrained() {
    eprintln!("WARNING: using untrained (random) weights; results are meaningless");
}

/// An untrained model of `cfg` (fixed seed), announced on stderr.
pub fn random_model(cfg: &Config) -> Result<CsraNet> {
    warn_untrained();
    CsraNet::new(cfg, &candle_core::Device::Cpu, RANDOM_SEED)
        .context(|| "cannot build the model".into())
}

/// The model used when neither --weights nor --preset is given: the bundled trained `lite`
/// model (`models/lite-consep.safetensors`), or, in a build without the `bundled-weights`
/// feature, an untrained `lite` model with a warning on stderr. Returns the model and
/// whether it is the trained one.
pub fn default_model() -> Result<(CsraNet, bool)> {
    if csranet::io::bundled::bundled_weights().is_some() {
        let m = csranet::io::bundled::default_model(&candle_core::Device::Cpu)
            .context(|| "cannot load the bundled model".into())?;
        return Ok((m, true));
    }
    Ok((random_model(&Config::lite())?, false))
}

/// Loads the model the arguments ask for, and a one-line description of it.
pub fn load_model(args: &ModelArgs) -> Result<(CsraNet, String)> {
    let preset = match &args.preset {
        Some(p) => Some(Config::preset(p).context(|| "--preset".into())?),
        None => None,
    };
    match (&args.weights, preset) {
        (Some(path), preset) => {
            let bytes = csranet::io::weights::read_file(path)
                .context(|| format!("cannot load weights {}", path.display()))?;
            let stored = csranet::io::weights::config_of(&bytes)
                .context(|| format!("cannot load weights {}", path.display()))?;
            if let (Some(s), Some(p)) = (&stored, &preset) {
                if s != p {
                    eprintln!(
                        "note: {} carries its own configuration; --preset {} is ignored",
                        path.display(),
                        args.preset.as_deref().unwrap_or("")
                    );
                }
            }
            let model = csranet::io::weights::model_from_bytes(
                &bytes,
                preset.as_ref(),
                &candle_core::Device::Cpu,
            )
            .map_err(|e| {
                let hint = if stored.is_none() && preset.is_none() {
                    " (give --preset lite|paper for weights without csranet metadata)"
                } else {
                    ""
                };
                CliError(format!("cannot load weights {}: {e}{hint}", path.display()))
            })?;
            let desc = format!("{} ({})", path.display(), describe_config(model.config()));
            Ok((model, desc))
        }
        (None, Some(cfg)) => {
            let model = random_model(&cfg)?;
            let desc = format!(
                "untrained {} ({})",
                args.preset.as_deref().unwrap_or(""),
                describe_config(&cfg)
            );
            Ok((model, desc))
        }
        (None, None) => {
            let (model, trained) = default_model()?;
            let desc = if trained {
                format!(
                    "bundled {} ({})",
                    csranet::io::bundled::BUNDLED_FILE,
                    describe_config(model.config())
                )
            } else {
                format!("untrained default ({})", describe_config(model.config()))
            };
            Ok((model, desc))
        }
    }
}

/// A short description of a configuration.
pub fn describe_config(c: &Config) -> String {
    format!(
        "ResNet-{} x{}, OS {}, RAA {}, {} classes",
        c.depth,
        c.width,
        c.output_stride,
        if c.raa { "on" } else { "off" },
        c.num_classes
    )
}

// ---------------------------------------------------------------------------------------------
// Post-processing

/// Instance post-processing options.
#[derive(Args, Debug, Clone)]
pub struct PostArgs {
    /// Drop nuclei smaller than this many pixels.
    #[arg(long, value_name = "PX", default_value_t = PostprocessConfig::default().min_area)]
    pub min_area: u32,
    /// Height of the h-maxima transform that picks one marker per nucleus (px): lower values
    /// split touching nuclei more eagerly.
    #[arg(long = "h-maxima", value_name = "PX", default_value_t = PostprocessConfig::default().h)]
    pub h: f32,
    /// Models with the geometry head: a pixel is a nucleus pixel when 1 - p(background)
    /// reaches this.
    #[arg(long, value_name = "P", default_value_t = PostprocessConfig::default().fg_threshold)]
    pub fg_threshold: f32,
    /// Models with the geometry head: marker pixels lie within this of a nucleus centre on
    /// both HV maps (max(|h|, |v|), maps in [-1, 1]).
    #[arg(long, value_name = "R", default_value_t = PostprocessConfig::default().hv_core)]
    pub hv_core: f32,
    /// Models with the geometry head: marker pixels have a boundary energy (the maps'
    /// falling slope per pixel) below this.
    #[arg(long, value_name = "E", default_value_t = PostprocessConfig::default().hv_edge)]
    pub hv_edge: f32,
    /// Models with the geometry head: post-process the class map (distance transform)
    /// instead of the HV maps.
    #[arg(long)]
    pub no_geometry: bool,
}

impl PostArgs {
    pub fn config(&self) -> PostprocessConfig {
        PostprocessConfig {
            min_area: self.min_area,
            h: self.h,
            fg_threshold: self.fg_threshold,
            hv_core: self.hv_core,
            hv_edge: self.hv_edge,
            use_geometry: !self.no_geometry,
            ..PostprocessConfig::default()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Images

/// Reads a PNG or JPEG as 8-bit RGB (grey expanded, alpha dropped).
pub fn read_image(path: &Path) -> Result<image::RgbImage> {
    if !path.exists() {
        return Err(CliError(format!("{}: no such file", path.display())));
    }
    if path.is_dir() {
        return Err(CliError(format!(
            "{}: is a directory, not an image",
            path.display()
        )));
    }
    let img = csranet::data::read_rgb(path).map_err(|e| CliError(e.to_string()))?;
    image::RgbImage::from_raw(img.width as u32, img.height as u32, img.data)
        .ok_or_else(|| CliError(format!("{}: inconsistent image buffer", path.display())))
}

/// A checked view of an RGB image.
pub fn view(img: &image::RgbImage) -> Result<ImageView<'_>> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    ImageView::new(img.as_raw(), w, h, w * 3, PixelFormat::Rgb8).context(|| "image".into())
}

/// Writes a PNG, creating its folder.
pub fn save_png(img: &image::RgbImage, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).context(|| format!("cannot create {}", dir.display()))?;
        }
    }
    img.save_with_format(path, image::ImageFormat::Png)
        .context(|| format!("cannot write {}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Progress and formatting

/// A progress bar on stderr (drawn only when stderr is a terminal).
pub fn progress_bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// A metric for a table: 3 decimals, `-` for NaN.
pub fn fmt3(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "-".into()
    }
}
