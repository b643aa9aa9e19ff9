//! CoNSeP-style folders of annotated tiles.
//!
//! Folder layout ([`load_dir`]): `DIR/images/NAME.{jpg,jpeg,png}`, `DIR/inst/NAME.png` (8/16-bit
//! instance map, 0 = background), `DIR/type/NAME.png` (8-bit class map), and `inst_class.json` in
//! `DIR` or its parent (`../shared/data/consep` keeps one file for `train/` and `test/`).
//!
//! Flat layout ([`load_flat`], the fixture tiles): `DIR/NAME.png`, `DIR/NAME_inst.png`,
//! `DIR/NAME_type.png` and `DIR/inst_class.json`.
//!
//! `inst_class.json` is either `{"classes": {"1": "other", ...}, "tiles": {NAME: TILE}}` or directly
//! `{NAME: TILE}`, where `TILE` has `"inst_class": {"<id>": class}` and optionally
//! `"tissue_class": <int>` (and other keys, ignored). Without `"classes"` the classes are named
//! `class_1 ..` up to the largest class id found.

use super::{
    check_ids, format_err, ids_err, io_err, missing, read_label_u32, read_label_u8, read_rgb,
    shape_err, Dataset, Sample,
};
use crate::Result;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const IMAGE_EXTS: [&str; 3] = ["jpg", "jpeg", "png"];

struct TileInfo {
    inst_class: HashMap<u32, u8>,
    tissue: Option<u32>,
}

struct ClassTable {
    tiles: HashMap<String, TileInfo>,
    /// From `"classes"`, index = class id, 0 = background.
    class_names: Option<Vec<String>>,
    path: PathBuf,
}

fn read_class_table(path: &Path) -> Result<ClassTable> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| format_err(path, format!("invalid JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| format_err(path, "expected a JSON object"))?;
    let class_names = match obj.get("classes") {
        None => None,
        Some(c) => {
            let c = c
                .as_object()
                .ok_or_else(|| format_err(path, "\"classes\" must be an object id -> name"))?;
            let mut pairs = Vec::new();
            for (k, name) in c {
                let id: usize = k
                    .parse()
                    .ok()
                    .filter(|&i| (1..255).contains(&i))
                    .ok_or_else(|| {
                        format_err(
                            path,
                            format!("\"classes\": key '{k}' is not a class id in 1..254"),
                        )
                    })?;
                let name = name
                    .as_str()
                    .ok_or_else(|| format_err(path, format!("\"classes\".{k} must be a string")))?;
                pairs.push((id, name.to_string()));
            }
            let k = pairs.iter().map(|p| p.0).max().unwrap_or(0) + 1;
            let mut names: Vec<String> = (0..k)
                .map(|i| {
                    if i == 0 {
                        "background".into()
                    } else {
                        format!("class_{i}")
                    }
                })
                .collect();
            for (id, n) in pairs {
                names[id] = n;
            }
            Some(names)
        }
    };
    let tiles_v = match obj.get("tiles") {
        Some(t) => t
            .as_object()
            .ok_or_else(|| format_err(path, "\"tiles\" must be an object"))?,
        None => obj,
    };
    let mut tiles = HashMap::new();
    for (name, t) in tiles_v {
        if name == "classes" && obj.get("tiles").is_none() {
            continue;
        }
        let ic = t
            .get("inst_class")
            .and_then(Value::as_object)
            .ok_or_else(|| format_err(path, format!("tile {name}: no \"inst_class\" object")))?;
        let mut inst_class = HashMap::with_capacity(ic.len());
        for (k, c) in ic {
            let id: u32 = k.parse().ok().filter(|&i| i > 0).ok_or_else(|| {
                format_err(
                    path,
                    format!("tile {name}: instance id '{k}' is not a positive integer"),
                )
            })?;
            let c = c.as_u64().filter(|&c| c < 255).ok_or_else(|| {
                format_err(
                    path,
                    format!("tile {name}: class of instance {k} is not an integer in 0..254"),
                )
            })?;
            inst_class.insert(id, c as u8);
        }
        let tissue = match t.get("tissue_class") {
            None | Some(Value::Null) => None,
            Some(x) => Some(
                x.as_u64()
                    .filter(|&x| x <= u32::MAX as u64)
                    .ok_or_else(|| {
                        format_err(
                            path,
                            format!("tile {name}: \"tissue_class\" must be a non-negative integer"),
                        )
                    })? as u32,
            ),
        };
        tiles.insert(name.clone(), TileInfo { inst_class, tissue });
    }
    Ok(ClassTable {
        tiles,
        class_names,
        path: path.to_path_buf(),
    })
}

/// Loads one split of the CoNSeP layout: `root/split`.
pub fn load_split(root: impl AsRef<Path>, split: &str) -> Result<Dataset> {
    load_dir(root.as_ref().join(split))
}

/// Path of `inst_class.json` for a folder-layout directory: in `dir`, else in its parent.
pub fn find_class_table(dir: &Path) -> Result<PathBuf> {
    let here = dir.join("inst_class.json");
    if here.is_file() {
        return Ok(here);
    }
    if let Some(parent) = dir.parent() {
        let up = parent.join("inst_class.json");
        if up.is_file() {
            return Ok(up);
        }
    }
    Err(missing(
        &here,
        "inst_class.json (looked in the directory and its parent)",
    ))
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| io_err(dir, e))?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| io_err(dir, e))?;
        out.push(e.path());
    }
    out.sort();
    Ok(out)
}

