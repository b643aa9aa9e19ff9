//! PanNuke's official fold format.
//!
//! A fold has `images.npy` (N x H x W x 3, float64 0..255 or uint8), `masks.npy`
//! (N x H x W x 6, channels neoplastic, inflammatory, connective, dead, epithelial, background;
//! channels 0..4 hold instance ids, numbered per channel) and `types.npy` (N tissue names).
//! They may sit in one directory or in the official layout
//! `Fold 1/images/fold1/{images,types}.npy`, `Fold 1/masks/fold1/masks.npy`; [`PanNukeFold::open`]
//! finds them up to three levels below the given directory.
//!
//! Conversion: every (channel, id) pair becomes one instance, numbered 1.. in channel order then
//! ascending original id, with class `channel + 1`; where channels overlap the later channel wins
//! (as PanNuke's own binarisation), and an instance left without pixels is dropped. The class map
//! paints each instance with its class. Tissue ids index [`TISSUES`], names not in it are
//! appended in order of appearance. Images are rounded and clamped to 0..255.

use super::npy::{DType, NpyArray};
use super::{format_err, missing, shape_err, Dataset, RgbImage, Sample};
use crate::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Class names, index = class id (0 = background).
pub const CLASS_NAMES: [&str; 6] = [
    "background",
    "neoplastic",
    "inflammatory",
    "connective",
    "dead",
    "epithelial",
];

/// PanNuke's 19 tissue names, as spelled in `types.npy` (the list of PanNuke's evaluation script).
pub const TISSUES: [&str; 19] = [
    "Adrenal_gland",
    "Bile-duct",
    "Bladder",
    "Breast",
    "Cervix",
    "Colon",
    "Esophagus",
    "HeadNeck",
    "Kidney",
    "Liver",
    "Lung",
    "Ovarian",
    "Pancreatic",
    "Prostate",
    "Skin",
    "Stomach",
    "Testis",
    "Thyroid",
    "Uterus",
];

