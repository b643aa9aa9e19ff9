//! The `csranet` command-line tool, run as a program on the fixture tiles.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_csranet");

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiles")
}

/// A fresh scratch folder for one test.
fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .expect("run csranet")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Exits non-zero with an `error:` line and no panic.
fn assert_clean_failure(o: &Output, needle: &str) {
    let err = text(&o.stderr);
    assert!(!o.status.success(), "should fail; stderr: {err}");
    assert_ne!(o.status.code(), Some(101), "panicked: {err}");
    assert!(err.contains("error"), "no error message: {err}");
    assert!(err.contains(needle), "`{needle}` not in: {err}");
    assert!(
        !err.contains("panicked")
            && !err.contains("RUST_BACKTRACE")
            && !err.contains("stack backtrace"),
        "panic or backtrace: {err}"
    );
}

#[test]
fn segment_writes_geojson_overlay_and_table() {
    let out = scratch("segment");
    let img = fixtures().join("patch1.png");
    let o = run(&[
        "segment",
        img.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "stderr: {stderr}");
    if cfg!(feature = "bundled-weights") {
        assert!(
            stderr.contains("bundled lite-consep.safetensors"),
            "{stderr}"
        );
        assert!(!stderr.contains("WARNING"), "{stderr}");
    } else {
        assert!(
            stderr.contains("WARNING: using untrained (random) weights; results are meaningless"),
            "{stderr}"
        );
    }
    for col in ["class", "count", "mean score", "mean area"] {
        assert!(stdout.contains(col), "table lacks `{col}`: {stdout}");
    }
    for class in [
        "Other",
        "Inflammatory",
        "Epithelial",
        "Spindle-shaped",
        "all",
    ] {
        assert!(stdout.contains(class), "table lacks `{class}`: {stdout}");
    }

    let geo: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("patch1.geojson")).unwrap())
            .expect("valid JSON");
    assert_eq!(geo["type"], "FeatureCollection");
    let feats = geo["features"].as_array().unwrap();
    let total: usize = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("all "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .expect("an `all` row with a count");
    assert_eq!(feats.len(), total, "one feature per counted nucleus");
    if cfg!(feature = "bundled-weights") {
        assert!(
            total >= 10,
            "the trained default finds nuclei on patch1: {stdout}"
        );
    }
    for f in feats {
        assert_eq!(f["type"], "Feature");
        let p = &f["properties"];
        assert_eq!(p["objectType"], "detection");
        assert!(p["classification"]["name"].is_string());
        assert_eq!(p["classification"]["color"].as_array().unwrap().len(), 3);
        assert!(p["measurements"]["Area px^2"].as_f64().unwrap() > 0.0);
        assert_eq!(f["geometry"]["type"], "Polygon");
        let ring = f["geometry"]["coordinates"][0].as_array().unwrap();
        assert!(ring.len() >= 4);
        assert_eq!(ring.first(), ring.last(), "rings are closed");
        for pt in ring {
            let (x, y) = (pt[0].as_f64().unwrap(), pt[1].as_f64().unwrap());
            assert!((0.0..=256.0).contains(&x) && (0.0..=256.0).contains(&y));
        }
    }
    let ov = image::open(out.join("patch1_overlay.png")).expect("overlay PNG");
    assert_eq!((ov.width(), ov.height()), (256, 256));
}

#[test]
fn segment_large_image_by_tiles() {
    // Wider than 1024 px: goes through segment_image (overlapping tiles).
    let out = scratch("segment-large");
    let tile = image::open(fixtures().join("patch1.png"))
        .unwrap()
        .to_rgb8();
    let big = image::RgbImage::from_fn(1100, 96, |x, y| *tile.get_pixel(x % 256, y));
    let path = out.join("wide.png");
    big.save(&path).unwrap();
    let o = run(&[
        "segment",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--tile-size",
        "256",
        "--overlap",
        "64",
    ]);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    assert!(text(&o.stdout).contains("1100x96"));
    let geo: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("wide.geojson")).unwrap()).unwrap();
    for f in geo["features"].as_array().unwrap() {
        for pt in f["geometry"]["coordinates"][0].as_array().unwrap() {
            let x = pt[0].as_f64().unwrap();
            assert!((0.0..=1100.0).contains(&x));
        }
    }
    let ov = image::open(out.join("wide_overlay.png")).unwrap();
    assert_eq!((ov.width(), ov.height()), (1100, 96));
}