fn has_image_ext(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Loads `dir/{images,inst,type}` with its `inst_class.json`.
pub fn load_dir(dir: impl AsRef<Path>) -> Result<Dataset> {
    let dir = dir.as_ref();
    if find_class_table(dir).is_err()
        && dir.join("images").is_dir()
        && dir.join("inst").is_dir()
        && !dir.join("type").is_dir()
    {
        return load_instances_only(dir);
    }
    for sub in ["images", "inst", "type"] {
        if !dir.join(sub).is_dir() {
            return Err(missing(&dir.join(sub), "directory"));
        }
    }
    let table = read_class_table(&find_class_table(dir)?)?;
    let mut jobs = Vec::new();
    for img in list_dir(&dir.join("images"))?
        .into_iter()
        .filter(|p| p.is_file() && has_image_ext(p))
    {
        let name = img.file_stem().unwrap().to_string_lossy().into_owned();
        let inst = dir.join("inst").join(format!("{name}.png"));
        let typ = dir.join("type").join(format!("{name}.png"));
        jobs.push((name, img, inst, typ));
    }
    if jobs.is_empty() {
        return Err(missing(
            &dir.join("images"),
            "images (*.jpg, *.jpeg, *.png)",
        ));
    }
    build(jobs, &table)
}

/// A set annotated without classes: `images/` + `inst/` and no class table or `type/` (a
/// folder with `type/` but no `inst_class.json` is an error). Every nucleus is class 1 of
/// `["background", "nucleus"]`. (The `type/` branch below serves callers that opt in.)
fn load_instances_only(dir: &Path) -> Result<Dataset> {
    let has_type = dir.join("type").is_dir();
    let mut samples = Vec::new();
    for img_p in list_dir(&dir.join("images"))?
        .into_iter()
        .filter(|p| p.is_file() && has_image_ext(p))
    {
        let name = img_p.file_stem().unwrap().to_string_lossy().into_owned();
        let image = read_rgb(&img_p)?;
        let inst_p = dir.join("inst").join(format!("{name}.png"));
        let (iw, ih, inst) = read_label_u32(&inst_p)?;
        let class_map = if has_type {
            let type_p = dir.join("type").join(format!("{name}.png"));
            let (tw, th, t) = read_label_u8(&type_p)?;
            if (tw, th) != (iw, ih) {
                return Err(shape_err(
                    &type_p,
                    format!("{tw}x{th}, but the instance map is {iw}x{ih}"),
                ));
            }
            // Background pixels of the type map inside an instance become class 1.
            t.iter()
                .zip(&inst)
                .map(|(&c, &i)| if i == 0 { 0 } else { c.max(1) })
                .collect()
        } else {
            inst.iter().map(|&i| u8::from(i > 0)).collect::<Vec<u8>>()
        };
        if (iw, ih) != (image.width, image.height) {
            return Err(shape_err(
                &inst_p,
                format!(
                    "{iw}x{ih}, but the image is {}x{}",
                    image.width, image.height
                ),
            ));
        }
        let mut votes: HashMap<u32, HashMap<u8, usize>> = HashMap::new();
        for (&i, &c) in inst.iter().zip(&class_map) {
            if i > 0 {
                *votes.entry(i).or_default().entry(c).or_default() += 1;
            }
        }
        let inst_class = votes
            .into_iter()
            .map(|(i, v)| {
                let best = v
                    .into_iter()
                    .max_by_key(|&(c, n)| (n, std::cmp::Reverse(c)));
                (i, best.map(|(c, _)| c).unwrap_or(1))
            })
            .collect();
        samples.push(Sample {
            name,
            image,
            inst,
            class_map,
            inst_class,
            tissue: None,
        });
    }
    if samples.is_empty() {
        return Err(missing(
            &dir.join("images"),
            "images (*.jpg, *.jpeg, *.png)",
        ));
    }
    let k = samples
        .iter()
        .flat_map(|s| s.class_map.iter().copied())
        .max()
        .unwrap_or(1)
        .max(1) as usize;
    let class_names = if has_type {
        std::iter::once("background".to_string())
            .chain((1..=k).map(|c| format!("class {c}")))
            .collect()
    } else {
        vec!["background".to_string(), "nucleus".to_string()]
    };
    Ok(Dataset {
        samples,
        class_names,
        tissue_names: Vec::new(),
    })
}

/// Loads the flat layout: `NAME.png` + `NAME_inst.png` + `NAME_type.png` + `inst_class.json`.
pub fn load_flat(dir: impl AsRef<Path>) -> Result<Dataset> {
    let dir = dir.as_ref();
    let json = dir.join("inst_class.json");
    if !json.is_file() {
        return Err(missing(&json, "file"));
    }
    let table = read_class_table(&json)?;
    let mut jobs = Vec::new();
    for p in list_dir(dir)? {
        let fname = p.file_name().unwrap().to_string_lossy().into_owned();
        let Some(name) = fname.strip_suffix("_inst.png") else {
            continue;
        };
        let img = IMAGE_EXTS
            .iter()
            .map(|e| dir.join(format!("{name}.{e}")))
            .find(|p| p.is_file())
            .unwrap_or_else(|| dir.join(format!("{name}.png")));
        jobs.push((
            name.to_string(),
            img,
            p.clone(),
            dir.join(format!("{name}_type.png")),
        ));
    }
    if jobs.is_empty() {
        return Err(missing(dir, "tiles (NAME_inst.png)"));
    }
    build(jobs, &table)
}

fn build(jobs: Vec<(String, PathBuf, PathBuf, PathBuf)>, table: &ClassTable) -> Result<Dataset> {
    let mut samples = Vec::with_capacity(jobs.len());
    for (name, img_p, inst_p, type_p) in jobs {
        for p in [&img_p, &inst_p, &type_p] {
            if !p.is_file() {
                return Err(missing(p, format!("file for tile {name}")));
            }
        }
        let info = table
            .tiles
            .get(&name)
            .ok_or_else(|| ids_err(&name, format!("no entry in {}", table.path.display())))?;
        let image = read_rgb(&img_p)?;
        let (iw, ih, inst) = read_label_u32(&inst_p)?;
        let (tw, th, class_map) = read_label_u8(&type_p)?;
        for (p, w, h) in [(&inst_p, iw, ih), (&type_p, tw, th)] {
            if (w, h) != (image.width, image.height) {
                return Err(shape_err(
                    p,
                    format!(
                        "{w}x{h}, but the image {} is {}x{}",
                        img_p.display(),
                        image.width,
                        image.height
                    ),
                ));
            }
        }
        check_ids(&name, &inst, &info.inst_class)?;
        if let Some(names) = &table.class_names {
            let k = names.len();
            if let Some(c) = class_map.iter().find(|&&c| c as usize >= k) {
                return Err(format_err(
                    &type_p,
                    format!(
                        "class {c} is not in \"classes\" of {} ({} classes)",
                        table.path.display(),
                        k - 1
                    ),
                ));
            }
            if let Some((id, c)) = info.inst_class.iter().find(|(_, &c)| c as usize >= k) {
                return Err(ids_err(
                    &name,
                    format!("instance {id} has class {c}, which is not in \"classes\""),
                ));
            }
        }
        samples.push(Sample {
            name,
            image,
            inst,
            class_map,
            inst_class: info.inst_class.clone(),
            tissue: info.tissue,
        });
    }
    let class_names = match &table.class_names {
        Some(n) => n.clone(),
        None => {
            let max = samples
                .iter()
                .flat_map(|s| {
                    s.class_map
                        .iter()
                        .copied()
                        .chain(s.inst_class.values().copied())
                })
                .max()
                .unwrap_or(0)
                .max(1) as usize;
            (0..=max)
                .map(|i| {
                    if i == 0 {
                        "background".into()
                    } else {
                        format!("class_{i}")
                    }
                })
                .collect()
        }
    };
    Ok(Dataset {
        samples,
        class_names,
        tissue_names: Vec::new(),
    })
}
