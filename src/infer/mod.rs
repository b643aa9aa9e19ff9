//! Inference: image views, tiles and large images, instance post-processing.

pub mod image;
