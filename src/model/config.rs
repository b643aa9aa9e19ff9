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
    /// ASPP atrous rates; `None` = torchvision's for the output stride (12/24/36 at OS 8,
    /// 6/12/18 at OS 16).
    #[serde(default)]
    pub aspp_rates: Option<[usize; 3]>,
    /// ASPP's image-pooling branch (torchvision: on). A global pool makes every output pixel
    /// depend on the whole input, so a tiled image would not give the same answer as one
    /// pass; the tile-invariant presets switch it off.
    #[serde(default = "default_true")]
    pub aspp_pooling: bool,
    /// RAA attention window, in regions per side: 0 = attention and the difficulty
    /// standardisation span all regions of the input (the seed's definition); `k > 0` = they
    /// run within fixed `k x k`-region windows on a grid anchored at the input's origin
    /// (Swin-style), so the output does not depend on the tile size.
    #[serde(default)]
    pub raa_window: usize,
    /// Decoder: 0 = the seed's DeepLabv3 head at the output stride, upsampled bilinearly;
    /// 4 or 2 = a DeepLabv3+-style decoder with encoder skip features back to stride 4 (layer1)
    /// or 2 (the stem), heads at that stride.
    #[serde(default)]
    pub decoder_stride: usize,
    /// Decoder channels at stride 4 (stride 2 uses half); 0 = 96 scaled by the width.
    #[serde(default)]
    pub decoder_channels: usize,
    /// Instance-geometry head: HoVer-Net's horizontal and vertical distance maps (2 channels
    /// in [-1, 1]); needs a decoder.
    #[serde(default)]
    pub geometry: bool,
    /// Resolution the model was trained at, in micrometres per pixel (`None` = unknown).
    #[serde(default)]
    pub mpp: Option<f64>,
}

fn default_dropout() -> f64 {
    0.5
}

