//! Reading and writing files: safetensors weights.

pub mod weights;
