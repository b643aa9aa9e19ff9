//! `csranet convert`: rewrite a weights file (e.g. f32 -> f16, or give a torchvision state dict
//! its configuration, or name its classes), checked by loading it strictly first.

use super::{load_model, CliError, Context, ModelArgs, Result};
use clap::Args;
use csranet::model::classes::{parse_colours, Classes};
use std::path::PathBuf;

/// Options of `csranet convert`.
#[derive(Args, Debug)]
#[command(after_help = "\
The output carries the model's configuration and its class names and colours (the input's, \
or the defaults for the class count when the input has none, or those given here).

Examples:
  csranet convert --weights model.safetensors --out model-f16.safetensors --f16
  csranet convert --weights model.safetensors --out named.safetensors \\
      --class-names background,other,inflammatory,epithelial,spindle-shaped \\
      --class-colours '#000000,#ffc800,#00d200,#ff8c00,#00c8ff'")]
pub struct ConvertArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Output safetensors file (written atomically, with the configuration in its metadata).
    #[arg(long)]
    pub out: PathBuf,
    /// Store the weights as f16 (half the size; the model computes in f32 after loading).
    #[arg(long)]
    pub f16: bool,
    /// Class names to store, comma-separated, one per class with the background first (class
    /// 0). Without --class-colours they get the default colours of their names.
    #[arg(long, value_name = "NAMES")]
    pub class_names: Option<String>,
    /// Class colours to store, comma-separated RRGGBB in hexadecimal (e.g. #ffc800), one per
    /// class with the background first.
    #[arg(long, value_name = "COLOURS")]
    pub class_colours: Option<String>,
}

/// The classes `a` asks for, from `current` (the loaded model's); `None` when unchanged.
pub fn requested_classes(a: &ConvertArgs, current: &Classes) -> Result<Option<Classes>> {
    let names = a.class_names.as_ref().map(|s| {
        s.split(',')
            .map(|n| n.trim().to_string())
            .collect::<Vec<_>>()
    });
    let colours = match &a.class_colours {
        Some(s) => Some(parse_colours(s).context(|| "--class-colours".into())?),
        None => None,
    };
    let classes = match (names, colours) {
        (None, None) => return Ok(None),
        (Some(n), None) => Classes::with_default_colours(n).context(|| "--class-names".into())?,
        (None, Some(c)) => {
            if c.len() != current.len() {
                return Err(CliError(format!(
                    "--class-colours: {} colours given, the model has {} classes (background \
                     included, class 0)",
                    c.len(),
                    current.len()
                )));
            }
            current
                .with_colours(c)
                .context(|| "--class-colours".into())?
        }
        (Some(n), Some(c)) => {
            Classes::new(n, c).context(|| "--class-names/--class-colours".into())?
        }
    };
    classes
        .check_count(current.len())
        .context(|| "--class-names".into())?;
    Ok(Some(classes))
}

pub fn run(a: ConvertArgs) -> Result<()> {
    if a.model.weights.is_none() {
        return Err(CliError("convert needs --weights".into()));
    }
    let (model, desc) = load_model(&a.model)?;
    if let Some(classes) = requested_classes(&a, &model.classes())? {
        model
            .set_classes(classes)
            .context(|| "--class-names".into())?;
    }
    csranet::io::weights::save_file(&model, &a.out, a.f16)
        .context(|| format!("cannot write {}", a.out.display()))?;
    let size = std::fs::metadata(&a.out).map(|m| m.len()).unwrap_or(0);
    println!(
        "{desc} -> {} ({:.2} MB, {}; classes {})",
        a.out.display(),
        size as f64 / 1e6,
        if a.f16 { "f16" } else { "f32" },
        model.classes().names().join(", ")
    );
    Ok(())
}