fn default_true() -> bool {
    true
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
            aspp_rates: None,
            aspp_pooling: true,
            raa_window: 0,
            decoder_stride: 0,
            decoder_channels: 0,
            geometry: false,
            mpp: None,
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

    /// The default network for nuclei (beyond the seed): ResNet-18 at half width, output
    /// stride 16, ASPP with small rates (2/4/6: 32-96 px) and no global pooling, RAA on
    /// 32 px regions in fixed 2x2-region windows (64 px), a decoder back to stride 2 with skip
    /// features, and the
    /// instance-geometry (HV) head. Its output does not depend on how an image is tiled
    /// (tiles aligned to [`Config::size_multiple`]). Trained at 0.25 um/px (40x).
    pub fn nuclei() -> Self {
        Self {
            depth: 18,
            width: 0.5,
            output_stride: 16,
            raa_region: 2,
            raa_window: 2,
            aspp_rates: Some([2, 4, 6]),
            aspp_pooling: false,
            aspp_dropout: 0.1,
            decoder_stride: 2,
            decoder_channels: 0,
            geometry: true,
            mpp: Some(0.25),
            ..Self::paper()
        }
    }

    /// Names of the presets [`Config::preset`] knows.
    pub const PRESETS: [&'static str; 3] = ["nuclei", "lite", "paper"];

    /// A preset by name (`nuclei`, `lite` or `paper`).
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "nuclei" => Ok(Self::nuclei()),
            "paper" => Ok(Self::paper()),
            "lite" => Ok(Self::lite()),
            other => bail!("unknown preset `{other}` (expected `nuclei`, `lite` or `paper`)"),
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
            if self.raa_window > 32 {
                bail!(
                    "config.raa_window must be in [0, 32], got {}",
                    self.raa_window
                )
            }
        }
        if let Some(r) = self.aspp_rates {
            if r.iter().any(|&v| v == 0 || v > 64) {
                bail!("config.aspp_rates must be in [1, 64], got {r:?}")
            }
        }
        if ![0, 2, 4].contains(&self.decoder_stride) {
            bail!(
                "config.decoder_stride must be 0 (none), 2 or 4, got {}",
                self.decoder_stride
            )
        }
        if self.decoder_channels > 1024 {
            bail!(
                "config.decoder_channels must be at most 1024, got {}",
                self.decoder_channels
            )
        }
        if self.geometry && self.decoder_stride == 0 {
            bail!("config.geometry needs a decoder (config.decoder_stride 2 or 4)")
        }
        if let Some(m) = self.mpp {
            if !(m.is_finite() && (0.01..=100.0).contains(&m)) {
                bail!("config.mpp must be in [0.01, 100] um/px, got {m}")
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

    /// ASPP atrous rates: the configured ones, else torchvision's for the output stride
    /// (12/24/36 at OS 8).
    pub fn aspp_rates(&self) -> [usize; 3] {
        if let Some(r) = self.aspp_rates {
            r
        } else if self.output_stride == 8 {
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

    /// Decoder channels at stride 4 (stride 2 uses half).
    pub fn decoder_width(&self) -> usize {
        if self.decoder_channels > 0 {
            self.decoder_channels
        } else {
            self.scaled(96)
        }
    }

    /// Input sizes are padded to a multiple of this in `segment_tile`. For a tile-invariant
    /// network (see [`Config::tile_invariant`]) it is also the grid that tiles are aligned to:
    /// an RAA window, `output_stride * raa_region * raa_window` pixels.
    pub fn size_multiple(&self) -> usize {
        if self.raa {
            self.output_stride * self.raa_region * self.raa_window.max(1)
        } else {
            self.output_stride
        }
    }

    /// True when no part of the network pools over the whole input: the output at a pixel
    /// depends only on a bounded neighbourhood on a fixed grid, so any tiling aligned to
    /// [`Config::size_multiple`] with enough overlap gives the one-pass answer.
    pub fn tile_invariant(&self) -> bool {
        !self.aspp_pooling && (!self.raa || self.raa_window > 0)
    }

    /// Theoretical receptive field of one output pixel, in input pixels (the ResNet stages,
    /// ASPP's largest rate, RAA's window and the decoder), for choosing a tiling overlap.
    pub fn receptive_field(&self) -> usize {
        // (kernel, stride, dilation) of the convolutions along the deepest path.
        let mut rf = 1usize;
        let mut jump = 1usize;
        let add = |k: usize, s: usize, d: usize, rf: &mut usize, jump: &mut usize| {
            *rf += (k - 1) * d * *jump;
            *jump *= s;
        };
        add(7, 2, 1, &mut rf, &mut jump); // stem conv
        add(3, 2, 1, &mut rf, &mut jump); // max pool
        let dilate = if self.output_stride == 8 {
            [false, false, true, true]
        } else {
            [false, false, false, true]
        };
        let convs_per_block = 2; // 3x3 convs per block (bottlenecks have one; 2 is an upper bound)
        let mut dilation = 1;
        for (i, &n) in self.blocks().iter().enumerate() {
            let mut stride = if i == 0 { 1 } else { 2 };
            let previous = dilation;
            if dilate[i] {
                dilation *= stride;
                stride = 1;
            }
            for b in 0..n {
                for c in 0..convs_per_block {
                    let (s, d) = if b == 0 && c == 0 {
                        (stride, previous)
                    } else {
                        (1, dilation)
                    };
                    add(3, s, d, &mut rf, &mut jump);
                }
            }
        }
        let rmax = self.aspp_rates().into_iter().max().unwrap_or(1);
        add(3, 1, rmax, &mut rf, &mut jump);
        if self.raa {
            // A window (or, for the seed's RAA, at least one region) plus the DMLP's 3x3
            // depthwise conv on the region grid.
            let region = self.raa_region;
            add(region * self.raa_window.max(1), 1, 1, &mut rf, &mut jump);
            add(3, 1, region, &mut rf, &mut jump);
        }
        if self.decoder_stride == 0 {
            add(3, 1, 1, &mut rf, &mut jump); // classifier.1
        }
        rf
    }

    /// Pixels of context a tiler reads around each tile for this network (see
    /// `SegmentOptions::context`): three grid cells (192 px for the `nuclei` preset) for
    /// tile-invariant networks, none for the others. The theoretical receptive field
    /// ([`Config::receptive_field`]) is far wider, but the output depends little on its outer
    /// part: measured with the `nuclei` model on a 1000 x 1000 H&E image and 256 px tiles,
    /// 128 px of context match 94% of the one-pass nuclei, 192 px 99.3% (`csranet bench
    /// --tiling`).
    pub fn default_context(&self) -> usize {
        if self.tile_invariant() {
            3 * self.size_multiple()
        } else {
            0
        }
    }

    /// A tiling overlap (pixels shared by neighbouring tiles' cores) that suits the network:
    /// none for a tile-invariant network, whose tiles are read with context
    /// ([`Config::default_context`]) that holds every nucleus cut by a tile's edge whole; 64
    /// for the others, whose nuclei at a tile edge come from the neighbouring tile.
    pub fn default_overlap(&self) -> usize {
        if self.tile_invariant() {
            0
        } else {
            64
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
        Config::nuclei().validate().unwrap();
        assert!(Config::nuclei().tile_invariant());
        assert!(!Config::paper().tile_invariant());
        assert_eq!(Config::nuclei().size_multiple(), 64);
        assert_eq!(Config::nuclei().default_overlap(), 0);
        assert_eq!(Config::nuclei().default_context(), 192);
        assert_eq!(Config::paper().default_overlap(), 64);
        assert_eq!(Config::paper().default_context(), 0);
        // torchvision's ResNet-18 (no dilation) has a 435 px receptive field; ours at OS 16
        // with ASPP is larger, and the seed's OS 8 larger still.
        let (n, p) = (
            Config::nuclei().receptive_field(),
            Config::paper().receptive_field(),
        );
        assert!(n > 435 && p > n, "nuclei {n}, paper {p}");
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
