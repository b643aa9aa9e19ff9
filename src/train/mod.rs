//! Semi-supervised training: augmentation, category-adaptive sampling (CAS).

pub mod augment;
pub mod sampler;
