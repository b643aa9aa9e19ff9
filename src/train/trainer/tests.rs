//! Tests of the training step.

use super::*;
use crate::model::Config;
use crate::ErrorKind;
use candle_core::Device;

fn tiny() -> Config {
    Config {
        depth: 18,
        width: 0.125,
        output_stride: 16,
        raa: true,
        raa_region: 2,
        ..Config::lite()
    }
}

/// A synthetic 64x64 tile: dark "nuclei" discs (class 1 or 2) on a light background.
fn tile(seed: u32) -> (Vec<u8>, Vec<u8>) {
    let (w, h) = (64usize, 64usize);
    let mut img = vec![220u8; w * h * 3];
    let mut lab = vec![0u8; w * h];
    for k in 0..4u32 {
        let cx = ((seed * 17 + k * 23) % 50 + 7) as i64;
        let cy = ((seed * 29 + k * 13) % 50 + 7) as i64;
        for y in 0..h as i64 {
            for x in 0..w as i64 {
                if (x - cx).pow(2) + (y - cy).pow(2) < 25 {
                    let i = (y as usize) * w + x as usize;
                    lab[i] = 1 + (k % 2) as u8;
                    img[3 * i..3 * i + 3].copy_from_slice(&[80, 40, 120]);
                }
            }
        }
    }
    (img, lab)
}

fn cfg(method: Method) -> TrainConfig {
    let mut c = TrainConfig {
        method,
        seed: 3,
        contrast_pixels: 64,
        ..Default::default()
    };
    c.weak.crop_width = 64;
    c.weak.crop_height = 64;
    c.optim.total_steps = 10;
    c.tau = 0.0; // every pixel confident, so the unlabelled terms are exercised
    c
}

#[test]
fn every_method_takes_finite_steps_and_changes_weights() -> Result<()> {
    let data: Vec<(Vec<u8>, Vec<u8>)> = (0..4).map(tile).collect();
    let views: Vec<ImageView> = data
        .iter()
        .map(|(i, _)| ImageView::new(i, 64, 64, 192, crate::infer::PixelFormat::Rgb8))
        .collect::<Result<_>>()?;
    for method in [
        Method::Supervised,
        Method::FixMatch,
        Method::UniMatch,
        Method::Csra,
    ] {
        let model = CsraNet::new(&tiny(), &Device::Cpu, 1)?;
        let before = model
            .params()
            .get("classifier.4.weight")
            .unwrap()
            .as_tensor()
            .copy()?;
        let mut t = Trainer::new(cfg(method))?;
        let lab: Vec<TrainTile> = (0..2)
            .map(|i| TrainTile {
                image: views[i],
                label: Some(&data[i].1),
                instances: None,
            })
            .collect();
        let unl: Vec<TrainTile> = (2..4)
            .map(|i| TrainTile {
                image: views[i],
                label: None,
                instances: None,
            })
            .collect();
        let r = t.step(&model, &lab, &unl)?;
        assert!(r.loss.is_finite() && r.loss > 0.0, "{method:?}: {r:?}");
        if method != Method::Supervised {
            assert!(
                r.loss_unsup > 0.0 && r.confident_ratio > 0.99,
                "{method:?}: {r:?}"
            );
        }
        if method == Method::Csra {
            assert!(r.loss_contrast > 0.0, "{r:?}");
        }
        if method == Method::UniMatch {
            assert!(r.loss_fp > 0.0, "{r:?}");
        }
        let after = model
            .params()
            .get("classifier.4.weight")
            .unwrap()
            .as_tensor()
            .copy()?;
        let d = (after - before)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d > 0.0, "{method:?} did not update the classifier");
        assert_eq!(t.step, 1);
    }
    Ok(())
}

#[test]
fn nan_loss_is_an_error_and_leaves_weights_and_statistics_unchanged() -> Result<()> {
    let (img, lab) = tile(1);
    let view = ImageView::new(&img, 64, 64, 192, crate::infer::PixelFormat::Rgb8)?;
    let model = CsraNet::new(&tiny(), &Device::Cpu, 1)?;
    let w = model.params().get("classifier.4.bias").unwrap();
    w.set(&Tensor::new(&[f32::NAN, 0., 0., 0., 0.], &Device::Cpu)?)?;
    let snap = model.params().snapshot()?;
    let mut t = Trainer::new(cfg(Method::Supervised))?;
    let e = t
        .step(
            &model,
            &[TrainTile {
                image: view,
                label: Some(&lab),
                instances: None,
            }],
            &[],
        )
        .unwrap_err();
    assert!(e.to_string().contains("loss is NaN"), "{e}");
    assert_eq!(e.kind(), ErrorKind::NonFinite, "{e}");
    for ((n, a), (_, b)) in snap.iter().zip(model.params().snapshot()?) {
        let same = a
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .zip(b.flatten_all()?.to_vec1::<f32>()?)
            .all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{n} changed after a NaN step");
    }
    assert_eq!(t.step, 0);
    Ok(())
}

#[test]
fn bad_batches_are_refused() -> Result<()> {
    let (img, lab) = tile(2);
    let view = ImageView::new(&img, 64, 64, 192, crate::infer::PixelFormat::Rgb8)?;
    let model = CsraNet::new(&tiny(), &Device::Cpu, 1)?;
    let mut t = Trainer::new(cfg(Method::Csra))?;
    let e = t.step(&model, &[], &[]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let bad = vec![9u8; 64 * 64];
    let e = t
        .step(
            &model,
            &[TrainTile {
                image: view,
                label: Some(&bad),
                instances: None,
            }],
            &[],
        )
        .unwrap_err();
    assert!(e.to_string().contains("out of range"), "{e}");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let e = t
        .step(
            &model,
            &[TrainTile {
                image: view,
                label: Some(&lab),
                instances: None,
            }],
            &[],
        )
        .unwrap_err();
    assert!(e.to_string().contains("unlabelled"), "{e}");
    let mut c = cfg(Method::Csra);
    c.weak.crop_height = 32;
    let e = Trainer::new(c).err().expect("a non-square crop is refused");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("docs/CANDLE-NOTES.md"), "{e}");
    Ok(())
}
