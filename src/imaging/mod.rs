//! The crate's image types, shared by the dataset readers, training, inference and the C ABI.
//!
//! - [`ImageView`]: a borrowed, checked view of caller-owned 8-bit pixels with a row stride
//!   and a [`PixelFormat`] (what inference and the C ABI read);
//! - [`RgbImage`]: an owned 8-bit RGB image without row padding (what the dataset readers
//!   decode);
//! - [`PlanarImage`]: planar (CHW) `f32` RGB in `[0, 1]` (what augmentation works on);
//! - [`Normalize`] with [`rgb_chw`] / [`planar_tensor`]: mean / std normalisation into
//!   network input tensors;
//! - [`blur`]: a separable Gaussian blur of one `f32` plane;
//! - [`IGNORE`]: the class-map value of pixels without a label; [`UNKNOWN_CLASS`]: a nucleus
//!   pixel of unknown class.
//!
//! The `image` crate's types appear only where files are read or written.

pub mod blur;
pub mod normalize;
pub mod planar;
pub mod rgb;
pub mod view;

pub use normalize::{planar_tensor, rgb_chw, Normalize};
pub use planar::{PlanarImage, CHANNELS};
pub use rgb::RgbImage;
pub use view::{ImageView, PixelFormat, MAX_SIDE, MIN_SIDE};

/// Class-map value of pixels that carry no label (padding, unannotated): losses and metrics
/// skip them.
pub const IGNORE: u8 = 255;

/// Class-map value of a nucleus pixel whose class is unknown (a set with instances only, or
/// classes that do not map onto the model's): it trains the foreground and geometry outputs,
/// not the class.
pub const UNKNOWN_CLASS: u8 = 254;
