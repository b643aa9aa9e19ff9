//! csranet: semi-supervised nucleus segmentation (CSRA-Net) with a stable C ABI.
//!
//! The Rust API: build a [`CsraNet`] from a [`Config`], load weights with
//! [`io::weights`], segment with [`infer`], score with [`eval`] (model over a dataset) and
//! [`metrics`] (pure metrics of label maps). Fallible functions return [`Result`], whose
//! [`Error`] says by its [`ErrorKind`] what went wrong.

pub mod data;
pub mod error;
pub mod eval;
pub mod ffi;
pub mod imaging;
pub mod infer;
pub mod io;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod train;

pub use error::{Error, ErrorKind, Result};
pub use model::{Config, CsraNet};