fn eval_json(args: &[&str]) -> Value {
    let o = run(args);
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    let last = stdout.lines().last().expect("output");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}"))
}

#[test]
fn eval_json_has_the_required_keys() {
    let data = fixtures();
    let pics = scratch("eval-overlays");
    let v = eval_json(&[
        "eval",
        "--data",
        data.to_str().unwrap(),
        "--json",
        "--overlays",
        pics.to_str().unwrap(),
        "--overlay-count",
        "2",
    ]);
    assert_eq!(v["tiles"], 3);
    for k in ["precision", "recall", "f1", "miou"] {
        assert!(v["pixel"].get(k).is_some(), "pixel.{k}");
    }
    for k in ["bpq", "mpq", "aji", "dice", "f1_det"] {
        assert!(v["instance"].get(k).is_some(), "instance.{k}");
    }
    assert!(v["per_class"].as_object().is_some_and(|m| !m.is_empty()));
    assert!(v["tiles_per_s"].as_f64().unwrap() > 0.0);
    // Two side-by-side pictures: three 256-px panels and two 4-px gaps.
    let mut names: Vec<_> = std::fs::read_dir(&pics)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["patch1.png", "patch2.png"]);
    let p = image::open(pics.join("patch1.png")).unwrap();
    assert_eq!((p.width(), p.height()), (3 * 256 + 2 * 4, 256));
}

