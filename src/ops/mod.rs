//! Differentiable building blocks that candle lacks (or gets wrong), written as
//! compositions of ops whose backward candle implements correctly.
//!
//! Each has a gradient test against finite differences in `f64`.

mod batchnorm;
mod conv;
mod fused;
mod pool;
mod resize;
mod shift;

pub use batchnorm::{batch_norm_train, BatchStats};
pub use conv::{conv2d, conv2d_scaled, ConvParams};
pub use fused::{add_relu, relu_grad};
pub use pool::{max_pool_3x3_s2_p1, mean_pool};
pub use resize::{bilinear_matrix, resize_bilinear, upsample_nearest};
pub use shift::depthwise_conv3x3;

#[cfg(test)]
pub(crate) mod gradcheck;

/// True when `CSRANET_CANDLE_OPS` (a comma-separated list, read once) names `op` (`conv`,
/// `bn`, `fused`) or `all`: that op then runs as candle's own composition instead of this module's CPU
/// kernel. For A/B measurements (`csranet bench`); results agree to float rounding.
pub fn use_candle(op: &str) -> bool {
    static LIST: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    LIST.get_or_init(|| {
        std::env::var("CSRANET_CANDLE_OPS")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .collect()
    })
    .iter()
    .any(|s| s == op || s == "all")
}

/// The contiguous f32 data of a CPU storage, for the custom ops' kernels; `what` names the
/// op and operand in the error (`"conv2d: input"`).
pub(crate) fn f32_slice<'a>(
    s: &'a candle_core::CpuStorage,
    l: &candle_core::Layout,
    what: &str,
) -> candle_core::Result<&'a [f32]> {
    use candle_core::backend::BackendStorage;
    let candle_core::CpuStorage::F32(v) = s else {
        candle_core::bail!("{what} must be f32, got {:?}", s.dtype())
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{what} must be contiguous"),
    }
}
