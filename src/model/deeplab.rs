//! DeepLabv3 (+ RAA): the whole network.

use super::aspp::Aspp;
use super::config::Config;
use super::layers::{Conv, ConvBn, ConvSpec};
use super::params::{Init, ParamStore};
use super::resnet::ResNet;
use crate::ops::resize_bilinear;
use candle_core::{Device, Result, Tensor};

/// Output of [`CsraNet::forward_parts`].
pub struct Parts {
    /// Penultimate decoder features (after `classifier.3`, the head's ReLU),
    /// `[B, D, H/OS, W/OS]`.
    pub features: Tensor,
    /// Logits at the input size, `[B, num_classes, H, W]`.
    pub logits: Tensor,
}

/// CSRA-Net: ResNet encoder, ASPP (with optional RAA), DeepLabv3 head.
///
/// Parameter names equal torchvision's `deeplabv3_resnet*` (`backbone.*`, `classifier.*`);
/// RAA adds `classifier.0.raa.*`.
pub struct CsraNet {
    cfg: Config,
    store: ParamStore,
    backbone: ResNet,
    aspp: Aspp,
    head: ConvBn,
    cls: Conv,
}

impl CsraNet {
    /// A randomly initialised network (deterministic from `seed`) on `device`.
    pub fn new(cfg: &Config, device: &Device, seed: u64) -> Result<Self> {
        cfg.validate()?;
        let store = ParamStore::new(device, seed);
        let root = store.root();
        let backbone = ResNet::new(cfg, &root.pp("backbone"))?;
        let c = root.pp("classifier");
        let aspp = Aspp::new(cfg, &c.pp(0))?;
        let d = cfg.aspp_channels();
        let head = ConvBn::new(ConvSpec::new(d, d, 3), &c.pp(1), &c.pp(2), true)?;
        let cls = Conv::new(
            ConvSpec::new(d, cfg.num_classes, 1).bias(),
            &c.pp(4),
            Init::FanInUniform,
        )?;
        Ok(Self {
            cfg: cfg.clone(),
            store,
            backbone,
            aspp,
            head,
            cls,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The parameter store (names, variables, load/save).
    pub fn params(&self) -> &ParamStore {
        &self.store
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        self.store.device()
    }

    /// The classifier's 1x1 conv weight `[num_classes, D, 1, 1]` (the contrastive loss's
    /// negatives).
    pub fn classifier_weight(&self) -> &Tensor {
        &self.cls.weight
    }

    /// Encoder: `[B, 3, H, W] -> [B, C_enc, H/OS, W/OS]`.
    pub fn encode(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.backbone.forward_t(x, train)
    }

    /// Decoder from encoder features; logits upsampled to `(h, w)`.
    pub fn decode(&self, enc: &Tensor, h: usize, w: usize, train: bool) -> Result<Parts> {
        let y = self.aspp.forward_t(enc, train)?;
        let features = self.head.forward_t(&y, train)?;
        let low = self.cls.forward_t(&features, train)?;
        let logits = resize_bilinear(&low, h, w)?;
        Ok(Parts { features, logits })
    }

    /// Full forward returning features and logits.
    pub fn forward_parts(&self, x: &Tensor, train: bool) -> Result<Parts> {
        let (_, c, h, w) = x.dims4()?;
        if c != 3 {
            candle_core::bail!("input must have 3 channels, got {c}")
        }
        let enc = self.encode(x, train)?;
        self.decode(&enc, h, w, train)
    }

    /// `[B, 3, H, W]` normalised image -> `[B, num_classes, H, W]` logits.
    ///
    /// `train = false` is inference: batch norm uses its running statistics (applied inside
    /// the convolutions, [`ConvBn`](super::layers::ConvBn)) and the weights are constants, so
    /// no autograd graph is kept through them
    /// (like PyTorch's `inference_mode`; gradients with respect to a tracked input still flow).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.forward_parts(x, train)?.logits)
    }
}
