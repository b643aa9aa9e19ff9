//! Segmentations as GeoJSON in QuPath's format (QuPath 0.4 and later).
//!
//! A `FeatureCollection` with one feature per nucleus instance:
//!
//! ```json
//! {"type": "Feature",
//!  "id": "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed",
//!  "geometry": {"type": "Polygon", "coordinates": [[[x, y], ..., [x0, y0]]]},
//!  "properties": {"objectType": "detection",
//!                 "classification": {"name": "Epithelial", "color": [255, 140, 0]},
//!                 "isLocked": false,
//!                 "measurements": {"Area px^2": 85.0, "Score": 0.91,
//!                                  "Centroid X px": 12.5, "Centroid Y px": 40.1}}}
//! ```
//!
//! This is what QuPath's own exporter writes (`PathObjectTypeAdapters`): the object type in
//! `properties.objectType`, the class as `{name, color: [r, g, b]}`, measurements as a map
//! name -> number (the format since QuPath 0.4; older versions wrote a list of
//! `{name, value}`), and a UUID string as the feature id. Ids here are UUID-shaped (version 4
//! layout) but derived deterministically from the instance, so the same segmentation always gives
//! the same file.
//!
//! Coordinates are pixels of the full-resolution image with the origin at its top-left corner, in
//! the pixel-corner convention of [`crate::infer::polygons`] (QuPath's convention too). Rings are
//! closed explicitly (the first point is repeated at the end), as GeoJSON requires.

use crate::infer::{Instance, Segmentation};
use crate::model::Classes;
use serde_json::{json, Map, Value};

/// Names of the measurements written for each detection.
pub const MEASUREMENTS: [&str; 4] = ["Area px^2", "Score", "Centroid X px", "Centroid Y px"];

/// A deterministic, UUID-shaped id for instance `index` of a segmentation (version-4 layout:
/// `xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`, `y` in `8..b`).
pub fn feature_id(seed: u64, index: u64) -> String {
    fn mix(mut z: u64) -> u64 {
        // splitmix64 finaliser
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    let hi = mix(seed ^ mix(index));
    let lo = mix(hi ^ index.rotate_left(32));
    let hi = (hi & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000;
    let lo = (lo & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0xFFFF,
        lo >> 48,
        lo & 0xFFFF_FFFF_FFFF
    )
}

/// A seed for [`feature_id`] from the segmentation's content (size and instances).
fn content_seed(seg: &Segmentation) -> u64 {
    // FNV-1a over a few summary numbers of every instance.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |v: u64| {
        for b in v.to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01B3);
        }
    };
    eat(seg.width as u64);
    eat(seg.height as u64);
    for i in &seg.instances {
        eat(i.area as u64);
        eat(i.centroid[0].to_bits() as u64 | ((i.centroid[1].to_bits() as u64) << 32));
        eat(i.class as u64);
    }
    h
}

/// The closed exterior ring of an instance's polygon (first point repeated at the end).
pub fn closed_ring(polygon: &[[f32; 2]]) -> Vec<[f64; 2]> {
    let mut ring: Vec<[f64; 2]> = polygon.iter().map(|p| [p[0] as f64, p[1] as f64]).collect();
    if let (Some(&first), Some(&last)) = (ring.first(), ring.last()) {
        if first != last {
            ring.push(first);
        }
    }
    ring
}

/// One QuPath detection feature. `name` and `colour` are the instance's class; `id` its
/// feature id.
pub fn instance_feature(inst: &Instance, id: &str, name: &str, colour: [u8; 3]) -> Value {
    let mut measurements = Map::new();
    // f32 values written with their shortest decimal form (0.75, not 0.7500000298...).
    let short = |v: f32| v.to_string().parse::<f64>().unwrap_or(f64::NAN);
    let values = [
        inst.area as f64,
        short(inst.score),
        short(inst.centroid[0]),
        short(inst.centroid[1]),
    ];
    for (k, v) in MEASUREMENTS.iter().zip(values) {
        // QuPath reads measurements as numbers; JSON has no NaN, so leave such values out.
        if v.is_finite() {
            measurements.insert(k.to_string(), json!(v));
        }
    }
    json!({
        "type": "Feature",
        "id": id,
        "geometry": {
            "type": "Polygon",
            "coordinates": [closed_ring(&inst.polygon)],
        },
        "properties": {
            "objectType": "detection",
            "classification": {"name": name, "color": colour},
            "isLocked": false,
            "measurements": measurements,
        }
    })
}

