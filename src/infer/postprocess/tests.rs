//! Tests of the whole pipeline on synthetic maps and the fixture tiles.

use super::*;
use polygons::{is_simple_polygon, signed_area};

fn disc(map: &mut [u8], w: usize, cx: f32, cy: f32, r: f32, class: u8) {
    let h = map.len() / w;
    for y in 0..h {
        for x in 0..w {
            let dx = x as f32 - cx;
            let dy = y as f32 - cy;
            if dx * dx + dy * dy <= r * r {
                map[y * w + x] = class;
            }
        }
    }
}

pub(super) fn check_valid(inst: &Instances) {
    let w = inst.width;
    for (k, it) in inst.instances.iter().enumerate() {
        assert_eq!(it.id as usize, k + 1);
        assert!(it.area > 0);
        assert!(
            it.polygon.len() >= 3,
            "instance {} polygon {:?}",
            it.id,
            it.polygon
        );
        assert!(
            is_simple_polygon(&it.polygon),
            "instance {} polygon {:?}",
            it.id,
            it.polygon
        );
        assert!(signed_area(&it.polygon) > 0.0);
        let [x0, y0, x1, y1] = it.bbox;
        assert!(x0 < x1 && y0 < y1 && x1 as usize <= w && y1 as usize <= inst.height);
        for p in &it.polygon {
            assert!(
                p[0] >= x0 as f32 && p[0] <= x1 as f32 && p[1] >= y0 as f32 && p[1] <= y1 as f32
            );
        }
        // Area, centroid, 4-connectivity of the instance.
        let mut px = Vec::new();
        for y in y0..y1 {
            for x in x0..x1 {
                if inst.labels[y as usize * w + x as usize] == it.id {
                    px.push((x as usize, y as usize));
                }
            }
        }
        assert_eq!(px.len() as u32, it.area);
        assert!(it.centroid[0] > x0 as f32 && it.centroid[0] < x1 as f32);
        assert!(it.centroid[1] > y0 as f32 && it.centroid[1] < y1 as f32);
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![px[0]];
        seen.insert(px[0]);
        while let Some((x, y)) = stack.pop() {
            for (nx, ny) in [
                (x.wrapping_sub(1), y),
                (x + 1, y),
                (x, y.wrapping_sub(1)),
                (x, y + 1),
            ] {
                if nx < w
                    && ny < inst.height
                    && inst.labels[ny * w + nx] == it.id
                    && seen.insert((nx, ny))
                {
                    stack.push((nx, ny));
                }
            }
        }
        assert_eq!(
            seen.len(),
            px.len(),
            "instance {} is not 4-connected",
            it.id
        );
        // Raw outline area equals pixel area plus any holes.
        let raw = polygons::region_outline(&inst.labels, w, it.bbox, it.id);
        let raw_f: Vec<[f32; 2]> = raw.iter().map(|p| [p[0] as f32, p[1] as f32]).collect();
        assert!(polygons::is_simple_polygon(&raw_f));
        assert!(signed_area(&raw_f) >= it.area as f64);
    }
    // Ids in raster order of first pixel.
    let mut seen = 0u32;
    for &l in &inst.labels {
        if l > seen {
            assert_eq!(l, seen + 1);
            seen = l;
        }
    }
    assert_eq!(seen as usize, inst.instances.len());
}

#[test]
fn split_classes_option() {
    // A 10 x 20 block, left half class 1, right half class 2.
    let (w, h) = (30, 16);
    let mut m = vec![0u8; w * h];
    for y in 3..13 {
        for x in 5..25 {
            m[y * w + x] = if x < 15 { 1 } else { 2 };
        }
    }
    let cfg = PostprocessConfig::default();
    let r = instances_from_class_map(&m, w, h, &cfg);
    assert_eq!(r.instances.len(), 1);
    assert_eq!(r.instances[0].class, 1); // tie -> lowest class id
    let cfg = PostprocessConfig {
        split_classes: true,
        ..cfg
    };
    let r = instances_from_class_map(&m, w, h, &cfg);
    check_valid(&r);
    assert_eq!(r.instances.len(), 2);
    assert_eq!((r.instances[0].class, r.instances[0].area), (1, 100));
    assert_eq!((r.instances[1].class, r.instances[1].area), (2, 100));
}

