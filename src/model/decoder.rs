//! A light DeepLabv3+-style decoder (beyond the seed's network): the ASPP output brought back
//! to stride 4 with layer1's features and, optionally, to stride 2 with the stem's, then the
//! class head and the instance-geometry (HV) head at that stride, upsampled bilinearly to the
//! input size. Parameter names: `decoder.*`.

use super::config::Config;
use super::layers::{Conv, ConvBn, ConvSpec};
use super::params::{Init, Pb};
use super::resnet::Encoded;
use crate::ops::resize_bilinear;
use candle_core::{Result, Tensor};

/// One decoder stage: skip features reduced by a 1x1 conv, concatenated with the upsampled
/// deeper features, fused by two 3x3 convs (one at stride 2).
#[derive(Clone, Debug)]
struct Stage {
    reduce: ConvBn,
    fuse: Vec<ConvBn>,
}

impl Stage {
    fn new(
        cin_deep: usize,
        cin_skip: usize,
        reduced: usize,
        cout: usize,
        convs: usize,
        pb: &Pb,
    ) -> Result<Self> {
        let reduce = ConvBn::new(
            ConvSpec::new(cin_skip, reduced, 1),
            &pb.pp("reduce").pp("conv"),
            &pb.pp("reduce").pp("bn"),
            true,
        )?;
        let mut fuse = Vec::with_capacity(convs);
        let mut cin = cin_deep + reduced;
        for i in 0..convs {
            let f = pb.pp("fuse").pp(i);
            fuse.push(ConvBn::new(
                ConvSpec::new(cin, cout, 3),
                &f.pp("conv"),
                &f.pp("bn"),
                true,
            )?);
            cin = cout;
        }
        Ok(Self { reduce, fuse })
    }

    /// `deep [B, Cd, h, w]`, `skip [B, Cs, H, W]` -> `[B, cout, H, W]`.
    fn forward_t(&self, deep: &Tensor, skip: &Tensor, train: bool) -> Result<Tensor> {
        let (_, _, h, w) = skip.dims4()?;
        let up = resize_bilinear(deep, h, w)?;
        let s = self.reduce.forward_t(skip, train)?;
        let mut y = Tensor::cat(&[&up, &s], 1)?;
        for f in &self.fuse {
            y = f.forward_t(&y, train)?;
        }
        Ok(y)
    }
}

/// Decoder and heads. Outputs of [`Decoder::forward_t`]: the last stage's features, the class
/// logits and the geometry maps at the decoder's stride.
#[derive(Clone, Debug)]
pub struct Decoder {
    s4: Stage,
    s2: Option<Stage>,
    classes: Conv,
    geometry: Option<Conv>,
}

/// Decoder outputs at the decoder's stride.
pub struct Decoded {
    /// Features the heads read, `[B, Dd, H/s, W/s]` (the contrastive term's embedding).
    pub features: Tensor,
    /// Class logits, `[B, num_classes, H/s, W/s]`.
    pub logits: Tensor,
    /// HV maps (linear), `[B, 2, H/s, W/s]`, when the geometry head is on.
    pub geometry: Option<Tensor>,
}

impl Decoder {
    /// Builds under `pb` (the caller passes `decoder`).
    pub fn new(cfg: &Config, pb: &Pb) -> Result<Self> {
        let d = cfg.aspp_channels();
        let dc = cfg.decoder_width();
        let stem_c = cfg.scaled(64);
        let l1_c = cfg.scaled(64) * if cfg.bottleneck() { 4 } else { 1 };
        let s4 = Stage::new(d, l1_c, (dc / 4).max(8), dc, 2, &pb.pp("s4"))?;
        let (s2, out_c) = if cfg.decoder_stride == 2 {
            let dc2 = (dc / 2).max(8);
            (
                Some(Stage::new(
                    dc,
                    stem_c,
                    (dc2 / 2).max(8),
                    dc2,
                    1,
                    &pb.pp("s2"),
                )?),
                dc2,
            )
        } else {
            (None, dc)
        };
        let classes = Conv::new(
            ConvSpec::new(out_c, cfg.num_classes, 1).bias(),
            &pb.pp("classes"),
            Init::FanInUniform,
        )?;
        let geometry = if cfg.geometry {
            Some(Conv::new(
                ConvSpec::new(out_c, 2, 1).bias(),
                &pb.pp("geometry"),
                Init::FanInUniform,
            )?)
        } else {
            None
        };
        Ok(Self {
            s4,
            s2,
            classes,
            geometry,
        })
    }

    /// The class head's 1x1 conv weight `[num_classes, Dd, 1, 1]`.
    pub fn classifier_weight(&self) -> &Tensor {
        &self.classes.weight
    }

    /// `aspp [B, D, H/OS, W/OS]` and the encoder's skips -> features and heads at the
    /// decoder's stride.
    pub fn forward_t(&self, aspp: &Tensor, enc: &Encoded, train: bool) -> Result<Decoded> {
        let mut y = self.s4.forward_t(aspp, &enc.stride4, train)?;
        if let Some(s2) = &self.s2 {
            y = s2.forward_t(&y, &enc.stride2, train)?;
        }
        let logits = self.classes.forward_t(&y, train)?;
        let geometry = match &self.geometry {
            Some(g) => Some(g.forward_t(&y, train)?),
            None => None,
        };
        Ok(Decoded {
            features: y,
            logits,
            geometry,
        })
    }
}
