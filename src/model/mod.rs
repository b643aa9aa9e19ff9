//! The network: configuration, parameter store, layers, ResNet, ASPP, RAA, DeepLabv3, class
//! names and colours.

mod aspp;
pub mod classes;
pub mod config;
mod decoder;
mod deeplab;
pub mod layers;
pub mod params;
mod raa;
pub mod resnet;

pub use classes::Classes;
pub use config::Config;
pub use deeplab::{CsraNet, Parts};
pub use params::{Kind, ParamStore};
pub use resnet::Encoded;
