//! Segmenting tiles and large images; the `CsraSegmentation` result and its accessors.
//!
//! Thread safety: `csra_segment_tile` and `csra_segment_image` take a `const CsraModel*`
//! and may run concurrently on one model from many threads. A `CsraSegmentation` is
//! immutable; its accessors may be called from any thread.

use super::model::CsraModel;
use super::status::{guard, not_null, read_versioned, CsraStatus, Fail};
use crate::imaging::{ImageView, PixelFormat};
use crate::infer::segment::MAX_TILE_SIDE;
use crate::infer::{segment_image, segment_tile, SegmentOptions, Segmentation};
use crate::Error;
use std::ffi::c_void;

/// Pixel layouts of `CsraImage.format`.
#[repr(u32)]
#[derive(Clone, Copy, Debug)]
pub enum CsraPixelFormat {
    /// 3 bytes per pixel: R, G, B.
    CSRA_PIXEL_RGB8 = 0,
    /// 4 bytes per pixel: R, G, B, A (alpha ignored).
    CSRA_PIXEL_RGBA8 = 1,
    /// 3 bytes per pixel: B, G, R.
    CSRA_PIXEL_BGR8 = 2,
    /// 4 bytes per pixel: B, G, R, A (alpha ignored).
    CSRA_PIXEL_BGRA8 = 3,
}

/// A caller-owned 8-bit image: `height` rows of `stride` bytes inside `data[0..len]`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CsraImage {
    /// First byte of the first row.
    pub data: *const u8,
    /// Bytes readable at `data` (checked against width, height and stride).
    pub len: usize,
    /// Pixels per row (>= 32).
    pub width: u32,
    /// Rows (>= 32).
    pub height: u32,
    /// Bytes from one row to the next (>= width * bytes per pixel).
    pub stride: usize,
    /// A `CsraPixelFormat` value.
    pub format: u32,
}

/// Options of a segmentation. Fill with `csra_segment_options_default`, then change fields.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CsraSegmentOptions {
    /// `sizeof(CsraSegmentOptions)`.
    pub struct_size: usize,
    /// Per-channel mean of `pixel / 255` (ImageNet by default).
    pub mean: [f32; 3],
    /// Per-channel standard deviation (ImageNet by default).
    pub std: [f32; 3],
    /// Instances below this many pixels are dropped (default 10).
    pub min_area: u32,
    /// h-maxima height on the distance map that separates touching nuclei (default 1.5).
    pub h: f32,
    /// Gaussian smoothing of the distance map, pixels (default 0.5).
    pub sigma: f32,
    /// Polygon simplification tolerance, pixels (default 1).
    pub polygon_tolerance: f32,
    /// Tile side for `csra_segment_image` (default 512).
    pub tile_size: u32,
    /// Pixels shared by neighbouring tiles, at most half the tile (default 0 = the model's:
    /// none for tile-invariant models, which read context around each tile instead, else 64;
    /// keep above twice the largest nucleus).
    pub overlap: u32,
    /// Tiles per forward pass in `csra_segment_image` (default 2; bounds memory).
    pub batch_size: u32,
    /// Non-zero: keep per-class probability maps in the result (default: 1).
    pub keep_probabilities: u32,
}

impl CsraSegmentOptions {
    fn defaults() -> Self {
        let d = SegmentOptions::default();
        Self {
            struct_size: std::mem::size_of::<Self>(),
            mean: d.normalize.mean,
            std: d.normalize.std,
            min_area: d.post.min_area,
            h: d.post.h,
            sigma: d.post.sigma,
            polygon_tolerance: d.post.polygon_tolerance,
            tile_size: d.tile_size as u32,
            overlap: d.overlap as u32,
            batch_size: d.batch_size as u32,
            keep_probabilities: d.keep_probabilities as u32,
        }
    }

    fn to_options(self) -> SegmentOptions {
        let mut o = SegmentOptions::default();
        o.normalize.mean = self.mean;
        o.normalize.std = self.std;
        o.post.min_area = self.min_area;
        o.post.h = self.h;
        o.post.sigma = self.sigma;
        o.post.polygon_tolerance = self.polygon_tolerance;
        o.tile_size = self.tile_size as usize;
        o.overlap = self.overlap as usize;
        o.batch_size = self.batch_size as usize;
        o.keep_probabilities = self.keep_probabilities != 0;
        o
    }
}

/// One nucleus. `polygon` points into the owning `CsraSegmentation` and lives as long.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CsraInstance {
    /// 1-based id, its value in the label map.
    pub id: u32,
    /// Class index (>= 1; 0 is background).
    pub class_id: u32,
    /// Mean probability of the class over the nucleus.
    pub score: f32,
    /// Pixels.
    pub area: u32,
    /// Centroid, pixel-corner coordinates (the centre of pixel (0,0) is (0.5, 0.5)).
    pub centroid_x: f32,
    pub centroid_y: f32,
    /// Bounding box `[x0, x1) x [y0, y1)` in pixels.
    pub bbox_x0: u32,
    pub bbox_y0: u32,
    pub bbox_x1: u32,
    pub bbox_y1: u32,
    /// `polygon_len` points as x, y pairs (`2 * polygon_len` floats): a simple, implicitly
    /// closed outline in pixel-corner coordinates.
    pub polygon: *const f32,
    pub polygon_len: usize,
}

