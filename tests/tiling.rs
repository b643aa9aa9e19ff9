//! Tile-size invariance: the same image gives the same nuclei whatever the tile size.
//!
//! A 1500 x 1000 H&E mosaic (the 500 x 500 fixture tile, repeated and mirrored so no two
//! copies line up with the tile grid the same way) is segmented with the trained `nuclei`
//! model (`models/nuclei-consep-gbm.safetensors`, tile-invariant by construction) in one pass and by tiles of 256, 512 and 1024 pixels (overlap: the model's default). Between every
//! pair of runs, at least 98% of the nuclei must be matched one-to-one (IoU > 0.5), and the
//! class of at least 97% of the matched ones must agree. The same holds through the C ABI's
//! tiled entry (`csra_segment_image`), and no two output polygons overlap.
use candle_core::Device;
use csranet::ffi::csra_last_error_message;
use csranet::ffi::model::{csra_model_create_from_safetensors, csra_model_free, CsraModel};
use csranet::ffi::segmentation::{
    csra_segment_image, csra_segment_options_default, csra_segmentation_free,
    csra_segmentation_instance, csra_segmentation_labels, csra_segmentation_num_instances,
    CsraImage, CsraInstance, CsraPixelFormat, CsraSegmentOptions, CsraSegmentation,
};
use csranet::ffi::CsraStatus;
use csranet::imaging::{ImageView, PixelFormat};
use csranet::infer::{segment_image, segment_tile, SegmentOptions, Segmentation};
use csranet::metrics::agreement::{agreement, Agreement};
use std::path::{Path, PathBuf};

fn weights_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/nuclei-consep-gbm.safetensors")
}

const W: usize = 1500;
const H: usize = 1000;

/// The fixture tile laid out 3 x 2, every other copy mirrored.
fn mosaic() -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiles/he_500.png");
    let tile = image::open(&p).expect("fixture tile").to_rgb8();
    let (tw, th) = (tile.width() as usize, tile.height() as usize);
    assert_eq!((tw, th), (500, 500));
    let mut out = vec![0u8; W * H * 3];
    for y in 0..H {
        for x in 0..W {
            let (cx, cy) = (x / tw, y / th);
            let (mut lx, mut ly) = (x % tw, y % th);
            if cx % 2 == 1 {
                lx = tw - 1 - lx;
            }
            if cy % 2 == 1 {
                ly = th - 1 - ly;
            }
            let px = tile.get_pixel(lx as u32, ly as u32).0;
            out[(y * W + x) * 3..(y * W + x) * 3 + 3].copy_from_slice(&px);
        }
    }
    out
}

fn classes(seg: &Segmentation) -> Vec<u32> {
    seg.instances.iter().map(|i| i.class).collect()
}

fn compare(name: &str, a: (&[u32], &[u32]), b: (&[u32], &[u32])) -> Agreement {
    let r = agreement(a.0, a.1, b.0, b.1);
    eprintln!(
        "{name}: {} vs {} nuclei, matched {:.2}%, class agreement {:.2}%",
        r.count_a,
        r.count_b,
        100.0 * r.matched_fraction(),
        100.0 * r.class_agreement()
    );
    r
}

fn assert_agree(name: &str, r: &Agreement) {
    assert!(
        r.count_a > 200,
        "{name}: too few nuclei ({}) to test",
        r.count_a
    );
    assert!(
        r.matched_fraction() >= 0.98,
        "{name}: only {:.2}% of nuclei matched",
        100.0 * r.matched_fraction()
    );
    assert!(
        r.class_agreement() >= 0.97,
        "{name}: classes agree for only {:.2}%",
        100.0 * r.class_agreement()
    );
}

/// Every instance's reported area is its pixel count in the label map, ids are `1..=n`,
/// and the polygons of distinct instances do not overlap by more than rounding (checked by
/// rasterising each polygon's pixel centres).
fn assert_consistent(name: &str, seg: &Segmentation) {
    let mut count = vec![0u32; seg.instances.len() + 1];
    for &l in &seg.labels {
        count[l as usize] += 1;
    }
    let mut owner = vec![0u32; seg.width * seg.height];
    let mut overlap_px = 0usize;
    for (k, inst) in seg.instances.iter().enumerate() {
        assert_eq!(inst.id as usize, k + 1, "{name}: ids must be 1..=n");
        assert_eq!(
            inst.area,
            count[k + 1],
            "{name}: instance {} reports {} px but holds {} in the label map",
            inst.id,
            inst.area,
            count[k + 1]
        );
        let [x0, y0, x1, y1] = inst.bbox;
        for y in y0..y1 {
            for x in x0..x1 {
                if inside(&inst.polygon, x as f32 + 0.5, y as f32 + 0.5) {
                    let o = &mut owner[y as usize * seg.width + x as usize];
                    if *o != 0 {
                        overlap_px += 1;
                    }
                    *o = inst.id;
                }
            }
        }
    }
    let total: u32 = seg.instances.iter().map(|i| i.area).sum();
    assert!(
        (overlap_px as f64) <= 0.01 * total as f64,
        "{name}: polygons overlap on {overlap_px} px ({total} px of nuclei)"
    );
}

