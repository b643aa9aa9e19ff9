//! Differentiable building blocks that candle lacks (or gets wrong), and the CPU kernels
//! that make the network fast.
//!
//! The compositions (`pool`, `resize`, `shift`) use ops whose backward candle implements
//! correctly; each has a gradient test against finite differences in `f64`. The kernels
//! (`conv`, `batchnorm`, `fused`, the max pool) run on the CPU in f32 with their own
//! backward, fall back to candle's ops elsewhere, and are tested against those ops.

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

/// Whether `op`'s CPU kernel applies: every tensor is f32 on the CPU and `CSRANET_CANDLE_OPS`
/// does not switch `op` off ([`use_candle`]).
pub(crate) fn cpu_f32_kernel(op: &str, ts: &[&candle_core::Tensor]) -> bool {
    ts.iter()
        .all(|t| t.device().is_cpu() && t.dtype() == candle_core::DType::F32)
        && !use_candle(op)
}

/// An output pointer shared by the threads of a kernel that write disjoint parts of one
/// buffer.
#[derive(Clone, Copy)]
pub(crate) struct SharedMut(pub(crate) *mut f32);
// SAFETY: only used to write disjoint index ranges from different threads (see each use).
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// `len` values from `offset`.
    ///
    /// # Safety
    /// The range is in bounds and no other thread touches it while the slice lives.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice(&self, offset: usize, len: usize) -> &mut [f32] {
        std::slice::from_raw_parts_mut(self.0.add(offset), len)
    }
}
