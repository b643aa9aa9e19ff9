//! Logits parity with torchvision (RAA off, eval mode) on golden fixtures made by
//! `tools/parity/make_fixtures.py`, and parameter-name parity with torchvision's full
//! `deeplabv3_resnet50/101`.

use candle_core::{Device, Tensor};
use csranet::io::weights;
use csranet::{Config, CsraNet};
mod common;
use common::fixture;

fn cfg(depth: usize, os: usize, classes: usize, width: f64) -> Config {
    Config {
        depth,
        width,
        output_stride: os,
        num_classes: classes,
        raa: false,
        ..Config::paper()
    }
}

fn max_abs_diff(name: &str, cfg: Config) -> f32 {
    let dev = Device::Cpu;
    let model = CsraNet::new(&cfg, &dev, 0).unwrap();
    weights::load_file(&model, &fixture(&format!("{name}.safetensors"))).unwrap();
    let io =
        candle_core::safetensors::load(fixture(&format!("{name}_io.safetensors")), &dev).unwrap();
    let x = &io["input"];
    let want = &io["logits"];
    let got = model.forward_t(x, false).unwrap();
    assert_eq!(got.dims(), want.dims());
    let d = common::max_abs_diff(&got, want);
    let scale = common::max_abs(want);
    println!("{name}: max |ours - torchvision| = {d:.3e} (logit range {scale:.1})");
    d
}

#[test]
fn resnet50_os8_matches_torchvision() {
    let d = max_abs_diff("r50_w0125_os8", cfg(50, 8, 5, 0.125));
    assert!(d < 1e-4, "max abs diff {d}");
}

#[test]
fn resnet18_os16_matches_torchvision_blocks() {
    let d = max_abs_diff("r18_w0125_os16", cfg(18, 16, 5, 0.125));
    assert!(d < 1e-4, "max abs diff {d}");
}

fn torchvision_names(arch: &str) -> Vec<(String, Vec<usize>)> {
    let js: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("torchvision_names.json")).unwrap()).unwrap();
    let mut v: Vec<(String, Vec<usize>)> = js[arch]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let name = e[0].as_str().unwrap().to_string();
            let shape = e[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            (name, shape)
        })
        .filter(|(n, _)| !n.ends_with("num_batches_tracked") && !n.starts_with("aux_classifier."))
        .collect();
    v.sort();
    v
}

#[test]
fn full_size_parameter_sets_equal_torchvision() {
    for (arch, depth) in [("deeplabv3_resnet50", 50), ("deeplabv3_resnet101", 101)] {
        let model = CsraNet::new(&cfg(depth, 8, 21, 1.0), &Device::Cpu, 0).unwrap();
        let ours = model.params().shapes();
        let theirs = torchvision_names(arch);
        assert_eq!(ours.len(), theirs.len(), "{arch}: tensor count");
        for (a, b) in ours.iter().zip(&theirs) {
            assert_eq!(a, b, "{arch}: first difference");
        }
    }
}

#[test]
fn load_rejects_mismatches_and_keeps_old_weights() {
    let dev = Device::Cpu;
    let model = CsraNet::new(&cfg(18, 16, 5, 0.125), &dev, 0).unwrap();
    let before = model.params().snapshot().unwrap();
    // Another architecture: the first missing tensor is named.
    let err = weights::load_file(&model, &fixture("r50_w0125_os8.safetensors")).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("backbone.") && msg.contains("shape"), "{msg}");
    // Garbage and truncated buffers.
    assert!(weights::load_bytes(&model, b"not safetensors at all").is_err());
    let good = std::fs::read(fixture("r18_w0125_os16.safetensors")).unwrap();
    let e = weights::load_bytes(&model, &good[..good.len() / 2]).unwrap_err();
    assert!(e.to_string().contains("safetensors"), "{e}");
    let after = model.params().snapshot().unwrap();
    for ((n, a), (_, b)) in before.iter().zip(&after) {
        let d = common::max_abs_diff(a, b);
        assert_eq!(d, 0.0, "{n} changed by a failed load");
    }
    // A good load then changes them.
    weights::load_bytes(&model, &good).unwrap();
}

#[test]
fn save_and_reload_round_trip_with_config() {
    let dev = Device::Cpu;
    let mut c = cfg(18, 8, 6, 0.125);
    c.raa = true;
    let model = CsraNet::new(&c, &dev, 7).unwrap();
    let dir = std::env::temp_dir().join(format!("csranet-rt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.safetensors");
    weights::save_file(&model, &path, false).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let back = weights::model_from_bytes(&bytes, None, &dev).unwrap();
    assert_eq!(back.config(), &c);
    let x = Tensor::randn(0f32, 1., (1, 3, 64, 48), &dev).unwrap();
    let a = model.forward_t(&x, false).unwrap();
    let b = back.forward_t(&x, false).unwrap();
    let d = common::max_abs_diff(&a, &b);
    assert_eq!(d, 0.0);
    std::fs::remove_dir_all(&dir).unwrap();
}