/// Finds `name` in `dir` or up to three directory levels below it (exactly one match allowed).
pub fn find_file(dir: &Path, name: &str) -> Result<PathBuf> {
    fn walk(d: &Path, name: &str, depth: usize, out: &mut Vec<PathBuf>) {
        let p = d.join(name);
        if p.is_file() {
            out.push(p);
        }
        if depth == 0 {
            return;
        }
        if let Ok(rd) = std::fs::read_dir(d) {
            let mut subs: Vec<PathBuf> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect();
            subs.sort();
            for s in subs {
                walk(&s, name, depth - 1, out);
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, name, 3, &mut found);
    match found.len() {
        0 => Err(missing(
            &dir.join(name),
            format!("{name} (searched 3 levels deep)"),
        )),
        1 => Ok(found.pop().unwrap()),
        _ => Err(Error::invalid(format!(
            "{}: several {name} found ({}); point at one fold",
            dir.display(),
            found
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// An opened fold; tiles are read on demand ([`PanNukeFold::get`]).
#[derive(Debug, Clone)]
pub struct PanNukeFold {
    images: NpyArray,
    masks: NpyArray,
    tissue_ids: Vec<u32>,
    tissue_names: Vec<String>,
    n: usize,
    height: usize,
    width: usize,
}

impl PanNukeFold {
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(missing(dir, "PanNuke fold directory"));
        }
        let images = NpyArray::open(find_file(dir, "images.npy")?)?;
        let masks = NpyArray::open(find_file(dir, "masks.npy")?)?;
        let types = NpyArray::open(find_file(dir, "types.npy")?)?;
        let is = images.shape().to_vec();
        if is.len() != 4 || is[3] != 3 {
            return Err(shape_err(
                images.path(),
                format!("{is:?}, expected (N, H, W, 3)"),
            ));
        }
        if !images.dtype().is_numeric() {
            return Err(format_err(images.path(), "images must be numeric"));
        }
        let (n, height, width) = (is[0], is[1], is[2]);
        let ms = masks.shape().to_vec();
        if ms != [n, height, width, 6] {
            return Err(shape_err(
                masks.path(),
                format!("{ms:?}, expected ({n}, {height}, {width}, 6) to match images.npy"),
            ));
        }
        if !masks.dtype().is_numeric() {
            return Err(format_err(masks.path(), "masks must be numeric"));
        }
        if types.shape() != [n] {
            return Err(shape_err(
                types.path(),
                format!("{:?}, expected ({n},) to match images.npy", types.shape()),
            ));
        }
        if !matches!(types.dtype(), DType::Unicode(_) | DType::Bytes(_)) {
            return Err(format_err(
                types.path(),
                "types must be an array of strings",
            ));
        }
        let mut tissue_names: Vec<String> = TISSUES.iter().map(|s| s.to_string()).collect();
        let mut tissue_ids = Vec::with_capacity(n);
        for t in types.read_strings()? {
            let id = match tissue_names.iter().position(|x| *x == t) {
                Some(i) => i,
                None => {
                    tissue_names.push(t);
                    tissue_names.len() - 1
                }
            };
            tissue_ids.push(id as u32);
        }
        Ok(Self {
            images,
            masks,
            tissue_ids,
            tissue_names,
            n,
            height,
            width,
        })
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn height(&self) -> usize {
        self.height
    }

    pub fn width(&self) -> usize {
        self.width
    }

    /// [`TISSUES`] followed by any other names found in `types.npy`.
    pub fn tissue_names(&self) -> &[String] {
        &self.tissue_names
    }

    /// Tile `i`, named `pannuke-NNNNN` (no `_`, so each tile is its own group for splits).
    pub fn get(&self, i: usize) -> Result<Sample> {
        if i >= self.n {
            return Err(Error::invalid(format!(
                "tile {i} out of range: the fold has {}",
                self.n
            )));
        }
        let px = self.height * self.width;
        let img = self.images.read_f64(i * px * 3, px * 3)?;
        let data = img
            .iter()
            .map(|&v| {
                if v.is_nan() {
                    0
                } else {
                    v.round().clamp(0.0, 255.0) as u8
                }
            })
            .collect();
        let masks = self.masks.read_f64(i * px * 6, px * 6)?;
        let name = format!("pannuke-{i:05}");
        let (inst, class_map, inst_class) = masks_to_labels(&masks, px)
            .map_err(|e| e.context(format!("{}: tile {i}", self.masks.path().display())))?;
        Ok(Sample {
            name,
            image: RgbImage {
                width: self.width,
                height: self.height,
                data,
            },
            inst,
            class_map,
            inst_class,
            tissue: Some(self.tissue_ids[i]),
        })
    }

    /// Reads every tile.
    pub fn load_all(&self) -> Result<Dataset> {
        let samples = (0..self.n)
            .map(|i| self.get(i))
            .collect::<Result<Vec<_>>>()?;
        Ok(Dataset {
            samples,
            class_names: CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
            tissue_names: self.tissue_names.clone(),
        })
    }
}

/// Loads a whole fold.
pub fn load(dir: impl AsRef<Path>) -> Result<Dataset> {
    PanNukeFold::open(dir)?.load_all()
}

/// Instance map, class map and class of each instance of one tile.
pub type PanNukeLabels = (Vec<u32>, Vec<u8>, HashMap<u32, u8>);

/// Converts one tile's `pixels x 6` masks (row-major, channel last) to an instance map, a class
/// map and the class of each instance (see the module documentation).
pub fn masks_to_labels(masks: &[f64], pixels: usize) -> Result<PanNukeLabels> {
    if masks.len() != pixels * 6 {
        return Err(Error::bad_data(format!(
            "{} mask values, expected {}",
            masks.len(),
            pixels * 6
        )));
    }
    // (channel, original id) -> new id, channel order then ascending id
    let mut keys: BTreeMap<(usize, u64), u32> = BTreeMap::new();
    for px in 0..pixels {
        for ch in 0..5 {
            let v = masks[px * 6 + ch];
            if v != 0.0 {
                if !(v > 0.0 && v.fract() == 0.0 && v < 4_294_967_296.0) {
                    return Err(Error::bad_data(format!(
                        "channel {ch} holds {v}, not a non-negative integer instance id"
                    )));
                }
                keys.insert((ch, v as u64), 0);
            }
        }
    }
    for (n, v) in keys.values_mut().enumerate() {
        *v = n as u32 + 1;
    }
    let mut inst = vec![0u32; pixels];
    for (px, out) in inst.iter_mut().enumerate() {
        for ch in 0..5 {
            let v = masks[px * 6 + ch];
            if v != 0.0 {
                *out = keys[&(ch, v as u64)];
            }
        }
    }
    let class_of: HashMap<u32, u8> = keys
        .iter()
        .map(|(&(ch, _), &id)| (id, ch as u8 + 1))
        .collect();
    let mut inst_class = HashMap::new();
    let class_map = inst
        .iter()
        .map(|&id| {
            if id == 0 {
                0
            } else {
                let c = class_of[&id];
                inst_class.insert(id, c);
                c
            }
        })
        .collect();
    Ok((inst, class_map, inst_class))
}
