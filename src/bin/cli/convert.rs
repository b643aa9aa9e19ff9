//! `csranet convert`: rewrite a weights file (e.g. f32 -> f16, or give a torchvision state dict
//! its configuration), checked by loading it strictly first.

use super::{load_model, Context, ModelArgs, Result};
use clap::Args;
use std::path::PathBuf;

/// Options of `csranet convert`.
#[derive(Args, Debug)]
pub struct ConvertArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Output safetensors file (written atomically, with the configuration in its metadata).
    #[arg(long)]
    pub out: PathBuf,
    /// Store the weights as f16 (half the size; the model computes in f32 after loading).
    #[arg(long)]
    pub f16: bool,
}

pub fn run(a: ConvertArgs) -> Result<()> {
    if a.model.weights.is_none() {
        return Err(super::CliError("convert needs --weights".into()));
    }
    let (model, desc) = load_model(&a.model)?;
    csranet::io::weights::save_file(&model, &a.out, a.f16)
        .context(|| format!("cannot write {}", a.out.display()))?;
    let size = std::fs::metadata(&a.out).map(|m| m.len()).unwrap_or(0);
    println!(
        "{desc} -> {} ({:.2} MB, {})",
        a.out.display(),
        size as f64 / 1e6,
        if a.f16 { "f16" } else { "f32" }
    );
    Ok(())
}