/// Progress callback: `done` of `total` tiles finished. Return 0 to continue, anything
/// else to cancel (the call then returns `CSRA_CANCELLED`).
pub type CsraProgressFn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, done: u32, total: u32) -> i32>;

/// An opaque segmentation result.
pub struct CsraSegmentation {
    seg: Segmentation,
    polygons: Vec<Vec<f32>>,
}

/// Fills `out` with the default options.
#[no_mangle]
pub unsafe extern "C" fn csra_segment_options_default(out: *mut CsraSegmentOptions) -> CsraStatus {
    guard(|| {
        not_null!(out, "out");
        *out = CsraSegmentOptions::defaults();
        Ok(())
    })
}

unsafe fn view<'a>(image: *const CsraImage) -> Result<ImageView<'a>, Fail> {
    let im = *image;
    not_null!(im.data, "image->data");
    let format = PixelFormat::from_code(im.format).ok_or_else(|| {
        Fail::new(
            CsraStatus::CSRA_INVALID_ARGUMENT,
            format!(
                "image->format {} is not a CsraPixelFormat (0..=3)",
                im.format
            ),
        )
    })?;
    if im.len > isize::MAX as usize {
        return Err(Fail::new(
            CsraStatus::CSRA_INVALID_ARGUMENT,
            "image->len is too large",
        ));
    }
    let data = std::slice::from_raw_parts(im.data, im.len);
    ImageView::new(
        data,
        im.width as usize,
        im.height as usize,
        im.stride,
        format,
    )
    .map_err(|e| e.context("image"))
    .map_err(Fail::from)
}

unsafe fn options(p: *const CsraSegmentOptions) -> Result<SegmentOptions, Fail> {
    let o = if p.is_null() {
        SegmentOptions::default()
    } else {
        read_versioned(p, CsraSegmentOptions::defaults(), "CsraSegmentOptions")?.to_options()
    };
    o.validate()?;
    Ok(o)
}

fn boxed(seg: Segmentation) -> *mut CsraSegmentation {
    let polygons = seg
        .instances
        .iter()
        .map(|i| i.polygon.iter().flat_map(|p| [p[0], p[1]]).collect())
        .collect();
    Box::into_raw(Box::new(CsraSegmentation { seg, polygons }))
}

/// Segments one image (32x32 up to 2048x2048) in a single pass: class map,
/// probabilities and instances. `options` may be NULL for the defaults. Free the result
/// with `csra_segmentation_free`. Safe to call concurrently on one model.
#[no_mangle]
pub unsafe extern "C" fn csra_segment_tile(
    model: *const CsraModel,
    image: *const CsraImage,
    options: *const CsraSegmentOptions,
    out: *mut *mut CsraSegmentation,
) -> CsraStatus {
    guard(|| {
        not_null!(model, "model");
        not_null!(image, "image");
        not_null!(out, "out");
        let v = view(image)?;
        if v.width() > MAX_TILE_SIDE || v.height() > MAX_TILE_SIDE {
            return Err(Fail::new(
                CsraStatus::CSRA_INVALID_ARGUMENT,
                format!(
                    "image is {}x{}; csra_segment_tile takes at most \
                     {MAX_TILE_SIDE}x{MAX_TILE_SIDE} (use csra_segment_image)",
                    v.width(),
                    v.height()
                ),
            ));
        }
        let o = self::options(options)?;
        let net = (*model).net.read();
        let seg = segment_tile(&net, &v, &o)?;
        *out = boxed(seg);
        Ok(())
    })
}

/// Segments a large image by overlapping tiles (`tile_size`, `overlap`, `batch_size` in
/// `options`, NULL for the defaults) without seams: nuclei cut by an inner tile edge come
/// from the tile that holds them whole, duplicates are merged. Memory is bounded by the
/// tile batch plus the output maps (set `keep_probabilities` to 0 for big images).
/// `progress` (may be NULL) is called after each batch with `user_data`; a non-zero
/// return cancels: the call returns `CSRA_CANCELLED` and writes nothing.
#[no_mangle]
pub unsafe extern "C" fn csra_segment_image(
    model: *const CsraModel,
    image: *const CsraImage,
    options: *const CsraSegmentOptions,
    progress: CsraProgressFn,
    user_data: *mut c_void,
    out: *mut *mut CsraSegmentation,
) -> CsraStatus {
    guard(|| {
        not_null!(model, "model");
        not_null!(image, "image");
        not_null!(out, "out");
        let v = view(image)?;
        let o = self::options(options)?;
        let net = (*model).net.read();
        let mut cb = |done: usize, total: usize| match progress {
            None => true,
            Some(f) => f(user_data, done as u32, total as u32) == 0,
        };
        let seg = segment_image(&net, &v, &o, &mut cb)?
            .ok_or_else(|| Error::cancelled("cancelled by the progress callback"))?;
        *out = boxed(seg);
        Ok(())
    })
}

