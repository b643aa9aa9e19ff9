//! Atrous spatial pyramid pooling (torchvision's `ASPP`), with the RAA hook.

use super::config::Config;
use super::layers::{ConvBn, ConvSpec};
use super::params::Pb;
use super::raa::Raa;
use candle_core::{Result, Tensor};

#[derive(Clone, Debug)]
pub struct Aspp {
    /// `convs.0` (1x1) and `convs.1..3` (dilated 3x3).
    branches: Vec<ConvBn>,
    /// `convs.4`: global average pool, 1x1 conv, BN, ReLU (absent when
    /// `config.aspp_pooling` is off).
    pooling: Option<ConvBn>,
    project: ConvBn,
    raa: Option<Raa>,
    dropout: f32,
}

impl Aspp {
    /// Builds under `pb` (the caller passes `classifier.0`).
    pub fn new(cfg: &Config, pb: &Pb) -> Result<Self> {
        let cin = cfg.encoder_channels();
        let d = cfg.aspp_channels();
        let convs = pb.pp("convs");
        let mut branches = vec![ConvBn::new(
            ConvSpec::new(cin, d, 1),
            &convs.pp(0).pp(0),
            &convs.pp(0).pp(1),
            true,
        )?];
        for (i, r) in cfg.aspp_rates().iter().enumerate() {
            let b = convs.pp(i + 1);
            branches.push(ConvBn::new(
                ConvSpec::new(cin, d, 3).dilation(*r),
                &b.pp(0),
                &b.pp(1),
                true,
            )?);
        }
        let pooling = if cfg.aspp_pooling {
            let p = convs.pp(4);
            Some(ConvBn::new(
                ConvSpec::new(cin, d, 1),
                &p.pp(1),
                &p.pp(2),
                true,
            )?)
        } else {
            None
        };
        let n_in = if cfg.aspp_pooling { 5 } else { 4 };
        let pr = pb.pp("project");
        let project = ConvBn::new(ConvSpec::new(n_in * d, d, 1), &pr.pp(0), &pr.pp(1), true)?;
        let raa = if cfg.raa {
            Some(Raa::new(cfg, &pb.pp("raa"))?)
        } else {
            None
        };
        Ok(Self {
            branches,
            pooling,
            project,
            raa,
            dropout: cfg.aspp_dropout as f32,
        })
    }

    /// `[B, C_enc, h, w] -> [B, D, h, w]`
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let mut outs = self
            .branches
            .iter()
            .map(|b| b.forward_t(x, train))
            .collect::<Result<Vec<_>>>()?;
        if let Some(raa) = &self.raa {
            outs = raa.forward_t(&outs, train)?;
        }
        if let Some(pooling) = &self.pooling {
            // Bilinear upsampling of a 1x1 map is a broadcast.
            let pooled = pooling.forward_t(&x.mean_keepdim((2, 3))?, train)?;
            let (b, d, _, _) = pooled.dims4()?;
            outs.push(pooled.broadcast_as((b, d, h, w))?.contiguous()?);
        }
        let y = self.project.forward_t(&Tensor::cat(&outs, 1)?, train)?;
        if train && self.dropout > 0.0 {
            candle_nn::ops::dropout(&y, self.dropout)
        } else {
            Ok(y)
        }
    }
}
