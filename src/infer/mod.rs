//! Inference: image views, tiles and large images, instance post-processing.

pub mod image;
pub mod polygons;
pub mod postprocess;
pub mod segment;
pub mod tiling;

pub use image::{ImageView, Normalize, PixelFormat};
pub use postprocess::{Instance, PostprocessConfig};
pub use segment::{segment_image, segment_tile, SegmentOptions, Segmentation};
pub use tiling::{segment_stream, RegionSource};
