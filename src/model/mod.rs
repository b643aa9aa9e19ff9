//! The network: configuration, parameter store, layers, ResNet, ASPP, RAA, DeepLabv3.

mod aspp;
pub mod config;
mod decoder;
mod deeplab;
pub mod layers;
pub mod params;
mod raa;
pub mod resnet;

pub use config::Config;
pub use deeplab::{CsraNet, Parts};
pub use params::{Kind, ParamStore};
pub use resnet::Encoded;
