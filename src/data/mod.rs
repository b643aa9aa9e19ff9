//! Datasets: annotated tiles (CoNSeP-style folders, PanNuke folds), unlabelled image folders, and
//! deterministic labelled / unlabelled splits.
//!
//! - [`consep`]: `DIR/{images,inst,type}/NAME.*` with `inst_class.json` in `DIR` or its parent
//!   (one parent holding a `train/` and a `test/` split), and the flat layout of the test
//!   fixture tiles (`NAME.png`, `NAME_inst.png`, `NAME_type.png`, `inst_class.json`).
//! - [`pannuke`]: PanNuke's official fold format (`images.npy`, `masks.npy`, `types.npy`).
//! - [`folder`]: a plain folder of images without labels (the unlabelled pool).
//! - [`split`]: labelled / unlabelled split by fraction and seed, keeping tiles of one source
//!   image together.
//!
//! Every loader checks sizes and ids and reports the offending file in its [`DataError`].

pub mod combine;
pub mod consep;
pub mod folder;
pub mod npy;
pub mod pannuke;
pub mod split;
pub mod synthetic;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use split::{group_key, parse_fraction, split_by_source, Split};

use crate::imaging::RgbImage;

/// Errors of the dataset readers; each names the file (or tile) at fault.
#[derive(Debug)]
pub enum DataError {
    /// Reading a file or directory failed.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A required file or directory does not exist.
    Missing { path: PathBuf, what: String },
    /// An image could not be decoded or has an unexpected pixel format.
    Decode { path: PathBuf, msg: String },
    /// Sizes or array shapes do not fit together.
    Shape { path: PathBuf, msg: String },
    /// A file's content is malformed (JSON, npy header, values).
    Format { path: PathBuf, msg: String },
    /// Instance ids and their class table disagree.
    Ids { name: String, msg: String },
    /// A bad argument (fraction, seed, empty dataset, ...).
    Invalid(String),
}

impl DataError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::Missing {
                path: path.to_path_buf(),
                what: "file".into(),
            }
        } else {
            DataError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            DataError::Missing { path, what } => write!(f, "{}: missing {what}", path.display()),
            DataError::Decode { path, msg } => {
                write!(f, "{}: cannot decode image: {msg}", path.display())
            }
            DataError::Shape { path, msg } => write!(f, "{}: wrong shape: {msg}", path.display()),
            DataError::Format { path, msg } => write!(f, "{}: {msg}", path.display()),
            DataError::Ids { name, msg } => write!(f, "tile {name}: {msg}"),
            DataError::Invalid(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DataError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub use crate::imaging::UNKNOWN_CLASS;

/// One annotated tile.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// File stem (CoNSeP), or `pannuke-NNNNN` (index in the fold).
    pub name: String,
    pub image: RgbImage,
    /// Instance map, row-major, 0 = background; ids need not be contiguous.
    pub inst: Vec<u32>,
    /// Class map, row-major, 0 = background.
    pub class_map: Vec<u8>,
    /// Class of every instance id present in `inst` (and only those).
    pub inst_class: HashMap<u32, u8>,
    /// Tissue id (index into [`Dataset::tissue_names`] when that is not empty).
    pub tissue: Option<u32>,
}

impl Sample {
    pub fn width(&self) -> usize {
        self.image.width
    }

    pub fn height(&self) -> usize {
        self.image.height
    }
}

/// One image without labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnlabelledSample {
    /// File stem.
    pub name: String,
    pub path: PathBuf,
    pub image: RgbImage,
}

/// Annotated tiles plus their class and tissue names.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub samples: Vec<Sample>,
    /// `class_names[0]` is the background; class ids in the data are below `class_names.len()`.
    pub class_names: Vec<String>,
    /// Names of tissue ids, empty when the tissue ids have no names (or there are no tissues).
    pub tissue_names: Vec<String>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Number of classes including background.
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    pub fn names(&self) -> Vec<&str> {
        self.samples.iter().map(|s| s.name.as_str()).collect()
    }

    /// A dataset with clones of the samples at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        Dataset {
            samples: indices.iter().map(|&i| self.samples[i].clone()).collect(),
            class_names: self.class_names.clone(),
            tissue_names: self.tissue_names.clone(),
        }
    }

    /// [`split_by_source`] on the sample names.
    pub fn split(&self, fraction: f64, seed: u64) -> Result<Split, DataError> {
        split_by_source(&self.names(), fraction, seed)
    }
}

