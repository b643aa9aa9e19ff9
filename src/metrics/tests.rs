//! Checks every metric against `tests/fixtures/metrics/reference.json`, written by
//! `tools/metrics/make_metric_fixture.py` from real tiles and synthetic predictions.

use super::*;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;

const TOL: f64 = 1e-6;

/// Project root: `$CSRANET_ROOT` if set, else this crate's manifest directory.
fn root() -> PathBuf {
    std::env::var_os("CSRANET_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

fn fixture_dir() -> PathBuf {
    root().join("tests/fixtures/metrics")
}

fn reference() -> Value {
    let p = fixture_dir().join("reference.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

fn read_u16(rel: &str) -> InstanceMap {
    let p = fixture_dir().join(rel);
    let img = image::open(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .into_luma16();
    let (w, h) = img.dimensions();
    InstanceMap::new(
        w as usize,
        h as usize,
        img.into_raw().into_iter().map(u32::from).collect(),
    )
    .unwrap()
}

fn read_u8(rel: &str) -> Vec<u8> {
    let p = fixture_dir().join(rel);
    image::open(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .into_luma8()
        .into_raw()
}

fn classes(v: &Value) -> InstanceClasses {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, c)| (k.parse::<u32>().unwrap(), c.as_u64().unwrap() as u8))
        .collect()
}

fn num(v: &Value) -> f64 {
    if v.is_null() {
        f64::NAN
    } else {
        v.as_f64().unwrap()
    }
}

/// Records the largest |ours - reference| and fails on a mismatch (NaN must match null).
struct Checker {
    max_diff: f64,
    checked: usize,
}

impl Checker {
    fn check(&mut self, what: &str, ours: f64, reference: &Value) {
        let r = num(reference);
        self.checked += 1;
        if r.is_nan() || ours.is_nan() {
            assert!(
                r.is_nan() && ours.is_nan(),
                "{what}: ours {ours}, reference {r}"
            );
            return;
        }
        let d = (ours - r).abs();
        self.max_diff = self.max_diff.max(d);
        assert!(d < TOL, "{what}: ours {ours}, reference {r}, diff {d}");
    }
}

struct Pair {
    gt: InstanceMap,
    gt_class: InstanceClasses,
    gt_type: Vec<u8>,
    pred: InstanceMap,
    pred_class: InstanceClasses,
    pred_type: Vec<u8>,
    tissue: u32,
}

fn load_pairs(r: &Value) -> Vec<(String, Pair, Value)> {
    r["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let pred = read_u16(p["pred_inst"].as_str().unwrap());
            let pred_type = read_u8(p["pred_type"].as_str().unwrap());
            let pred_class = classes_from_class_map(&pred, &pred_type).unwrap();
            let name = p["name"].as_str().unwrap().to_string();
            assert_eq!(
                pred_class,
                classes(&p["pred_inst_class"]),
                "{name}: majority classes"
            );
            let pair = Pair {
                gt: read_u16(p["gt_inst"].as_str().unwrap()),
                gt_class: classes(&p["gt_inst_class"]),
                gt_type: read_u8(p["gt_type"].as_str().unwrap()),
                pred,
                pred_class,
                pred_type,
                tissue: p["tissue"].as_u64().unwrap() as u32,
            };
            (name, pair, p["expected"].clone())
        })
        .collect()
}

fn check_summary(c: &mut Checker, label: &str, ours: &MetricsSummary, r: &Value) {
    let s = serde_json::to_value(ours).unwrap();
    for key in ["precision", "recall", "f1", "miou"] {
        c.check(
            &format!("{label} pixel.{key}"),
            num(&s["pixel"][key]),
            &r["pixel"][key],
        );
    }
    for key in [
        "bpq", "mpq", "aji", "dice", "f1_det", "acc_type", "pq", "dq", "sq",
    ] {
        c.check(
            &format!("{label} instance.{key}"),
            num(&s["instance"][key]),
            &r["instance"][key],
        );
    }
    let names: Vec<&String> = ours.per_class.iter().map(|(n, _)| n).collect();
    let ref_names: Vec<&String> = r["per_class"].as_object().unwrap().keys().collect();
    assert_eq!(names, ref_names);
    for (name, _) in &ours.per_class {
        for key in ["precision", "recall", "f1", "iou", "pq", "f1_det"] {
            c.check(
                &format!("{label} per_class.{name}.{key}"),
                num(&s["per_class"][name][key]),
                &r["per_class"][name][key],
            );
        }
    }
    assert_eq!(ours.tiles as u64, r["tiles"].as_u64().unwrap());
}

#[test]
fn metrics_match_python_reference() {
    let r = reference();
    let k = r["num_classes"].as_u64().unwrap() as usize;
    let names: Vec<String> = r["class_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), k);
    assert_eq!(r["radius"].as_f64().unwrap(), instance::DETECTION_RADIUS);
    assert_eq!(r["ignore"].as_u64().unwrap(), IGNORE as u64);
    let pairs = load_pairs(&r);
    let mut c = Checker {
        max_diff: 0.0,
        checked: 0,
    };
    let mut with_tissue = Evaluator::new(names.clone());
    let mut without = Evaluator::new(names.clone());
    for (name, p, e) in &pairs {
        let gt = TileLabels {
            inst: &p.gt,
            inst_class: &p.gt_class,
            class_map: &p.gt_type,
        };
        let pred = TileLabels {
            inst: &p.pred,
            inst_class: &p.pred_class,
            class_map: &p.pred_type,
        };
        let t = with_tissue
            .add_tile(gt, pred, Some(p.tissue))
            .unwrap()
            .clone();
        without.add_tile(gt, pred, None).unwrap();
        assert_eq!(t.pq.tp as u64, e["tp"].as_u64().unwrap(), "{name} tp");
        assert_eq!(t.pq.fp as u64, e["fp"].as_u64().unwrap(), "{name} fp");
        assert_eq!(t.pq.fn_ as u64, e["fn"].as_u64().unwrap(), "{name} fn");
        c.check(&format!("{name} dq"), t.pq.dq, &e["dq"]);
        c.check(&format!("{name} sq"), t.pq.sq, &e["sq"]);
        c.check(&format!("{name} pq"), t.pq.pq, &e["pq"]);
        c.check(&format!("{name} bpq"), t.bpq, &e["bpq"]);
        c.check(&format!("{name} mpq"), t.mpq, &e["mpq"]);
        c.check(&format!("{name} aji"), t.aji, &e["aji"]);
        c.check(&format!("{name} dice"), t.dice, &e["dice"]);
        for (i, v) in t.class_pq.iter().enumerate() {
            c.check(
                &format!("{name} class_pq[{}]", i + 1),
                *v,
                &e["class_pq"][i],
            );
        }
        for g in 0..k {
            for q in 0..k {
                assert_eq!(
                    t.detection.paired(g, q),
                    e["det_paired"][g][q].as_u64().unwrap(),
                    "{name} paired {g} {q}"
                );
            }
            assert_eq!(
                t.detection.unpaired_gt(g),
                e["det_unpaired_gt"][g].as_u64().unwrap(),
                "{name} unpaired gt {g}"
            );
            assert_eq!(
                t.detection.unpaired_pred(g),
                e["det_unpaired_pred"][g].as_u64().unwrap(),
                "{name} unpaired pred {g}"
            );
        }
    }
    for g in 0..k {
        for q in 0..k {
            assert_eq!(
                with_tissue.confusion().get(g, q),
                r["confusion"][g][q].as_u64().unwrap(),
                "confusion {g} {q}"
            );
        }
    }
    check_summary(&mut c, "tissue", &with_tissue.summary(), &r["summary"]);
    check_summary(
        &mut c,
        "no-tissue",
        &without.summary(),
        &r["summary_no_tissue"],
    );
    // the fixture must exercise the per-tissue averaging: the two bPQ figures differ
    assert!((with_tissue.summary().instance.bpq - without.summary().instance.bpq).abs() > 1e-3);
    println!(
        "metrics vs reference: {} values, max |ours - reference| = {:e}",
        c.checked, c.max_diff
    );
}

#[test]
fn summary_json_shape_and_nan_as_null() {
    let r = reference();
    let names: Vec<String> = r["class_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let mut ev =
        Evaluator::new(names).with_tissue_names(vec!["t0".into(), "t1".into(), "t2".into()]);
    for (_, p, _) in load_pairs(&r) {
        ev.add_tile(
            TileLabels {
                inst: &p.gt,
                inst_class: &p.gt_class,
                class_map: &p.gt_type,
            },
            TileLabels {
                inst: &p.pred,
                inst_class: &p.pred_class,
                class_map: &p.pred_type,
            },
            Some(p.tissue),
        )
        .unwrap();
    }
    let s = ev.summary();
    let line = s.to_json();
    assert!(!line.contains('\n'));
    let v: Value = serde_json::from_str(&line).unwrap();
    for key in ["precision", "recall", "f1", "miou"] {
        assert!(v["pixel"][key].is_number(), "{key}");
    }
    for key in ["bpq", "mpq", "aji", "dice", "f1_det", "pq", "dq", "sq"] {
        assert!(v["instance"][key].is_number(), "{key}");
    }
    assert_eq!(v["tiles"], 8);
    // class_4 is never in the ground truth: recall and PQ are NaN -> null
    assert!(v["per_class"]["class_4"]["recall"].is_null());
    assert!(v["per_class"]["class_4"]["pq"].is_null());
    // keys in class order
    let keys: Vec<&String> = v["per_class"].as_object().unwrap().keys().collect();
    let pos: Vec<usize> = keys
        .iter()
        .map(|k| line.find(&format!("\"{k}\":{{")).unwrap())
        .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(v["per_tissue"].as_array().unwrap().len(), 3);
    assert_eq!(v["per_tissue"][1]["name"], "t2");
    // round trip (null reads back as NaN)
    let back: MetricsSummary = serde_json::from_str(&line).unwrap();
    assert!(back.per_class[3].1.recall.is_nan());
    assert_eq!(back.per_class.len(), s.per_class.len());
    assert!((back.instance.mpq - s.instance.mpq).abs() < 1e-12);
    assert_eq!(back.per_tissue.len(), 3);
}

#[test]
fn evaluator_errors_add_nothing() {
    let mut ev = Evaluator::new(vec!["bg".into(), "a".into()]);
    let m = InstanceMap::new(2, 1, vec![1, 0]).unwrap();
    let small = InstanceMap::new(1, 1, vec![1]).unwrap();
    let cls: InstanceClasses = HashMap::from([(1, 1)]);
    let bad: InstanceClasses = HashMap::from([(1, 4)]);
    let cm = [1u8, 0];
    let l = |inst, c| TileLabels {
        inst,
        inst_class: c,
        class_map: &cm,
    };
    assert!(ev.add_tile(l(&m, &cls), l(&small, &cls), None).is_err());
    assert!(ev.add_tile(l(&m, &cls), l(&m, &bad), None).is_err());
    assert!(ev
        .add_tile(
            l(&m, &cls),
            TileLabels {
                inst: &m,
                inst_class: &cls,
                class_map: &[1]
            },
            None
        )
        .is_err());
    assert!(ev
        .add_tile(
            l(&m, &cls),
            TileLabels {
                inst: &m,
                inst_class: &cls,
                class_map: &[2, 0]
            },
            None
        )
        .is_err());
    assert_eq!(ev.tiles(), 0);
    assert_eq!(ev.confusion().total(), 0);
    let t = ev.add_tile(l(&m, &cls), l(&m, &cls), None).unwrap();
    assert_eq!(t.pq.tp, 1);
    let s = ev.summary();
    assert_eq!(s.tiles, 1);
    assert_eq!(s.pixel.f1, 1.0);
    assert_eq!(s.instance.f1_det, 1.0);
    assert!(s.per_tissue.is_empty());
    let e = MetricsError::ClassOutOfRange {
        what: "x",
        class: 4,
        num_classes: 2,
    };
    assert!(e.to_string().contains("class 4"));
}

#[test]
fn empty_evaluator_is_all_nan() {
    let ev = Evaluator::new(vec!["bg".into(), "a".into(), "b".into()]);
    let s = ev.summary();
    assert_eq!(s.tiles, 0);
    assert!(s.instance.bpq.is_nan() && s.pixel.miou.is_nan() && s.instance.f1_det.is_nan());
    let v: Value = serde_json::from_str(&s.to_json()).unwrap();
    assert!(v["instance"]["mpq"].is_null());
}
