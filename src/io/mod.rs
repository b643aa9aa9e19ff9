//! Reading and writing files: safetensors weights, QuPath GeoJSON, overlay pictures.

pub mod bundled;
pub mod geojson;
pub mod overlay;
pub mod weights;
