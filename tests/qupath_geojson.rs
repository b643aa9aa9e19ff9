//! `csranet segment` GeoJSON against what QuPath 0.6's importer (drag and drop, File > Import
//! objects) needs, as its reader is written (`qupath-core`, v0.6.0):
//!
//! - `PathIO.readObjects`: a `.geojson` file holding a `FeatureCollection`;
//! - `PathObjectTypeAdapters.PathObjectTypeAdapter.read`: `id` a UUID string (else ignored),
//!   `properties.objectType` `"detection"` (anything unknown becomes an annotation),
//!   `measurements` an object of numbers;
//! - `GsonTools.PathClassTypeAdapter.read`: `classification` an object with `name` AND `color`
//!   (an object with a name but no colour throws), colour an array of 3 (or 4) ints;
//! - `ROITypeAdapters.parsePolygon`: JTS `LinearRing`s, which must be closed with at least 4
//!   positions (else an exception), and polygons should be valid (simple, non-zero area) for
//!   QuPath's area measurements and geometry operations.
//!
//! Checked on the CLI's output for a fixture tile (one pass) and a wide image (tiled), every
//! polygon tested for self-intersection.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("qupath-geojson-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn segment(image: &Path, out: &Path, extra: &[&str]) -> Value {
    let o = Command::new(env!("CARGO_BIN_EXE_csranet"))
        .arg("segment")
        .arg(image)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "csranet segment failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let name = image.file_stem().unwrap().to_string_lossy();
    let text = std::fs::read_to_string(out.join(format!("{name}.geojson"))).unwrap();
    serde_json::from_str(&text).expect("valid JSON")
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Whether segments p1-p2 and q1-q2 intersect (touching counts).
fn segments_intersect(p1: [f64; 2], p2: [f64; 2], q1: [f64; 2], q2: [f64; 2]) -> bool {
    fn orient(a: [f64; 2], b: [f64; 2], c: [f64; 2]) -> f64 {
        (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    }
    fn on(a: [f64; 2], b: [f64; 2], c: [f64; 2]) -> bool {
        c[0] >= a[0].min(b[0])
            && c[0] <= a[0].max(b[0])
            && c[1] >= a[1].min(b[1])
            && c[1] <= a[1].max(b[1])
    }
    let (d1, d2) = (orient(q1, q2, p1), orient(q1, q2, p2));
    let (d3, d4) = (orient(p1, p2, q1), orient(p1, p2, q2));
    if ((d1 > 0.0 && d2 < 0.0) || (d1 < 0.0 && d2 > 0.0))
        && ((d3 > 0.0 && d4 < 0.0) || (d3 < 0.0 && d4 > 0.0))
    {
        return true;
    }
    (d1 == 0.0 && on(q1, q2, p1))
        || (d2 == 0.0 && on(q1, q2, p2))
        || (d3 == 0.0 && on(p1, p2, q1))
        || (d4 == 0.0 && on(p1, p2, q2))
}

/// A closed ring is simple: no two non-adjacent edges meet, no repeated vertex.
fn simple(ring: &[[f64; 2]]) -> bool {
    let n = ring.len() - 1; // edges; ring[n] == ring[0]
    for i in 0..n {
        for j in i + 1..n {
            if j == i + 1 || (i == 0 && j == n - 1) {
                continue; // adjacent edges share a vertex
            }
            if segments_intersect(ring[i], ring[i + 1], ring[j], ring[j + 1]) {
                return false;
            }
        }
    }
    let mut pts: Vec<_> = ring[..n].to_vec();
    pts.sort_by(|a, b| a.partial_cmp(b).unwrap());
    pts.windows(2).all(|w| w[0] != w[1])
}

fn shoelace(ring: &[[f64; 2]]) -> f64 {
    ring.windows(2)
        .map(|w| w[0][0] * w[1][1] - w[1][0] * w[0][1])
        .sum::<f64>()
        / 2.0
}

/// Checks every feature; returns (features, non-simple polygons).
fn check(geo: &Value, width: f64, height: f64) -> (usize, usize) {
    assert_eq!(geo["type"], "FeatureCollection");
    let feats = geo["features"].as_array().expect("features array");
    let mut ids = std::collections::HashSet::new();
    let mut not_simple = 0;
    for (k, f) in feats.iter().enumerate() {
        assert_eq!(f["type"], "Feature", "feature {k}");
        let id = f["id"].as_str().expect("id string");
        assert!(is_uuid(id), "feature {k}: id {id} is not a UUID");
        assert!(ids.insert(id.to_string()), "feature {k}: duplicate id {id}");
        let p = &f["properties"];
        assert_eq!(p["objectType"], "detection", "feature {k}");
        let c = &p["classification"];
        let name = c["name"].as_str().expect("classification.name");
        assert!(
            !name.is_empty() && name != "background",
            "feature {k}: class {name}"
        );
        let colour = c["color"].as_array().expect("classification.color");
        assert_eq!(colour.len(), 3, "feature {k}");
        for v in colour {
            let v = v.as_u64().expect("integer colour");
            assert!(v <= 255, "feature {k}: colour {v}");
        }
        let m = p["measurements"].as_object().expect("measurements object");
        assert!(!m.is_empty(), "feature {k}");
        for (key, v) in m {
            assert!(
                v.as_f64().is_some_and(f64::is_finite),
                "feature {k}: {key} = {v}"
            );
        }
        assert_eq!(f["geometry"]["type"], "Polygon", "feature {k}");
        let rings = f["geometry"]["coordinates"].as_array().unwrap();
        assert_eq!(rings.len(), 1, "feature {k}: no holes expected");
        let ring: Vec<[f64; 2]> = serde_json::from_value(rings[0].clone()).unwrap();
        assert!(
            ring.len() >= 4,
            "feature {k}: a LinearRing needs >= 4 positions"
        );
        assert_eq!(ring.first(), ring.last(), "feature {k}: ring not closed");
        for pt in &ring {
            assert!(
                pt[0].is_finite() && pt[1].is_finite(),
                "feature {k}: {pt:?}"
            );
            assert!(
                (0.0..=width).contains(&pt[0]) && (0.0..=height).contains(&pt[1]),
                "feature {k}: {pt:?} outside the image"
            );
        }
        assert!(
            shoelace(&ring).abs() > 0.0,
            "feature {k}: zero-area polygon"
        );
        if !simple(&ring) {
            not_simple += 1;
            eprintln!("feature {k} ({name}): self-intersecting ring {ring:?}");
        }
    }
    (feats.len(), not_simple)
}

#[test]
fn segment_geojson_imports_into_qupath() {
    let fixtures = root().join("tests/fixtures/tiles");
    let out = scratch("tile");
    let geo = segment(&fixtures.join("patch1.png"), &out, &[]);
    let (n, bad) = check(&geo, 256.0, 256.0);
    println!("patch1.geojson: {n} detections, {bad} self-intersecting");
    assert!(n > 0);
    assert_eq!(bad, 0, "self-intersecting polygons (see stderr)");

    // A tiled run (seam merging) of a wider image.
    let out = scratch("tiled");
    let tile = image::open(fixtures.join("he_500.png")).unwrap().to_rgb8();
    let wide = image::RgbImage::from_fn(1100, 300, |x, y| *tile.get_pixel(x % 500, y));
    let path = out.join("wide.png");
    wide.save(&path).unwrap();
    let geo = segment(&path, &out, &["--tile-size", "256", "--overlap", "64"]);
    let (n, bad) = check(&geo, 1100.0, 300.0);
    println!("wide.geojson (tiled): {n} detections, {bad} self-intersecting");
    assert!(n > 0);
    assert_eq!(bad, 0, "self-intersecting polygons (see stderr)");
}
