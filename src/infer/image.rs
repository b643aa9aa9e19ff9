//! The checked image view and the normalisation that inference reads images through; both are
//! defined in [`crate::imaging`] and re-exported here.

pub use crate::imaging::{ImageView, Normalize, PixelFormat, MAX_SIDE, MIN_SIDE};
