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
//! Every loader checks sizes and ids and reports the offending file in its [`crate::Error`]:
//! a file or directory that is missing or unreadable is [`crate::ErrorKind::Io`]; malformed
//! content (an image that does not decode, wrong shapes, ids that disagree) is
//! [`crate::ErrorKind::BadData`]; a bad argument (a fraction, an unrecognised layout) is
//! [`crate::ErrorKind::InvalidArgument`].

pub mod combine;
pub mod consep;
pub mod folder;
pub mod npy;
pub mod pannuke;
pub mod split;
pub mod synthetic;

use crate::{Error, Result};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use split::{group_key, parse_fraction, split_by_source, Split};

pub use crate::imaging::RgbImage;

/// `PATH: missing WHAT` ([`crate::ErrorKind::Io`]): a required file or directory does not
/// exist.
pub(crate) fn missing(path: &Path, what: impl fmt::Display) -> Error {
    Error::io_msg(format!("{}: missing {what}", path.display()))
}

/// Reading `path` failed ([`crate::ErrorKind::Io`]); a file that does not exist reads
/// `PATH: missing file`.
pub(crate) fn io_err(path: &Path, source: std::io::Error) -> Error {
    if source.kind() == std::io::ErrorKind::NotFound {
        missing(path, "file").with_source(source)
    } else {
        Error::io(path, source)
    }
}

/// An image that cannot be decoded or has an unexpected pixel format
/// ([`crate::ErrorKind::BadData`]).
pub(crate) fn decode_err(path: &Path, msg: impl fmt::Display) -> Error {
    Error::bad_data(format!("{}: cannot decode image: {msg}", path.display()))
}

/// Sizes or array shapes that do not fit together ([`crate::ErrorKind::BadData`]).
pub(crate) fn shape_err(path: &Path, msg: impl fmt::Display) -> Error {
    Error::bad_data(format!("{}: wrong shape: {msg}", path.display()))
}

/// Malformed file content: JSON, npy header, values ([`crate::ErrorKind::BadData`]).
pub(crate) fn format_err(path: &Path, msg: impl fmt::Display) -> Error {
    Error::bad_data(format!("{}: {msg}", path.display()))
}

/// Instance ids and their class table disagree ([`crate::ErrorKind::BadData`]).
pub(crate) fn ids_err(name: &str, msg: impl fmt::Display) -> Error {
    Error::bad_data(format!("tile {name}: {msg}"))
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
    pub fn split(&self, fraction: f64, seed: u64) -> Result<Split> {
        split_by_source(&self.names(), fraction, seed)
    }
}

/// Loads annotated tiles from `path`, recognising the layout:
/// `images/` + `inst/` + `type/` (CoNSeP), `images.npy` / `masks.npy` (PanNuke fold, flat or
/// official layout), or `*_inst.png` + `inst_class.json` (flat tiles).
pub fn load_labelled(path: impl AsRef<Path>) -> Result<Dataset> {
    let path = path.as_ref();
    if !path.is_dir() {
        return Err(missing(path, "dataset directory"));
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
    Err(Error::invalid(format!(
        "{}: not a recognised dataset (expected images/ + inst/ + type/ with inst_class.json, a PanNuke fold with images.npy / masks.npy / types.npy, or NAME.png + NAME_inst.png + NAME_type.png with inst_class.json)",
        path.display()
    )))
}

/// Reads any PNG / JPEG as 8-bit RGB (grey is expanded, alpha dropped).
pub fn read_rgb(path: impl AsRef<Path>) -> Result<RgbImage> {
    let path = path.as_ref();
    let img = open_image(path)?.to_rgb8();
    let (w, h) = img.dimensions();
    Ok(RgbImage {
        width: w as usize,
        height: h as usize,
        data: img.into_raw(),
    })
}

fn open_image(path: &Path) -> Result<image::DynamicImage> {
    let reader = image::ImageReader::open(path).map_err(|e| io_err(path, e))?;
    let reader = reader.with_guessed_format().map_err(|e| io_err(path, e))?;
    reader.decode().map_err(|e| decode_err(path, e))
}

/// Reads a single-channel 8- or 16-bit label image (instance map) as u32 values.
pub fn read_label_u32(path: impl AsRef<Path>) -> Result<(usize, usize, Vec<u32>)> {
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
        other => Err(decode_err(
            path,
            format!(
                "expected a single-channel 8/16-bit label image, found {:?}",
                other.color()
            ),
        )),
    }
}

/// Reads a single-channel label image (class map) as u8 values (16-bit images must stay below 256).
pub fn read_label_u8(path: impl AsRef<Path>) -> Result<(usize, usize, Vec<u8>)> {
    let path = path.as_ref();
    let (w, h, v) = read_label_u32(path)?;
    if let Some(bad) = v.iter().find(|&&x| x > 255) {
        return Err(format_err(
            path,
            format!("class value {bad} does not fit in 8 bits"),
        ));
    }
    Ok((w, h, v.into_iter().map(|x| x as u8).collect()))
}

/// Checks that the ids of `inst` and the keys of `inst_class` are the same set.
pub(crate) fn check_ids(name: &str, inst: &[u32], inst_class: &HashMap<u32, u8>) -> Result<()> {
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
        return Err(ids_err(
            name,
            format!(
                "{} instance id(s) of the instance map have no class (e.g. {})",
                missing.len(),
                show(&missing)
            ),
        ));
    }
    if !extra.is_empty() {
        return Err(ids_err(
            name,
            format!(
                "{} instance id(s) with a class are not in the instance map (e.g. {})",
                extra.len(),
                show(&extra)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
