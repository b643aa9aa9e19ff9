//! The bundled default model (`models/lite-consep.safetensors`, compiled in by the default
//! `bundled-weights` feature) finds nuclei on the three labelled fixture tiles: detection F1
//! (nucleus vs background, centroids matched within 12 px as HoVer-Net) must be >= 0.7, so a
//! broken default cannot land. Also: `csra_model_create_default` gives the same model through
//! the C ABI, and a build without the feature reports `CSRA_NOT_AVAILABLE`.

use csranet::data::consep::load_flat;
use csranet::ffi::model::{csra_model_create_default, csra_model_free, CsraModel};
use csranet::ffi::segmentation::{
    csra_segment_tile, csra_segmentation_free, csra_segmentation_num_instances, CsraImage,
    CsraSegmentation,
};
use csranet::ffi::CsraStatus;
use std::path::Path;

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiles")
}

#[cfg(feature = "bundled-weights")]
#[test]
fn bundled_model_detects_fixture_nuclei() {
    use csranet::eval::evaluate_model;
    use csranet::infer::segment::SegmentOptions;
    let model = csranet::io::bundled::default_model(&candle_core::Device::Cpu).unwrap();
    let data = load_flat(fixtures()).unwrap();
    assert_eq!(data.len(), 3);
    let e = evaluate_model(&model, &data, &SegmentOptions::default()).unwrap();
    let i = &e.summary.instance;
    println!(
        "bundled model on the 3 fixture tiles: F1_det {:.4}, bPQ {:.4}, AJI {:.4}, Dice {:.4}",
        i.f1_det, i.bpq, i.aji, i.dice
    );
    assert!(i.f1_det >= 0.7, "detection F1 {:.4} < 0.7", i.f1_det);
}

/// Segments `patch1.png` through the C ABI with `model` and returns the instance count.
unsafe fn c_count(model: *const CsraModel) -> usize {
    let rgb = image::open(fixtures().join("patch1.png"))
        .unwrap()
        .to_rgb8();
    let (w, h) = rgb.dimensions();
    let img = CsraImage {
        data: rgb.as_raw().as_ptr(),
        len: rgb.as_raw().len(),
        width: w,
        height: h,
        stride: w as usize * 3,
        format: 0,
    };
    let mut seg: *mut CsraSegmentation = std::ptr::null_mut();
    assert_eq!(
        csra_segment_tile(model, &img, std::ptr::null(), &mut seg),
        CsraStatus::CSRA_OK
    );
    let mut n = 0usize;
    assert_eq!(
        csra_segmentation_num_instances(seg, &mut n),
        CsraStatus::CSRA_OK
    );
    csra_segmentation_free(seg);
    n
}

#[cfg(feature = "bundled-weights")]
#[test]
fn c_default_model_matches_rust_default() {
    use csranet::infer::image::{ImageView, PixelFormat};
    use csranet::infer::segment::{segment_tile, SegmentOptions};
    let mut m: *mut CsraModel = std::ptr::null_mut();
    unsafe {
        assert_eq!(csra_model_create_default(&mut m), CsraStatus::CSRA_OK);
        let n_c = c_count(m);
        csra_model_free(m);
        let model = csranet::io::bundled::default_model(&candle_core::Device::Cpu).unwrap();
        let rgb = image::open(fixtures().join("patch1.png"))
            .unwrap()
            .to_rgb8();
        let (w, h) = rgb.dimensions();
        let view = ImageView::new(
            rgb.as_raw(),
            w as usize,
            h as usize,
            w as usize * 3,
            PixelFormat::Rgb8,
        )
        .unwrap();
        let seg = segment_tile(&model, &view, &SegmentOptions::default()).unwrap();
        assert!(n_c >= 10, "only {n_c} nuclei on patch1");
        assert_eq!(n_c, seg.instances.len());
    }
}

#[cfg(not(feature = "bundled-weights"))]
#[test]
fn without_bundled_weights_default_is_not_available() {
    let mut m: *mut CsraModel = std::ptr::null_mut();
    unsafe {
        assert_eq!(
            csra_model_create_default(&mut m),
            CsraStatus::CSRA_NOT_AVAILABLE
        );
        assert!(m.is_null());
        let _ = c_count; // the helper is only used with the feature
    }
}