/// Loads annotated tiles from `path`, recognising the layout:
/// `images/` + `inst/` + `type/` (CoNSeP), `images.npy` / `masks.npy` (PanNuke fold, flat or
/// official layout), or `*_inst.png` + `inst_class.json` (flat tiles).
pub fn load_labelled(path: impl AsRef<Path>) -> Result<Dataset, DataError> {
    let path = path.as_ref();
    if !path.is_dir() {
        return Err(DataError::Missing {
            path: path.to_path_buf(),
            what: "dataset directory".into(),
        });
    }
    if path.join("images").is_dir() && path.join("inst").is_dir() {
        return consep::load_dir(path);
    }
    if pannuke::find_file(path, "masks.npy").is_ok() {
        return pannuke::load(path);
    }
    if path.join("inst_class.json").is_file() {
        return consep::load_flat(path);
    }
    Err(DataError::Invalid(format!(
        "{}: not a recognised dataset (expected images/ + inst/ + type/ with inst_class.json, a PanNuke fold with images.npy / masks.npy / types.npy, or NAME.png + NAME_inst.png + NAME_type.png with inst_class.json)",
        path.display()
    )))
}

/// Reads any PNG / JPEG as 8-bit RGB (grey is expanded, alpha dropped).
pub fn read_rgb(path: impl AsRef<Path>) -> Result<RgbImage, DataError> {
    let path = path.as_ref();
    let img = open_image(path)?.to_rgb8();
    let (w, h) = img.dimensions();
    Ok(RgbImage {
        width: w as usize,
        height: h as usize,
        data: img.into_raw(),
    })
}

fn open_image(path: &Path) -> Result<image::DynamicImage, DataError> {
    let reader = image::ImageReader::open(path).map_err(|e| DataError::io(path, e))?;
    let reader = reader
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?;
    reader.decode().map_err(|e| DataError::Decode {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })
}

/// Reads a single-channel 8- or 16-bit label image (instance map) as u32 values.
pub fn read_label_u32(path: impl AsRef<Path>) -> Result<(usize, usize, Vec<u32>), DataError> {
    let path = path.as_ref();
    match open_image(path)? {
        image::DynamicImage::ImageLuma16(b) => {
            let (w, h) = b.dimensions();
            Ok((
                w as usize,
                h as usize,
                b.into_raw().into_iter().map(u32::from).collect(),
            ))
        }
        image::DynamicImage::ImageLuma8(b) => {
            let (w, h) = b.dimensions();
            Ok((
                w as usize,
                h as usize,
                b.into_raw().into_iter().map(u32::from).collect(),
            ))
        }
        other => Err(DataError::Decode {
            path: path.to_path_buf(),
            msg: format!(
                "expected a single-channel 8/16-bit label image, found {:?}",
                other.color()
            ),
        }),
    }
}

/// Reads a single-channel label image (class map) as u8 values (16-bit images must stay below 256).
pub fn read_label_u8(path: impl AsRef<Path>) -> Result<(usize, usize, Vec<u8>), DataError> {
    let path = path.as_ref();
    let (w, h, v) = read_label_u32(path)?;
    if let Some(bad) = v.iter().find(|&&x| x > 255) {
        return Err(DataError::Format {
            path: path.to_path_buf(),
            msg: format!("class value {bad} does not fit in 8 bits"),
        });
    }
    Ok((w, h, v.into_iter().map(|x| x as u8).collect()))
}

/// Checks that the ids of `inst` and the keys of `inst_class` are the same set.
pub(crate) fn check_ids(
    name: &str,
    inst: &[u32],
    inst_class: &HashMap<u32, u8>,
) -> Result<(), DataError> {
    let mut ids: Vec<u32> = inst.iter().copied().filter(|&x| x != 0).collect();
    ids.sort_unstable();
    ids.dedup();
    let missing: Vec<u32> = ids
        .iter()
        .copied()
        .filter(|i| !inst_class.contains_key(i))
        .collect();
    let mut extra: Vec<u32> = inst_class
        .keys()
        .copied()
        .filter(|i| ids.binary_search(i).is_err())
        .collect();
    extra.sort_unstable();
    let show = |v: &[u32]| {
        v.iter()
            .take(5)
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !missing.is_empty() {
        return Err(DataError::Ids {
            name: name.into(),
            msg: format!(
                "{} instance id(s) of the instance map have no class (e.g. {})",
                missing.len(),
                show(&missing)
            ),
        });
    }
    if !extra.is_empty() {
        return Err(DataError::Ids {
            name: name.into(),
            msg: format!(
                "{} instance id(s) with a class are not in the instance map (e.g. {})",
                extra.len(),
                show(&extra)
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
