//! Network configuration and named presets.

use candle_core::{bail, Result};
use serde::{Deserialize, Serialize};

/// Configuration of a CSRA-Net (DeepLabv3 + optional region-adaptive attention).
///
/// Every "our reading" choice of METHOD.md is a named field here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// ResNet depth: 18, 34 (basic blocks), 50 or 101 (bottlenecks).
    pub depth: usize,
    /// Width multiplier applied to the stem, every ResNet stage and the ASPP channels.
    pub width: f64,
    /// Output stride of the encoder: 8 (layer3+layer4 dilated) or 16 (layer4 dilated).
    pub output_stride: usize,
    /// Number of output classes including background (CoNSeP: 5, PanNuke: 6).
    pub num_classes: usize,
    /// Region-adaptive attention between the ASPP branches and the projection.
    pub raa: bool,
    /// RAA region size P (in feature-map pixels).
    pub raa_region: usize,
    /// RAA attention heads (0 = one head per 32 channels).
    pub raa_heads: usize,
    /// RAA DMLP expansion factor.
    pub raa_mlp_ratio: usize,
    /// Epsilon of the RAA difficulty standardisation.
    pub raa_eps: f64,
    /// Dropout after the ASPP projection in training (torchvision: 0.5).
    #[serde(default = "default_dropout")]
    pub aspp_dropout: f64,
}

fn default_dropout() -> f64 {
    0.5
}

impl Config {
    /// The paper's network: ResNet-50, output stride 8, RAA on, CoNSeP classes.
    pub fn paper() -> Self {
        Self {
            depth: 50,
            width: 1.0,
            output_stride: 8,
            num_classes: 5,
            raa: true,
            raa_region: 4,
            raa_heads: 0,
            raa_mlp_ratio: 4,
            raa_eps: 1e-6,
            aspp_dropout: 0.5,
        }
    }

    /// A small network for CPU: ResNet-18 at half width, output stride 8, RAA on.
    pub fn lite() -> Self {
        Self {
            depth: 18,
            width: 0.5,
            ..Self::paper()
        }
    }

    /// A preset by name (`paper` or `lite`).
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "paper" => Ok(Self::paper()),
            "lite" => Ok(Self::lite()),
            other => bail!("unknown preset `{other}` (expected `paper` or `lite`)"),
        }
    }

    /// Checks every field; the error names the bad one.
    pub fn validate(&self) -> Result<()> {
        if ![18, 34, 50, 101].contains(&self.depth) {
            bail!("config.depth must be 18, 34, 50 or 101, got {}", self.depth)
        }
        if !(self.width.is_finite() && self.width >= 0.0625 && self.width <= 4.0) {
            bail!("config.width must be in [0.0625, 4], got {}", self.width)
        }
        if self.output_stride != 8 && self.output_stride != 16 {
            bail!(
                "config.output_stride must be 8 or 16, got {}",
                self.output_stride
            )
        }
        if self.num_classes < 2 || self.num_classes > 255 {
            bail!(
                "config.num_classes must be in [2, 255], got {}",
                self.num_classes
            )
        }
        if !(self.aspp_dropout.is_finite() && (0.0..1.0).contains(&self.aspp_dropout)) {
            bail!(
                "config.aspp_dropout must be in [0, 1), got {}",
                self.aspp_dropout
            )
        }
        if self.raa {
            if self.raa_region == 0 || self.raa_region > 64 {
                bail!(
                    "config.raa_region must be in [1, 64], got {}",
                    self.raa_region
                )
            }
            let d = self.aspp_channels();
            let h = self.heads();
            if h == 0 || !d.is_multiple_of(h) {
                bail!("config.raa_heads ({h}) must divide the ASPP channels ({d})")
            }
            if self.raa_mlp_ratio == 0 || self.raa_mlp_ratio > 16 {
                bail!(
                    "config.raa_mlp_ratio must be in [1, 16], got {}",
                    self.raa_mlp_ratio
                )
            }
            if !(self.raa_eps.is_finite() && self.raa_eps > 0.0) {
                bail!("config.raa_eps must be positive, got {}", self.raa_eps)
            }
        }
        Ok(())
    }

    /// Channels scaled by the width multiplier (at least 8).
    pub fn scaled(&self, c: usize) -> usize {
        ((c as f64 * self.width).round() as usize).max(8)
    }

    /// True for ResNet-50/101 (bottleneck blocks, expansion 4).
    pub fn bottleneck(&self) -> bool {
        self.depth >= 50
    }

    /// Blocks per stage.
    pub fn blocks(&self) -> [usize; 4] {
        match self.depth {
            18 => [2, 2, 2, 2],
            34 | 50 => [3, 4, 6, 3],
            _ => [3, 4, 23, 3],
        }
    }

    /// Channels out of layer4.
    pub fn encoder_channels(&self) -> usize {
        self.scaled(512) * if self.bottleneck() { 4 } else { 1 }
    }

    /// ASPP output channels (256 at width 1).
    pub fn aspp_channels(&self) -> usize {
        self.scaled(256)
    }

    /// ASPP atrous rates for the output stride (torchvision: 12/24/36 at OS 8).
    pub fn aspp_rates(&self) -> [usize; 3] {
        if self.output_stride == 8 {
            [12, 24, 36]
        } else {
            [6, 12, 18]
        }
    }

    /// Attention heads actually used.
    pub fn heads(&self) -> usize {
        if self.raa_heads == 0 {
            (self.aspp_channels() / 32).max(1)
        } else {
            self.raa_heads
        }
    }

    /// Input sizes are padded to a multiple of this in `segment_tile`.
    pub fn size_multiple(&self) -> usize {
        if self.raa {
            self.output_stride * self.raa_region
        } else {
            self.output_stride
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::lite()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate() {
        Config::paper().validate().unwrap();
        Config::lite().validate().unwrap();
        assert_eq!(Config::paper().encoder_channels(), 2048);
        assert_eq!(Config::lite().encoder_channels(), 256);
    }

    #[test]
    fn bad_fields_are_named() {
        let mut c = Config::lite();
        c.depth = 20;
        assert!(c.validate().unwrap_err().to_string().contains("depth"));
        let mut c = Config::lite();
        c.output_stride = 32;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("output_stride"));
        let mut c = Config::lite();
        c.num_classes = 1;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("num_classes"));
        let mut c = Config::lite();
        c.raa_heads = 7;
        assert!(c.validate().unwrap_err().to_string().contains("raa_heads"));
        assert!(Config::preset("big").is_err());
    }
}
