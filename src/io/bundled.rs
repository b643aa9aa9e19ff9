//! The default model: `lite` weights trained on CoNSeP, compiled into the library by the
//! default-on `bundled-weights` cargo feature (see `models/README.md` for the model card).

use crate::io::weights;
use crate::CsraNet;
use crate::{Error, Result};
use candle_core::Device;

/// File name of the bundled weights under `models/`.
pub const BUNDLED_FILE: &str = "lite-consep.safetensors";

#[cfg(feature = "bundled-weights")]
static BUNDLED: &[u8] = include_bytes!("../../models/lite-consep.safetensors");

/// The bundled safetensors bytes, or `None` in a build without `bundled-weights`.
pub fn bundled_weights() -> Option<&'static [u8]> {
    #[cfg(feature = "bundled-weights")]
    {
        Some(BUNDLED)
    }
    #[cfg(not(feature = "bundled-weights"))]
    {
        None
    }
}

/// Builds the bundled default model on `device`; [`crate::ErrorKind::NotAvailable`] in a
/// build without `bundled-weights`.
pub fn default_model(device: &Device) -> Result<CsraNet> {
    match bundled_weights() {
        Some(b) => weights::model_from_bytes(b, None, device),
        None => Err(Error::not_available(
            "this build of csranet has no bundled model (built without the `bundled-weights` \
             feature): load weights from a file instead",
        )),
    }
}

#[cfg(all(test, feature = "bundled-weights"))]
mod tests {
    use super::*;

    #[test]
    fn bundled_model_loads_with_its_configuration() {
        let m = default_model(&Device::Cpu).unwrap();
        assert_eq!(*m.config(), crate::Config::lite());
    }
}