#[test]
fn all_background() {
    let cfg = PostprocessConfig::default();
    let r = instances_from_class_map(&vec![0u8; 64 * 48], 64, 48, &cfg);
    assert!(r.instances.is_empty());
    assert!(r.labels.iter().all(|&l| l == 0));
    let probs = vec![0.25f32; 4 * 10 * 10];
    let r = instances_from_probs(&probs, 4, 10, 10, &cfg); // ties -> background
    assert!(r.instances.is_empty());
}

#[test]
fn all_foreground_is_one_instance() {
    let cfg = PostprocessConfig::default();
    let r = instances_from_class_map(&vec![2u8; 20 * 20], 20, 20, &cfg);
    assert_eq!(r.instances.len(), 1);
    assert_eq!(r.instances[0].area, 400);
    assert_eq!(r.instances[0].polygon.len(), 4);
    check_valid(&r);
}

#[test]
fn single_disc_stays_one() {
    let (w, h) = (64, 64);
    let mut m = vec![0u8; w * h];
    disc(&mut m, w, 30.0, 31.0, 12.0, 1);
    let r = instances_from_class_map(&m, w, h, &PostprocessConfig::default());
    assert_eq!(r.instances.len(), 1);
    let it = &r.instances[0];
    let px = m.iter().filter(|&&c| c != 0).count() as u32;
    assert_eq!(it.area, px);
    assert!((it.centroid[0] - 30.5).abs() < 0.01 && (it.centroid[1] - 31.5).abs() < 0.01);
    let a = signed_area(&it.polygon);
    assert!(
        (a - px as f64).abs() / (px as f64) < 0.05,
        "polygon area {a} vs {px}"
    );
    check_valid(&r);
}

#[test]
fn overlapping_discs_split_in_two() {
    let (w, h) = (80, 60);
    let mut m = vec![0u8; w * h];
    disc(&mut m, w, 25.0, 30.0, 12.0, 1);
    disc(&mut m, w, 45.0, 30.0, 12.0, 2);
    let r = instances_from_class_map(&m, w, h, &PostprocessConfig::default());
    assert_eq!(r.instances.len(), 2);
    // The split line lies near x = 35; each part takes its class.
    assert_eq!(r.instances[0].class, 1);
    assert_eq!(r.instances[1].class, 2);
    assert!(r.instances[0].centroid[0] < 33.0 && r.instances[1].centroid[0] > 37.0);
    let total: u32 = r.instances.iter().map(|i| i.area).sum();
    assert_eq!(total as usize, m.iter().filter(|&&c| c != 0).count());
    check_valid(&r);
    // Slightly different radii too.
    let mut m = vec![0u8; w * h];
    disc(&mut m, w, 24.0, 30.0, 10.0, 1);
    disc(&mut m, w, 44.0, 28.0, 13.0, 1);
    let r = instances_from_class_map(&m, w, h, &PostprocessConfig::default());
    assert_eq!(r.instances.len(), 2);
    check_valid(&r);
}

#[test]
fn min_area_drop_and_one_pixel_objects() {
    let (w, h) = (20, 20);
    let mut m = vec![0u8; w * h];
    m[2 * w + 3] = 1; // 1 pixel
    disc(&mut m, w, 12.0, 12.0, 3.0, 1); // 29 px
    let r = instances_from_class_map(&m, w, h, &PostprocessConfig::default());
    assert_eq!(r.instances.len(), 1);
    assert_eq!(r.labels[2 * w + 3], 0);
    let cfg = PostprocessConfig {
        min_area: 1,
        ..Default::default()
    };
    let r = instances_from_class_map(&m, w, h, &cfg);
    assert_eq!(r.instances.len(), 2);
    let one = &r.instances[0];
    assert_eq!((one.area, one.bbox), (1, [3, 2, 4, 3]));
    assert_eq!(one.centroid, [3.5, 2.5]);
    assert_eq!(signed_area(&one.polygon), 1.0);
    check_valid(&r);
}

