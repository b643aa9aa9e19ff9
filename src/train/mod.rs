//! Semi-supervised training: augmentation, category-adaptive sampling (CAS).

pub mod augment;
pub mod geometry;
pub mod losses;
pub mod optim;
pub mod run;
pub mod sampler;
pub mod trainer;