#[test]
fn eval_postprocess_only_on_ground_truth() {
    let data = fixtures();
    let o = run(&[
        "eval",
        "--data",
        data.to_str().unwrap(),
        "--postprocess-only",
        "--json",
    ]);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    assert!(
        !text(&o.stderr).contains("WARNING"),
        "no model, so no untrained-weights warning"
    );
    let v: Value = serde_json::from_str(text(&o.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(v["tiles"], 3);
    let bpq = v["instance"]["bpq"].as_f64().unwrap();
    assert!(bpq > 0.5, "post-processing alone: bPQ {bpq}");
    // --limit
    let v = eval_json(&[
        "eval",
        "--data",
        data.to_str().unwrap(),
        "--postprocess-only",
        "--limit",
        "1",
        "--json",
    ]);
    assert_eq!(v["tiles"], 1);
}

#[test]
fn bench_reports_forward_and_segment_image_throughput() {
    let o = run(&[
        "bench",
        "--batch",
        "1,2",
        "--iters",
        "1",
        "--size",
        "64",
        "--image-size",
        "128",
        "--threads",
        "1",
        "--json",
    ]);
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    let v: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(v["threads"], 1);
    assert_eq!(v["device"], "cpu");
    assert!(!v["model"].as_str().unwrap().is_empty());
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{v}");
    for (row, batch) in rows.iter().zip([1, 2]) {
        assert_eq!(row["kind"], "forward");
        assert_eq!(row["size"], 64);
        assert_eq!(row["batch"], batch);
        assert!(row["median_ms"].as_f64().unwrap() > 0.0);
        assert!(row["tiles_per_s"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(rows[2]["kind"], "segment_image");
    assert_eq!(rows[2]["size"], 128);
    assert_eq!(rows[2]["tiles"], 1);
    assert!(rows[2]["megapixels_per_s"].as_f64().unwrap() > 0.0);
    assert!(
        stdout.contains("tiles/s") && stdout.contains("MP/s"),
        "{stdout}"
    );
}

#[test]
fn bench_rejects_bad_sizes_cleanly() {
    assert_clean_failure(&run(&["bench", "--size", "8"]), "--size");
    assert_clean_failure(&run(&["bench", "--batch", "0"]), "--batch");
    assert_clean_failure(&run(&["bench", "--image-size", "10"]), "--image-size");
}

/// The `compare` bench target (benches/compare.rs), compiled into this test as well: `cargo
/// test` then checks that it builds, that its options are consistent, and that a row runs.
#[allow(dead_code)]
#[path = "../benches/compare.rs"]
mod compare;

#[test]
fn compare_bench_builds_and_times_a_forward_row() {
    use clap::{CommandFactory, Parser};
    compare::CompareArgs::command().debug_assert();
    let a = compare::CompareArgs::try_parse_from([
        "compare", "--size", "64", "--iters", "2", "--warmup", "0", "--raa", "off", "--bench",
    ])
    .unwrap();
    let v = compare::run_one(&a, "forward", "lite", 2).unwrap();
    assert_eq!(v["impl"], "candle");
    assert_eq!(v["kind"], "forward");
    assert_eq!(v["preset"], "lite");
    assert_eq!(v["raa"], false);
    assert_eq!(
        (v["size"].clone(), v["batch"].clone()),
        (64.into(), 2.into())
    );
    assert_eq!(v["iters"], 2);
    let (med, min) = (
        v["median_ms"].as_f64().unwrap(),
        v["min_ms"].as_f64().unwrap(),
    );
    assert!(min > 0.0 && min <= med, "{v}");
    if cfg!(target_os = "linux") {
        assert!(v["peak_rss_mib"].as_f64().unwrap() > 1.0, "{v}");
    }
    // Bad options fail before any row runs.
    let bad = compare::CompareArgs::try_parse_from(["compare", "--size", "8"]).unwrap();
    assert!(compare::run(bad).unwrap_err().contains("--size"));
}

#[test]
fn bad_inputs_fail_cleanly() {
    let out = scratch("bad");
    let o_s = out.to_str().unwrap();
    // Missing image.
    let o = run(&["segment", "/nonexistent/nothing.png", "--out", o_s]);
    assert_clean_failure(&o, "nothing.png");
    // A file that is not an image.
    let json = fixtures().join("inst_class.json");
    let o = run(&["segment", json.to_str().unwrap(), "--out", o_s]);
    assert_clean_failure(&o, "inst_class.json");
    // Weights that are not safetensors.
    let img = fixtures().join("patch1.png");
    let o = run(&[
        "segment",
        img.to_str().unwrap(),
        "--weights",
        json.to_str().unwrap(),
        "--out",
        o_s,
    ]);
    assert_clean_failure(&o, "weights");
    // Missing weights file.
    let o = run(&[
        "segment",
        img.to_str().unwrap(),
        "--weights",
        "/nonexistent/w.safetensors",
    ]);
    assert_clean_failure(&o, "w.safetensors");
    // Missing dataset.
    let o = run(&["eval", "--data", "/nonexistent/dataset"]);
    assert_clean_failure(&o, "/nonexistent/dataset");
    // A folder that is not a dataset.
    let o = run(&["eval", "--data", o_s]);
    assert_clean_failure(&o, "not a recognised dataset");
    // Bad option values are usage errors.
    let o = run(&["segment", img.to_str().unwrap(), "--preset", "huge"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let o = run(&[
        "segment",
        img.to_str().unwrap(),
        "--tile-size",
        "16",
        "--out",
        o_s,
    ]);
    assert_clean_failure(&o, "tile_size");
    // Library errors carry no backtrace even with RUST_BACKTRACE set.
    let o = Command::new(BIN)
        .args([
            "segment",
            img.to_str().unwrap(),
            "--tile-size",
            "16",
            "--out",
            o_s,
        ])
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .unwrap();
    assert_clean_failure(&o, "tile_size");
    assert_eq!(
        text(&o.stderr).trim().lines().count(),
        1,
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn help_is_available_for_every_command() {
    let o = run(&["--help"]);
    assert!(o.status.success());
    let s = text(&o.stdout);
    for c in ["segment", "eval", "bench"] {
        assert!(s.contains(c), "{s}");
        let o = run(&[c, "--help"]);
        assert!(o.status.success(), "{c} --help");
        assert!(text(&o.stdout).contains("Usage: csranet"), "{c} --help");
    }
}

#[test]
fn convert_writes_a_loadable_f16_copy() {
    let dir = scratch("convert");
    let src = dir.join("f32.safetensors");
    let model =
        csranet::CsraNet::new(&csranet::Config::lite(), &candle_core::Device::Cpu, 3).unwrap();
    csranet::io::weights::save_file(&model, &src, false).unwrap();
    let dst = dir.join("f16.safetensors");
    let o = run(&[
        "convert",
        "--weights",
        src.to_str().unwrap(),
        "--out",
        dst.to_str().unwrap(),
        "--f16",
    ]);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    let (a, b) = (
        std::fs::metadata(&src).unwrap().len(),
        std::fs::metadata(&dst).unwrap().len(),
    );
    assert!(b < a * 6 / 10, "f16 file {b} bytes vs f32 {a}");
    let back = csranet::io::weights::model_from_bytes(
        &std::fs::read(&dst).unwrap(),
        None,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    assert_eq!(back.config(), model.config());
    // No --weights: a clear error, not a panic.
    assert_clean_failure(
        &run(&["convert", "--out", dst.to_str().unwrap()]),
        "--weights",
    );
}

#[test]
fn convert_names_the_classes_and_segment_shows_them() {
    let dir = scratch("convert-classes");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/lite-consep.safetensors");
    let named = dir.join("named.safetensors");
    let o = run(&[
        "convert",
        "--weights",
        src.to_str().unwrap(),
        "--out",
        named.to_str().unwrap(),
        "--class-names",
        "background,tumour,lymphocyte,stroma cell,other",
        "--class-colours",
        "#000000,#010203,#040506,#070809,0a0B0c",
    ]);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("classes background, tumour, lymphocyte, stroma cell, other"),
        "{}",
        text(&o.stdout)
    );
    let bytes = std::fs::read(&named).unwrap();
    let classes = csranet::io::weights::classes_of(&bytes, 5).unwrap();
    assert_eq!(classes.name(2), Some("lymphocyte"));
    assert_eq!(classes.colour(4), Some([10, 11, 12]));

    // `segment` writes the stored names (capital first letter) and colours.
    let out = dir.join("out");
    let img = fixtures().join("patch1.png");
    let o = run(&[
        "segment",
        img.to_str().unwrap(),
        "--weights",
        named.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    for class in ["Tumour", "Lymphocyte", "Stroma cell", "Other"] {
        assert!(stdout.contains(class), "table lacks `{class}`: {stdout}");
    }
    let geo: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("patch1.geojson")).unwrap())
            .unwrap();
    let feats = geo["features"].as_array().unwrap();
    assert!(feats.len() >= 10, "{} features", feats.len());
    let expected = [
        ("Tumour", [1, 2, 3]),
        ("Lymphocyte", [4, 5, 6]),
        ("Stroma cell", [7, 8, 9]),
        ("Other", [10, 11, 12]),
    ];
    for f in feats {
        let c = &f["properties"]["classification"];
        let hit = expected
            .iter()
            .any(|(n, rgb)| c["name"] == *n && c["color"] == serde_json::json!(rgb));
        assert!(hit, "unexpected classification {c}");
    }

    // Names alone get the default colours of their names ("other": QuPath's own colour).
    let renamed = dir.join("renamed.safetensors");
    let o = run(&[
        "convert",
        "--weights",
        named.to_str().unwrap(),
        "--out",
        renamed.to_str().unwrap(),
        "--class-names",
        "background,other,inflammatory,epithelial,spindle-shaped",
    ]);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    let classes = csranet::io::weights::classes_of(&std::fs::read(&renamed).unwrap(), 5).unwrap();
    assert_eq!(classes, csranet::model::Classes::defaults(5));
    // Colours alone keep the names.
    let o = run(&[
        "convert",
        "--weights",
        named.to_str().unwrap(),
        "--out",
        renamed.to_str().unwrap(),
        "--class-colours",
        "000000,ffffff,ffffff,ffffff,ffffff",
    ]);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    let classes = csranet::io::weights::classes_of(&std::fs::read(&renamed).unwrap(), 5).unwrap();
    assert_eq!(classes.name(1), Some("tumour"));
    assert_eq!(classes.colour(1), Some([255, 255, 255]));

    // Bad lists fail cleanly, naming the problem.
    let w = src.to_str().unwrap();
    let r = renamed.to_str().unwrap();
    for (args, needle) in [
        (
            ["--class-names", "background,a,b"],
            "3 class names given, the model has 5 classes",
        ),
        (
            ["--class-names", "background,a,,c,d"],
            "class 2 has an empty name",
        ),
        (["--class-colours", "000000,ffffff"], "2 colours given"),
        (["--class-colours", "000000,fff,0,0,0"], "RRGGBB"),
    ] {
        let mut all = vec!["convert", "--weights", w, "--out", r];
        all.extend(args);
        assert_clean_failure(&run(&all), needle);
    }
}