/// The segmentation as a QuPath GeoJSON `FeatureCollection` of detections.
///
/// `class_names[c]` and `colours[c]` name and colour class id `c` (index 0 is the background);
/// classes beyond either list are named `class N` and drawn grey. Instances whose closed ring
/// would have fewer than 4 positions (which the post-processing never produces) are skipped:
/// QuPath's GeoJSON reader rejects the whole file on one such ring.
pub fn to_geojson(seg: &Segmentation, class_names: &[&str], colours: &[[u8; 3]]) -> Value {
    let seed = content_seed(seg);
    let features: Vec<Value> = seg
        .instances
        .iter()
        .enumerate()
        .filter(|(_, inst)| closed_ring(&inst.polygon).len() >= 4)
        .map(|(i, inst)| {
            let c = inst.class as usize;
            let name = class_names
                .get(c)
                .map(|s| s.to_string())
                .unwrap_or_else(|| format!("class {c}"));
            let colour = colours.get(c).copied().unwrap_or([128, 128, 128]);
            instance_feature(inst, &feature_id(seed, i as u64), &name, colour)
        })
        .collect();
    json!({"type": "FeatureCollection", "features": features})
}

/// [`to_geojson`] with a model's classes ([`crate::CsraNet::classes`]): names written as
/// QuPath writes them ([`Classes::qupath_names`], e.g. `other` becomes `Other`, QuPath's
/// built-in class) with the model's colours.
pub fn to_geojson_classes(seg: &Segmentation, classes: &Classes) -> Value {
    let names = classes.qupath_names();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    to_geojson(seg, &refs, classes.colours())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(x: f32, y: f32, s: f32) -> Vec<[f32; 2]> {
        vec![[x, y], [x + s, y], [x + s, y + s], [x, y + s]]
    }

    fn seg() -> Segmentation {
        let inst = |id: u32, class: u32, x: f32| Instance {
            id,
            class,
            score: 0.75,
            area: 16,
            centroid: [x + 2.0, 6.0],
            bbox: [x as u32, 4, x as u32 + 4, 8],
            polygon: square(x, 4.0, 4.0),
        };
        Segmentation {
            width: 64,
            height: 32,
            num_classes: 5,
            class_map: vec![0; 64 * 32],
            probabilities: None,
            labels: vec![0; 64 * 32],
            instances: vec![inst(1, 3, 2.0), inst(2, 1, 20.0), inst(3, 9, 40.0)],
        }
    }

    #[test]
    fn qupath_feature_collection() {
        let s = seg();
        let names = [
            "background",
            "Other",
            "Inflammatory",
            "Epithelial",
            "Spindle-shaped",
        ];
        let colours = [[0, 0, 0], [1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]];
        let v = to_geojson(&s, &names, &colours);
        // Valid JSON that round-trips through text.
        let text = serde_json::to_string(&v).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
        assert_eq!(v["type"], "FeatureCollection");
        let feats = v["features"].as_array().unwrap();
        assert_eq!(feats.len(), 3);
        let mut ids = std::collections::HashSet::new();
        for (f, inst) in feats.iter().zip(&s.instances) {
            assert_eq!(f["type"], "Feature");
            assert_eq!(f["properties"]["objectType"], "detection");
            assert_eq!(f["properties"]["isLocked"], false);
            let id = f["id"].as_str().unwrap();
            assert_eq!(id.len(), 36);
            assert_eq!(&id[14..15], "4");
            assert!(ids.insert(id.to_string()), "ids must be unique");
            assert_eq!(f["geometry"]["type"], "Polygon");
            let rings = f["geometry"]["coordinates"].as_array().unwrap();
            assert_eq!(rings.len(), 1);
            let ring: Vec<[f64; 2]> = serde_json::from_value(rings[0].clone()).unwrap();
            assert_eq!(ring.first(), ring.last(), "ring must be closed");
            assert_eq!(ring.len(), inst.polygon.len() + 1);
            for (p, q) in ring.iter().zip(&inst.polygon) {
                assert_eq!(*p, [q[0] as f64, q[1] as f64]);
            }
            let m = &f["properties"]["measurements"];
            assert_eq!(m["Area px^2"], 16.0);
            assert_eq!(m["Score"], 0.75);
            assert_eq!(m["Centroid X px"], inst.centroid[0] as f64);
            assert_eq!(m["Centroid Y px"], 6.0);
        }
        let cls = &feats[0]["properties"]["classification"];
        assert_eq!(cls["name"], "Epithelial");
        assert_eq!(cls["color"], json!([7, 8, 9]));
        assert_eq!(feats[1]["properties"]["classification"]["name"], "Other");
        // Unknown class id: generic name, grey.
        let cls = &feats[2]["properties"]["classification"];
        assert_eq!(cls["name"], "class 9");
        assert_eq!(cls["color"], json!([128, 128, 128]));
        // Deterministic.
        assert_eq!(to_geojson(&s, &names, &colours), v);
    }

    #[test]
    fn names_and_colours_from_the_model() {
        let s = seg();
        let v = to_geojson_classes(&s, &Classes::defaults(5));
        let class = |k: usize| v["features"][k]["properties"]["classification"].clone();
        assert_eq!(
            class(0),
            json!({"name": "Epithelial", "color": [255, 140, 0]})
        );
        // QuPath's own "Other", in QuPath's colour (QuPath would ignore another).
        assert_eq!(class(1), json!({"name": "Other", "color": [255, 200, 0]}));
        assert_eq!(class(2)["name"], "class 9");
        let custom = Classes::new(
            (0..5).map(|i| format!("type {i}")).collect(),
            (0..5).map(|i| [i as u8, 0, 0]).collect(),
        )
        .unwrap();
        let v = to_geojson_classes(&s, &custom);
        let class = |k: usize| v["features"][k]["properties"]["classification"].clone();
        assert_eq!(class(0), json!({"name": "Type 3", "color": [3, 0, 0]}));
        assert_eq!(class(1), json!({"name": "Type 1", "color": [1, 0, 0]}));
    }

    #[test]
    fn ring_closing_and_non_finite_measurements() {
        assert_eq!(
            closed_ring(&[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]),
            vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]
        );
        // Already closed: unchanged.
        assert_eq!(closed_ring(&[[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]).len(), 3);
        // Such a degenerate (already closed, 3-point) polygon is left out of the GeoJSON.
        let mut d = seg();
        let n = d.instances.len();
        d.instances[0].polygon = vec![[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]];
        let v = to_geojson(&d, &[], &[]);
        assert_eq!(v["features"].as_array().unwrap().len(), n - 1);
        let mut s = seg();
        s.instances[1].score = 0.1;
        let v = to_geojson(&s, &[], &[]);
        let m = &v["features"][1]["properties"]["measurements"];
        assert_eq!(m["Score"].to_string(), "0.1", "shortest form of the f32");
        s.instances[0].score = f32::NAN;
        let v = to_geojson(&s, &[], &[]);
        let m = &v["features"][0]["properties"]["measurements"];
        assert!(m.get("Score").is_none());
        assert!(m.get("Area px^2").is_some());
        assert!(serde_json::to_string(&v).is_ok());
    }

    #[test]
    fn ids_are_uuid_shaped_and_distinct() {
        let a = feature_id(1, 0);
        let b = feature_id(1, 1);
        let c = feature_id(2, 0);
        assert!(a != b && a != c);
        for id in [a, b, c] {
            let parts: Vec<&str> = id.split('-').collect();
            assert_eq!(
                parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12]
            );
            assert!(id.chars().all(|ch| ch == '-' || ch.is_ascii_hexdigit()));
            assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"));
        }
    }
}
