//! Differentiable building blocks that candle lacks (or gets wrong), written as
//! compositions of ops whose backward candle implements correctly.
//!
//! Each has a gradient test against finite differences in `f64`.

mod pool;
mod resize;
mod shift;

pub use pool::{max_pool_3x3_s2_p1, mean_pool};
pub use resize::{bilinear_matrix, resize_bilinear, upsample_nearest};
pub use shift::depthwise_conv3x3;

#[cfg(test)]
pub(crate) mod gradcheck;
