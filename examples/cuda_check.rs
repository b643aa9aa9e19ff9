//! GPU check for the device machine (`tools/device/check.sh`): CPU and CUDA logits of the
//! same weights must agree to 1e-3, and the CUDA forward is timed.
//!
//! `cargo build --release --features cuda --example cuda_check`, then run it where a GPU is.

use candle_core::{Device, Tensor};
use csranet::{Config, CsraNet};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() -> candle_core::Result<()> {
    let gpu = Device::new_cuda(0)?;
    let mut worst = 0f32;
    println!(
        "| preset | batch | max abs diff CPU vs GPU | GPU ms/batch (median of 10) | GPU tiles/s |"
    );
    println!("|---|---|---|---|---|");
    for preset in ["lite", "paper"] {
        let cfg = Config::preset(preset)?;
        // Same seed: the initialisation is drawn on the host, so both models are identical.
        let cpu_model = CsraNet::new(&cfg, &Device::Cpu, 7)?;
        let gpu_model = CsraNet::new(&cfg, &gpu, 7)?;
        for batch in [1usize, 8] {
            let x = Tensor::randn(0f32, 1., (batch, 3, 256, 256), &Device::Cpu)?;
            let a = cpu_model.forward_t(&x, false)?;
            let xg = x.to_device(&gpu)?;
            let b = gpu_model.forward_t(&xg, false)?.to_device(&Device::Cpu)?;
            let d = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
            worst = worst.max(d);
            for _ in 0..3 {
                gpu_model.forward_t(&xg, false)?.to_device(&Device::Cpu)?;
            }
            let mut t = Vec::new();
            for _ in 0..10 {
                let s = Instant::now();
                gpu_model.forward_t(&xg, false)?.to_device(&Device::Cpu)?;
                t.push(s.elapsed().as_secs_f64());
            }
            let m = median(t);
            println!(
                "| {preset} | {batch} | {d:.2e} | {:.1} | {:.1} |",
                m * 1e3,
                batch as f64 / m
            );
        }
    }
    println!(
        "worst difference {worst:.2e} (limit 1e-3): {}",
        if worst <= 1e-3 { "PASS" } else { "FAIL" }
    );
    if worst > 1e-3 {
        std::process::exit(1);
    }
    Ok(())
}