/// Even-odd rule.
fn inside(poly: &[[f32; 2]], x: f32, y: f32) -> bool {
    let mut c = false;
    let n = poly.len();
    for i in 0..n {
        let (a, b) = (poly[i], poly[(i + n - 1) % n]);
        if (a[1] > y) != (b[1] > y) && x < (b[0] - a[0]) * (y - a[1]) / (b[1] - a[1]) + a[0] {
            c = !c;
        }
    }
    c
}

#[test]
fn tile_size_does_not_change_the_nuclei() {
    let bytes = csranet::io::weights::read_file(&weights_path()).unwrap();
    let model = csranet::io::weights::model_from_bytes(&bytes, None, &Device::Cpu).unwrap();
    assert!(
        model.config().tile_invariant(),
        "the nuclei model must be tile-invariant"
    );
    let img = mosaic();
    let view = ImageView::new(&img, W, H, W * 3, PixelFormat::Rgb8).unwrap();
    let opts = SegmentOptions {
        keep_probabilities: false,
        ..Default::default()
    };
    let one = segment_tile(&model, &view, &opts).unwrap();
    assert_consistent("one pass", &one);
    let mut runs = vec![("one pass".to_string(), one)];
    for tile in [256, 512, 1024] {
        let o = SegmentOptions {
            tile_size: tile,
            ..opts.clone()
        };
        let seg = segment_image(&model, &view, &o, &mut |_, _| true)
            .unwrap()
            .expect("not cancelled");
        assert_consistent(&format!("tile {tile}"), &seg);
        runs.push((format!("tile {tile}"), seg));
    }
    for i in 0..runs.len() {
        for j in i + 1..runs.len() {
            let name = format!("{} vs {}", runs[i].0, runs[j].0);
            let (a, b) = (&runs[i].1, &runs[j].1);
            let r = compare(&name, (&a.labels, &classes(a)), (&b.labels, &classes(b)));
            assert_agree(&name, &r);
        }
    }

    // The C ABI's tiled entry at 256 px tiles against the one pass.
    let (labels, cls) = unsafe { c_segment(&img, 256) };
    let r = compare(
        "C tile 256 vs one pass",
        (&labels, &cls),
        (&runs[0].1.labels, &classes(&runs[0].1)),
    );
    assert_agree("C tile 256 vs one pass", &r);
}

unsafe fn check(s: CsraStatus) {
    if s != CsraStatus::CSRA_OK {
        let m = std::ffi::CStr::from_ptr(csra_last_error_message());
        panic!("{s:?}: {}", m.to_string_lossy());
    }
}

/// Labels and classes of `csra_segment_image` on the mosaic with `tile`-pixel tiles.
unsafe fn c_segment(img: &[u8], tile: u32) -> (Vec<u32>, Vec<u32>) {
    let mut model: *mut CsraModel = std::ptr::null_mut();
    let path = std::ffi::CString::new(weights_path().to_str().unwrap()).unwrap();
    check(csra_model_create_from_safetensors(
        path.as_ptr(),
        &mut model,
    ));
    let mut o: CsraSegmentOptions = std::mem::zeroed();
    check(csra_segment_options_default(&mut o));
    o.tile_size = tile;
    o.keep_probabilities = 0;
    let image = CsraImage {
        data: img.as_ptr(),
        len: img.len(),
        width: W as u32,
        height: H as u32,
        stride: W * 3,
        format: CsraPixelFormat::CSRA_PIXEL_RGB8 as u32,
    };
    let mut seg: *mut CsraSegmentation = std::ptr::null_mut();
    check(csra_segment_image(
        model,
        &image,
        &o,
        None,
        std::ptr::null_mut(),
        &mut seg,
    ));
    let mut data: *const u32 = std::ptr::null();
    let mut len = 0usize;
    check(csra_segmentation_labels(seg, &mut data, &mut len));
    assert_eq!(len, W * H);
    let labels = std::slice::from_raw_parts(data, len).to_vec();
    let mut n = 0usize;
    check(csra_segmentation_num_instances(seg, &mut n));
    let mut cls = Vec::with_capacity(n);
    for i in 0..n {
        let mut inst: CsraInstance = std::mem::zeroed();
        check(csra_segmentation_instance(seg, i, &mut inst));
        assert_eq!(inst.id as usize, i + 1);
        cls.push(inst.class_id);
    }
    csra_segmentation_free(seg);
    csra_model_free(model);
    (labels, cls)
}