/// Width, height and number of classes of a result (any output pointer may be NULL).
#[no_mangle]
pub unsafe extern "C" fn csra_segmentation_size(
    seg: *const CsraSegmentation,
    width: *mut u32,
    height: *mut u32,
    num_classes: *mut u32,
) -> CsraStatus {
    guard(|| {
        not_null!(seg, "seg");
        let s = &(*seg).seg;
        if !width.is_null() {
            *width = s.width as u32;
        }
        if !height.is_null() {
            *height = s.height as u32;
        }
        if !num_classes.is_null() {
            *num_classes = s.num_classes as u32;
        }
        Ok(())
    })
}

/// The class map (`width * height` bytes, row-major, 0 = background), owned by `seg`.
#[no_mangle]
pub unsafe extern "C" fn csra_segmentation_class_map(
    seg: *const CsraSegmentation,
    data: *mut *const u8,
    len: *mut usize,
) -> CsraStatus {
    expose(seg, data, len, |s| Ok(&s.class_map))
}

/// Writes a pointer into `seg` and its length, after the shared NULL checks.
unsafe fn expose<T>(
    seg: *const CsraSegmentation,
    data: *mut *const T,
    len: *mut usize,
    pick: impl FnOnce(&Segmentation) -> Result<&[T], Fail>,
) -> CsraStatus {
    guard(|| {
        not_null!(seg, "seg");
        not_null!(data, "data");
        not_null!(len, "len");
        let v = pick(&(*seg).seg)?;
        *data = v.as_ptr();
        *len = v.len();
        Ok(())
    })
}

/// Per-class probabilities (`num_classes * height * width` floats, class-major), owned by
/// `seg`; `CSRA_NOT_AVAILABLE` when `keep_probabilities` was 0.
#[no_mangle]
pub unsafe extern "C" fn csra_segmentation_probabilities(
    seg: *const CsraSegmentation,
    data: *mut *const f32,
    len: *mut usize,
) -> CsraStatus {
    expose(seg, data, len, |s| {
        s.probabilities.as_deref().ok_or_else(|| {
            Fail::new(
                CsraStatus::CSRA_NOT_AVAILABLE,
                "probabilities were not kept (keep_probabilities = 0)",
            )
        })
    })
}

/// The instance label map (`width * height` values, 0 = background, else the instance
/// id), owned by `seg`.
#[no_mangle]
pub unsafe extern "C" fn csra_segmentation_labels(
    seg: *const CsraSegmentation,
    data: *mut *const u32,
    len: *mut usize,
) -> CsraStatus {
    expose(seg, data, len, |s| Ok(&s.labels))
}

/// Number of instances.
#[no_mangle]
pub unsafe extern "C" fn csra_segmentation_num_instances(
    seg: *const CsraSegmentation,
    out: *mut usize,
) -> CsraStatus {
    guard(|| {
        not_null!(seg, "seg");
        not_null!(out, "out");
        *out = (*seg).seg.instances.len();
        Ok(())
    })
}

/// Instance `index` (0-based, below `csra_segmentation_num_instances`).
#[no_mangle]
pub unsafe extern "C" fn csra_segmentation_instance(
    seg: *const CsraSegmentation,
    index: usize,
    out: *mut CsraInstance,
) -> CsraStatus {
    guard(|| {
        not_null!(seg, "seg");
        not_null!(out, "out");
        let s = &*seg;
        let Some(i) = s.seg.instances.get(index) else {
            return Err(Fail::new(
                CsraStatus::CSRA_INVALID_ARGUMENT,
                format!(
                    "index {index} is out of range ({} instances)",
                    s.seg.instances.len()
                ),
            ));
        };
        let poly = &s.polygons[index];
        *out = CsraInstance {
            id: i.id,
            class_id: i.class,
            score: i.score,
            area: i.area,
            centroid_x: i.centroid[0],
            centroid_y: i.centroid[1],
            bbox_x0: i.bbox[0],
            bbox_y0: i.bbox[1],
            bbox_x1: i.bbox[2],
            bbox_y1: i.bbox[3],
            polygon: poly.as_ptr(),
            polygon_len: poly.len() / 2,
        };
        Ok(())
    })
}

/// Frees a result. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn csra_segmentation_free(seg: *mut CsraSegmentation) {
    if !seg.is_null() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(Box::from_raw(seg))));
    }
}