#[test]
fn class_majority_and_score() {
    // 3 classes + background; a 4x4 block with 9 px class 2, 7 px class 1.
    let (w, h) = (8, 8);
    let n = w * h;
    let nc = 3;
    let mut probs = vec![0f32; nc * n];
    probs[..n].fill(1.0);
    for y in 2..6 {
        for x in 2..6 {
            let i = y * w + x;
            probs[i] = 0.0;
            let k = (y - 2) * 4 + (x - 2);
            if k < 9 {
                probs[2 * n + i] = 0.8;
                probs[n + i] = 0.2;
            } else {
                probs[n + i] = 0.6;
                probs[2 * n + i] = 0.4;
            }
        }
    }
    let r = instances_from_probs(&probs, nc, w, h, &PostprocessConfig::default());
    assert_eq!(r.instances.len(), 1);
    let it = &r.instances[0];
    assert_eq!(it.class, 2);
    let expect = (9.0 * 0.8 + 7.0 * 0.4) / 16.0;
    assert!((it.score - expect).abs() < 1e-5);
    assert_eq!(it.bbox, [2, 2, 6, 6]);
    // Tie -> lowest class id.
    let mut m = vec![0u8; n];
    for (k, y) in (2..6).enumerate() {
        for x in 2..6 {
            m[y * w + x] = if k < 2 { 3 } else { 2 };
        }
    }
    let r = instances_from_class_map(&m, w, h, &PostprocessConfig::default());
    assert_eq!(r.instances.len(), 1);
    assert_eq!(r.instances[0].class, 2);
    assert_eq!(r.instances[0].score, 1.0);
}

#[test]
fn border_objects_and_thin_shapes() {
    let (w, h) = (40, 30);
    let mut m = vec![0u8; w * h];
    disc(&mut m, w, 0.0, 0.0, 8.0, 1); // corner quarter disc
    disc(&mut m, w, 39.0, 15.0, 6.0, 2); // right border half disc
    for x in 5..30 {
        m[25 * w + x] = 1; // 1-px thick line
    }
    for y in 10..29 {
        m[y * w + 15] = 3; // 1-px thick vertical line, touching the horizontal one
    }
    // Ring with a hole.
    for y in 8..16 {
        for x in 22..30 {
            if !(10..14).contains(&y) || !(24..28).contains(&x) {
                m[y * w + x] = 1;
            }
        }
    }
    let r = instances_from_class_map(&m, w, h, &PostprocessConfig::default());
    check_valid(&r);
    assert!(r.instances.len() >= 4, "{}", r.instances.len());
    assert_eq!(r.instances[0].bbox[0], 0);
    assert_eq!(r.instances[0].bbox[1], 0);
    assert!(r.instances.iter().any(|i| i.bbox[2] as usize == w));
}

#[test]
fn random_blobs_give_valid_polygons_and_are_deterministic() {
    // Many random overlapping discs and speckle: polygons must be simple.
    let (w, h) = (128, 96);
    let mut state = 12345u64;
    let mut rnd = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f32) / (1u64 << 31) as f32
    };
    let mut total = 0;
    for _round in 0..6 {
        let mut m = vec![0u8; w * h];
        for _ in 0..40 {
            let (cx, cy, r) = (rnd() * w as f32, rnd() * h as f32, 1.0 + rnd() * 9.0);
            let c = 1 + (rnd() * 4.0) as u8;
            disc(&mut m, w, cx, cy, r, c);
        }
        for _ in 0..800 {
            let i = (rnd() * (w * h) as f32) as usize % (w * h);
            m[i] = if rnd() < 0.5 {
                0
            } else {
                1 + (rnd() * 4.0) as u8
            };
        }
        for min_area in [1, 10] {
            let cfg = PostprocessConfig {
                min_area,
                ..Default::default()
            };
            let r = instances_from_class_map(&m, w, h, &cfg);
            check_valid(&r);
            total += r.instances.len();
            let r2 = instances_from_class_map(&m, w, h, &cfg);
            assert_eq!(r.labels, r2.labels);
        }
    }
    assert!(total > 100);
}

fn fixture_dir() -> std::path::PathBuf {
    let root =
        std::env::var("CSRANET_ROOT").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    std::path::Path::new(&root).join("tests/fixtures/tiles")
}

#[test]
fn fixture_tiles_instance_count() {
    let dir = fixture_dir();
    for k in 1..=3 {
        let t = image::open(dir.join(format!("patch{k}_type.png")))
            .expect("type png")
            .to_luma8();
        let gt = image::open(dir.join(format!("patch{k}_inst.png")))
            .expect("inst png")
            .to_luma16();
        let (w, h) = (t.width() as usize, t.height() as usize);
        let mut ids: Vec<u16> = gt.as_raw().iter().copied().filter(|&v| v != 0).collect();
        ids.sort_unstable();
        ids.dedup();
        let cfg = PostprocessConfig::default();
        let r = instances_from_class_map(t.as_raw(), w, h, &cfg);
        check_valid(&r);
        let (got, want) = (r.instances.len() as f64, ids.len() as f64);
        assert!(
            (got - want).abs() <= (0.2 * want).max(3.0),
            "patch{k}: {got} instances vs {want} in GT"
        );
    }
}
