use super::npy::write_npy;
use super::*;
use serde_json::{json, Value};
use std::path::PathBuf;

/// Project root: `$CSRANET_ROOT` if set, else this crate's manifest directory.
fn root() -> PathBuf {
    std::env::var_os("CSRANET_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

fn tiles_dir() -> PathBuf {
    root().join("tests/fixtures/tiles")
}

fn metrics_dir() -> PathBuf {
    root().join("tests/fixtures/metrics")
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("csranet-data-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fixture_json() -> Value {
    serde_json::from_str(&std::fs::read_to_string(tiles_dir().join("inst_class.json")).unwrap())
        .unwrap()
}

/// `root/train/{images,inst,type}` from the fixture tiles, `root/inst_class.json` in CoNSeP's
/// form with "classes" and "tiles".
fn consep_layout(tag: &str) -> TempDir {
    let t = TempDir::new(tag);
    let split = t.0.join("train");
    for sub in ["images", "inst", "type"] {
        std::fs::create_dir_all(split.join(sub)).unwrap();
    }
    let fx = fixture_json();
    let mut tiles = serde_json::Map::new();
    for (i, p) in ["patch1", "patch2", "patch3"].iter().enumerate() {
        let name = format!("train_{}_{:03}", 1 + i / 2, i % 2);
        std::fs::copy(
            tiles_dir().join(format!("{p}.png")),
            split.join("images").join(format!("{name}.png")),
        )
        .unwrap();
        std::fs::copy(
            tiles_dir().join(format!("{p}_inst.png")),
            split.join("inst").join(format!("{name}.png")),
        )
        .unwrap();
        std::fs::copy(
            tiles_dir().join(format!("{p}_type.png")),
            split.join("type").join(format!("{name}.png")),
        )
        .unwrap();
        tiles.insert(
            name,
            json!({"split": "train", "inst_class": fx[*p]["inst_class"].clone()}),
        );
    }
    let j = json!({"classes": {"1": "a", "2": "b", "3": "c", "4": "d", "5": "e"}, "tiles": tiles});
    std::fs::write(t.0.join("inst_class.json"), j.to_string()).unwrap();
    t
}

#[test]
fn flat_fixture_tiles() {
    let d = consep::load_flat(tiles_dir()).unwrap();
    assert_eq!(d.names(), vec!["patch1", "patch2", "patch3"]);
    assert_eq!(
        d.class_names,
        vec![
            "background",
            "class_1",
            "class_2",
            "class_3",
            "class_4",
            "class_5"
        ]
    );
    assert_eq!(
        d.samples.iter().map(|s| s.tissue).collect::<Vec<_>>(),
        vec![Some(4), Some(2), Some(1)]
    );
    let s = &d.samples[0];
    assert_eq!((s.width(), s.height()), (256, 256));
    assert_eq!(s.image.data.len(), 256 * 256 * 3);
    assert_eq!(s.inst.len(), 256 * 256);
    assert_eq!(s.inst_class.len(), 20);
    assert_eq!(s.inst_class[&15], 5);
    assert!(s
        .inst
        .iter()
        .all(|&i| i == 0 || s.inst_class.contains_key(&i)));
    // auto-detection picks the same reader
    assert_eq!(load_labelled(tiles_dir()).unwrap(), d);
    let sub = d.subset(&[2, 0]);
    assert_eq!(sub.names(), vec!["patch3", "patch1"]);
    assert_eq!(
        d.split(0.5, 1).unwrap().labelled.len() + d.split(0.5, 1).unwrap().unlabelled.len(),
        3
    );
}

#[test]
fn consep_folder_layout() {
    let t = consep_layout("layout");
    let d = consep::load_split(&t.0, "train").unwrap();
    assert_eq!(d.names(), vec!["train_1_000", "train_1_001", "train_2_000"]);
    assert_eq!(d.class_names, vec!["background", "a", "b", "c", "d", "e"]);
    assert!(d.samples.iter().all(|s| s.tissue.is_none()));
    assert!(d.tissue_names.is_empty());
    let flat = consep::load_flat(tiles_dir()).unwrap();
    for (a, b) in d.samples.iter().zip(&flat.samples) {
        assert_eq!(a.inst, b.inst);
        assert_eq!(a.class_map, b.class_map);
        assert_eq!(a.image, b.image);
        assert_eq!(a.inst_class, b.inst_class);
    }
    assert_eq!(load_labelled(t.0.join("train")).unwrap(), d);
    let s = d.split(1.0 / 2.0, 7).unwrap();
    let lk: Vec<&str> = s
        .labelled
        .iter()
        .map(|&i| group_key(&d.samples[i].name))
        .collect();
    assert!(s
        .unlabelled
        .iter()
        .all(|&i| !lk.contains(&group_key(&d.samples[i].name))));
}

fn err_text<T: std::fmt::Debug>(r: crate::Result<T>) -> String {
    r.unwrap_err().to_string()
}

fn err_kind<T: std::fmt::Debug>(r: crate::Result<T>) -> crate::ErrorKind {
    r.unwrap_err().kind()
}

#[test]
fn consep_errors() {
    // missing type file
    let t = consep_layout("missing");
    std::fs::remove_file(t.0.join("train/type/train_1_001.png")).unwrap();
    let e = err_text(consep::load_split(&t.0, "train"));
    assert!(
        e.contains("train_1_001.png") && e.contains("missing"),
        "{e}"
    );
    let kind = err_kind(consep::load_split(&t.0, "train"));
    assert_eq!(kind, crate::ErrorKind::Io);

    // missing directory, missing json, no images
    let t = consep_layout("nodir");
    std::fs::remove_dir_all(t.0.join("train/inst")).unwrap();
    assert!(err_text(consep::load_split(&t.0, "train")).contains("inst"));
    let t = consep_layout("nojson");
    std::fs::remove_file(t.0.join("inst_class.json")).unwrap();
    assert!(err_text(consep::load_split(&t.0, "train")).contains("inst_class.json"));
    let t = consep_layout("noimg");
    for e in std::fs::read_dir(t.0.join("train/images")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    assert!(err_text(consep::load_split(&t.0, "train")).contains("images"));

    // ids: a class for an id that is not in the map, and an id without class
    let t = consep_layout("ids");
    let p = t.0.join("inst_class.json");
    let mut j: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    j["tiles"]["train_1_000"]["inst_class"]["60000"] = json!(1);
    std::fs::write(&p, j.to_string()).unwrap();
    let e = err_text(consep::load_split(&t.0, "train"));
    assert!(
        e.contains("train_1_000") && e.contains("60000") && e.contains("not in the instance map"),
        "{e}"
    );
    j["tiles"]["train_1_000"]["inst_class"]
        .as_object_mut()
        .unwrap()
        .remove("60000");
    j["tiles"]["train_1_000"]["inst_class"]
        .as_object_mut()
        .unwrap()
        .remove("15");
    std::fs::write(&p, j.to_string()).unwrap();
    let e = err_text(consep::load_split(&t.0, "train"));
    assert!(e.contains("15") && e.contains("have no class"), "{e}");
    let kind = err_kind(consep::load_split(&t.0, "train"));
    assert_eq!(kind, crate::ErrorKind::BadData);
    // a tile without entry
    j["tiles"].as_object_mut().unwrap().remove("train_1_000");
    std::fs::write(&p, j.to_string()).unwrap();
    assert!(err_text(consep::load_split(&t.0, "train")).contains("no entry"));

    // class outside "classes"
    let t = consep_layout("classes");
    let p = t.0.join("inst_class.json");
    let mut j: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    j["classes"].as_object_mut().unwrap().remove("5");
    std::fs::write(&p, j.to_string()).unwrap();
    let e = err_text(consep::load_split(&t.0, "train"));
    assert!(e.contains("class 5"), "{e}");

    // invalid JSON and bad values
    let t = consep_layout("json");
    let p = t.0.join("inst_class.json");
    std::fs::write(&p, "{not json").unwrap();
    assert!(err_text(consep::load_split(&t.0, "train")).contains("invalid JSON"));
    let kind = err_kind(consep::load_split(&t.0, "train"));
    assert_eq!(kind, crate::ErrorKind::BadData);
    std::fs::write(
        &p,
        r#"{"tiles": {"train_1_000": {"inst_class": {"x": 1}}}}"#,
    )
    .unwrap();
    assert!(err_text(consep::load_split(&t.0, "train")).contains("'x'"));

    // wrong size and wrong pixel format
    let t = consep_layout("shape");
    image::GrayImage::new(10, 12)
        .save(t.0.join("train/type/train_2_000.png"))
        .unwrap();
    let e = err_text(consep::load_split(&t.0, "train"));
    assert!(e.contains("train_2_000.png") && e.contains("10x12"), "{e}");
    std::fs::copy(
        tiles_dir().join("patch1.png"),
        t.0.join("train/inst/train_2_000.png"),
    )
    .unwrap();
    let e = err_text(consep::load_split(&t.0, "train"));
    assert!(e.contains("single-channel"), "{e}");
    std::fs::write(t.0.join("train/images/train_1_000.png"), b"garbage").unwrap();
    let e = err_text(consep::load_split(&t.0, "train"));
    assert!(e.contains("train_1_000.png") && e.contains("decode"), "{e}");
    let kind = err_kind(consep::load_split(&t.0, "train"));
    assert_eq!(kind, crate::ErrorKind::BadData);

    // not a dataset
    let t = TempDir::new("none");
    assert!(err_text(load_labelled(&t.0)).contains("not a recognised dataset"));
    assert!(err_text(load_labelled(t.0.join("nope"))).contains("missing"));
    assert_eq!(
        err_kind(load_labelled(&t.0)),
        crate::ErrorKind::InvalidArgument
    );
    assert_eq!(
        err_kind(load_labelled(t.0.join("nope"))),
        crate::ErrorKind::Io
    );
}

#[test]
fn unlabelled_folder() {
    let v = folder::load_unlabelled(tiles_dir()).unwrap();
    assert_eq!(v.len(), 10);
    let he = v.iter().find(|s| s.name == "he_500").unwrap();
    assert_eq!(
        (he.image.width, he.image.height, he.image.data.len()),
        (500, 500, 500 * 500 * 3)
    );
    let t = TempDir::new("unl");
    std::fs::write(t.0.join("notes.txt"), "x").unwrap();
    assert!(err_text(folder::load_unlabelled(&t.0)).contains("images"));
    std::fs::copy(tiles_dir().join("patch2.png"), t.0.join("B.PNG")).unwrap();
    std::fs::copy(tiles_dir().join("patch1.png"), t.0.join("a.png")).unwrap();
    let v = folder::load_unlabelled(&t.0).unwrap();
    assert_eq!(
        v.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        vec!["B", "a"]
    );
    assert!(err_text(folder::load_unlabelled(t.0.join("nope"))).contains("missing"));
}

fn check_pannuke(dir: PathBuf, expected: &Value) {
    let fold = pannuke::PanNukeFold::open(&dir).unwrap();
    let tiles = expected["tiles"].as_array().unwrap();
    assert_eq!(fold.len(), tiles.len());
    assert_eq!(fold.height() as u64, expected["height"].as_u64().unwrap());
    assert_eq!(fold.width() as u64, expected["width"].as_u64().unwrap());
    let d = load_labelled(&dir).unwrap();
    assert_eq!(d.class_names, pannuke::CLASS_NAMES.to_vec());
    assert_eq!(d.len(), tiles.len());
    for (s, e) in d.samples.iter().zip(tiles) {
        let tissue = &d.tissue_names[s.tissue.unwrap() as usize];
        assert_eq!(tissue, e["tissue"].as_str().unwrap());
        assert_eq!(
            s.inst_class.len() as u64,
            e["instances"].as_u64().unwrap(),
            "{}",
            s.name
        );
        let inst: Vec<u32> = e["inst"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(s.inst, inst, "{}", s.name);
        for c in 0..6u8 {
            let px = s.class_map.iter().filter(|&&x| x == c).count() as u64;
            assert_eq!(
                px,
                e["class_pixels"][c as usize].as_u64().unwrap(),
                "{} class {c}",
                s.name
            );
            let n = s.inst_class.values().filter(|&&x| x == c).count() as u64;
            assert_eq!(
                n,
                e["class_instances"][c as usize].as_u64().unwrap(),
                "{} class {c}",
                s.name
            );
        }
        let sum: u64 = s.image.data.iter().map(|&x| x as u64).sum();
        assert_eq!(sum, e["rgb_sum"].as_u64().unwrap(), "{}", s.name);
        assert!(!s.name.contains('_'));
    }
    // the last tile has no nuclei
    assert!(d.samples.last().unwrap().inst_class.is_empty());
}

#[test]
fn pannuke_folds() {
    let exp: Value = serde_json::from_str(
        &std::fs::read_to_string(metrics_dir().join("pannuke_expected.json")).unwrap(),
    )
    .unwrap();
    check_pannuke(metrics_dir().join("pannuke_fold"), &exp["pannuke_fold"]);
    check_pannuke(
        metrics_dir().join("pannuke_official"),
        &exp["pannuke_official"],
    );
    let fold = pannuke::PanNukeFold::open(metrics_dir().join("pannuke_fold")).unwrap();
    assert_eq!(fold.tissue_names().len(), 19);
    assert_eq!(fold.get(0).unwrap().image.data[..3], [12, 255, 255]);
    assert!(fold.get(99).is_err());
}

fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn u32_str(strings: &[&str], width: usize) -> Vec<u8> {
    strings
        .iter()
        .flat_map(|s| {
            let mut c: Vec<u32> = s.chars().map(|c| c as u32).collect();
            c.resize(width, 0);
            c.into_iter().flat_map(|x| x.to_le_bytes())
        })
        .collect()
}

/// A valid 2-tile 2x2 fold; `tweak` may then overwrite files.
fn small_fold(tag: &str) -> TempDir {
    let t = TempDir::new(tag);
    write_npy(t.0.join("images.npy"), "|u1", &[2, 2, 2, 3], &[7; 24]).unwrap();
    let mut m = vec![0.0; 2 * 4 * 6];
    m[0] = 3.0; // tile 0, pixel 0, neoplastic id 3
    m[6 + 2] = 3.0; // tile 0, pixel 1, connective id 3 (a different instance)
    m[24 + 3 * 6 + 1] = 1.0; // tile 1, pixel 3, inflammatory
    write_npy(t.0.join("masks.npy"), "<f8", &[2, 2, 2, 6], &f64_bytes(&m)).unwrap();
    write_npy(
        t.0.join("types.npy"),
        "<U7",
        &[2],
        &u32_str(&["Breast", "Unknown"], 7),
    )
    .unwrap();
    t
}

#[test]
fn pannuke_conversion_and_errors() {
    let t = small_fold("ok");
    let d = pannuke::load(&t.0).unwrap();
    assert_eq!(d.samples[0].inst, vec![1, 2, 0, 0]);
    assert_eq!(d.samples[0].class_map, vec![1, 3, 0, 0]);
    assert_eq!(d.samples[1].inst_class[&1], 2);
    assert_eq!(
        d.tissue_names[d.samples[0].tissue.unwrap() as usize],
        "Breast"
    );
    assert_eq!(d.samples[1].tissue, Some(19));
    assert_eq!(d.tissue_names[19], "Unknown");

    let t = small_fold("n");
    write_npy(
        t.0.join("masks.npy"),
        "<f8",
        &[1, 2, 2, 6],
        &f64_bytes(&[0.0; 24]),
    )
    .unwrap();
    let e = err_text(pannuke::load(&t.0));
    assert!(e.contains("masks.npy") && e.contains("(2, 2, 2, 6)"), "{e}");

    let t = small_fold("ch");
    write_npy(
        t.0.join("masks.npy"),
        "<f8",
        &[2, 2, 2, 5],
        &f64_bytes(&[0.0; 40]),
    )
    .unwrap();
    assert!(err_text(pannuke::load(&t.0)).contains("masks.npy"));

    let t = small_fold("rgb");
    write_npy(t.0.join("images.npy"), "|u1", &[2, 2, 2, 4], &[0; 32]).unwrap();
    assert!(err_text(pannuke::load(&t.0)).contains("(N, H, W, 3)"));

    let t = small_fold("types");
    write_npy(t.0.join("types.npy"), "<U7", &[1], &u32_str(&["Breast"], 7)).unwrap();
    assert!(err_text(pannuke::load(&t.0)).contains("types.npy"));
    write_npy(t.0.join("types.npy"), "<f8", &[2], &f64_bytes(&[0.0, 1.0])).unwrap();
    assert!(err_text(pannuke::load(&t.0)).contains("strings"));
    std::fs::remove_file(t.0.join("types.npy")).unwrap();
    assert!(err_text(pannuke::load(&t.0)).contains("types.npy"));

    let t = small_fold("frac");
    let mut m = vec![0.0; 48];
    m[0] = 1.5;
    write_npy(t.0.join("masks.npy"), "<f8", &[2, 2, 2, 6], &f64_bytes(&m)).unwrap();
    let e = err_text(pannuke::PanNukeFold::open(&t.0).unwrap().get(0));
    assert!(e.contains("tile 0") && e.contains("1.5"), "{e}");

    let t = small_fold("two");
    for sub in ["a", "b"] {
        std::fs::create_dir_all(t.0.join(sub)).unwrap();
        std::fs::copy(t.0.join("masks.npy"), t.0.join(sub).join("masks.npy")).unwrap();
    }
    std::fs::remove_file(t.0.join("masks.npy")).unwrap();
    assert!(err_text(pannuke::load(&t.0)).contains("several masks.npy"));
}

/// Loads the real CoNSeP tiles when `CSRANET_CONSEP` points at `../shared/data/consep`.
#[test]
fn real_consep_when_available() {
    let Some(dir) = std::env::var_os("CSRANET_CONSEP").map(PathBuf::from) else {
        println!("SKIPPED real_consep_when_available: set CSRANET_CONSEP=<path to shared/data/consep> to run it");
        return;
    };
    assert!(
        dir.is_dir(),
        "CSRANET_CONSEP={} is not a directory",
        dir.display()
    );
    let train = consep::load_split(&dir, "train").unwrap();
    let test = consep::load_split(&dir, "test").unwrap();
    assert_eq!(train.len(), 432);
    assert_eq!(test.len(), 112);
    assert_eq!(
        train.class_names,
        vec![
            "background",
            "other",
            "inflammatory",
            "epithelial",
            "spindle-shaped"
        ]
    );
    let nuclei: usize = train
        .samples
        .iter()
        .chain(&test.samples)
        .map(|s| s.inst_class.len())
        .sum();
    // (the data README says "about 28,500"; the tiles' inst_class tables hold 22,238)
    assert_eq!(nuclei, 22_238);
    let groups: std::collections::BTreeSet<&str> =
        train.samples.iter().map(|s| group_key(&s.name)).collect();
    assert_eq!(groups.len(), 27);
    let test_groups: std::collections::BTreeSet<&str> =
        test.samples.iter().map(|s| group_key(&s.name)).collect();
    assert_eq!(test_groups.len(), 7);
    for (frac, tiles) in [("1/4", 112), ("1/8", 48), ("1/16", 32), ("1/32", 16)] {
        let s = train.split(parse_fraction(frac).unwrap(), 0).unwrap();
        assert_eq!(s.labelled.len(), tiles, "{frac}");
        assert_eq!(s.labelled.len() + s.unlabelled.len(), 432);
        let lk: std::collections::BTreeSet<&str> = s
            .labelled
            .iter()
            .map(|&i| group_key(&train.samples[i].name))
            .collect();
        assert!(
            s.unlabelled
                .iter()
                .all(|&i| !lk.contains(group_key(&train.samples[i].name))),
            "{frac}"
        );
        println!(
            "consep train split {frac}: {} labelled tiles from {:?}",
            s.labelled.len(),
            lk
        );
    }
    // ground truth against itself through the evaluator: perfect scores, and a timing
    let t0 = std::time::Instant::now();
    let mut ev = crate::metrics::Evaluator::new(test.class_names.clone());
    for smp in &test.samples {
        let inst =
            crate::metrics::InstanceMap::new(smp.width(), smp.height(), smp.inst.clone()).unwrap();
        let l = crate::metrics::TileLabels {
            inst: &inst,
            inst_class: &smp.inst_class,
            class_map: &smp.class_map,
        };
        ev.add_tile(l, l, smp.tissue).unwrap();
    }
    let sum = ev.summary();
    println!(
        "consep test GT vs GT: {} in {:.2?}",
        sum.to_json(),
        t0.elapsed()
    );
    assert!(sum.instance.bpq > 0.99999 && sum.instance.mpq > 0.99999);
    assert_eq!(
        (sum.instance.f1_det, sum.instance.aji, sum.pixel.miou),
        (1.0, 1.0, 1.0)
    );
    // the unlabelled pool reader sees the same images
    assert_eq!(
        folder::list_images(dir.join("train/images")).unwrap().len(),
        432
    );
    println!(
        "real CoNSeP: train {} tiles, test {} tiles, {nuclei} nuclei",
        train.len(),
        test.len()
    );
}
