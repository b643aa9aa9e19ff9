//! Training-mode parity with PyTorch: loss, parameter gradients and batch-norm running
//! statistics of one train-mode forward/backward (fixture from
//! `tools/parity/make_fixtures.py`; dropout off on both sides).

use candle_core::{DType, Device, Tensor};
use csranet::io::weights;
use csranet::train::losses::cross_entropy;
use csranet::{Config, CsraNet};
mod common;
use common::fixture;

fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
    let num = common::max_abs_diff(a, b);
    let den = common::max_abs(b);
    num / den.max(1e-12)
}

#[test]
fn loss_gradients_and_running_stats_match_pytorch() {
    let dev = Device::Cpu;
    let cfg = Config {
        depth: 18,
        width: 0.125,
        output_stride: 16,
        num_classes: 5,
        raa: false,
        aspp_dropout: 0.0,
        ..Config::paper()
    };
    let model = CsraNet::new(&cfg, &dev, 0).unwrap();
    weights::load_file(&model, &fixture("r18_w0125_os16.safetensors")).unwrap();
    let g =
        candle_core::safetensors::load(fixture("r18_w0125_os16_grad.safetensors"), &dev).unwrap();
    let labels = g["labels_u8"].to_dtype(DType::U32).unwrap();
    let logits = model.forward_t(&g["input"], true).unwrap();
    let loss = cross_entropy(&logits, &labels).unwrap();
    let want = g["loss"].to_vec1::<f32>().unwrap()[0];
    let got = loss.to_scalar::<f32>().unwrap();
    println!("loss ours {got} torch {want}");
    assert!(((got - want) / want).abs() < 1e-4);
    let grads = loss.backward().unwrap();
    let mut checked = 0;
    for (k, v) in &g {
        if let Some(name) = k.strip_prefix("grad.") {
            let var = model.params().get(name).unwrap();
            let ours = grads.get(var.as_tensor()).unwrap();
            let e = rel_err(ours, v);
            println!("{name}: relative error {e:.2e}");
            assert!(e < 1e-3, "{name}: {e}");
            checked += 1;
        }
        if let Some(name) = k.strip_prefix("after.") {
            let e = rel_err(model.params().get(name).unwrap().as_tensor(), v);
            println!("{name}: relative error {e:.2e}");
            assert!(e < 1e-4, "{name}: {e}");
            checked += 1;
        }
    }
    assert!(checked >= 9, "only {checked} tensors compared");
}
