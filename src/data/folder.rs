//! A plain folder of images without labels (the unlabelled pool).

use super::{io_err, missing, read_rgb, UnlabelledSample};
use crate::Result;
use std::path::{Path, PathBuf};

/// Image files (`.png`, `.jpg`, `.jpeg`, any case) directly in `dir`, sorted by path.
pub fn list_images(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    if !dir.is_dir() {
        return Err(missing(dir, "image directory"));
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let p = e.map_err(|e| io_err(dir, e))?.path();
        let ok = p.is_file()
            && p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"));
        if ok {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// Reads every image of `dir` as RGB; an error if there is none or one cannot be decoded.
pub fn load_unlabelled(dir: impl AsRef<Path>) -> Result<Vec<UnlabelledSample>> {
    let dir = dir.as_ref();
    let paths = list_images(dir)?;
    if paths.is_empty() {
        return Err(missing(dir, "images (*.png, *.jpg, *.jpeg)"));
    }
    paths
        .into_iter()
        .map(|p| {
            let image = read_rgb(&p)?;
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            Ok(UnlabelledSample {
                name,
                path: p,
                image,
            })
        })
        .collect()
}
