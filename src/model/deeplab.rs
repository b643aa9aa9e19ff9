//! DeepLabv3 (+ RAA): the whole network.

use super::aspp::Aspp;
use super::classes::Classes;
use super::config::Config;
use super::decoder::Decoder;
use super::layers::{Conv, ConvBn, ConvSpec};
use super::params::{Init, ParamStore};
use super::resnet::{Encoded, ResNet};
use crate::ops::resize_bilinear;
use candle_core::{Device, Result, Tensor};
use parking_lot::RwLock;
use std::sync::Arc;

/// Output of [`CsraNet::forward_parts`].
pub struct Parts {
    /// Penultimate features, the class head's input: after `classifier.3` (the seed head's
    /// ReLU), `[B, D, H/OS, W/OS]`, or the decoder's last stage, `[B, Dd, H/s, W/s]`.
    pub features: Tensor,
    /// Logits at the input size, `[B, num_classes, H, W]`.
    pub logits: Tensor,
    /// Horizontal and vertical instance-geometry maps at the input size, `[B, 2, H, W]`
    /// (models with the geometry head).
    pub geometry: Option<Tensor>,
}

/// The head after the ASPP: the seed's (`classifier.1..4` at the output stride) or the
/// decoder with its heads.
enum Head {
    Seed { conv: ConvBn, cls: Conv },
    Decoder(Decoder),
}

/// CSRA-Net: ResNet encoder, ASPP (with optional RAA), DeepLabv3 head or a decoder with
/// class and geometry heads.
///
/// Parameter names equal torchvision's `deeplabv3_resnet*` (`backbone.*`, `classifier.*`);
/// RAA adds `classifier.0.raa.*`, the decoder `decoder.*` (it replaces `classifier.1..4`).
pub struct CsraNet {
    cfg: Config,
    store: ParamStore,
    backbone: ResNet,
    aspp: Aspp,
    head: Head,
    /// Names and colours of the outputs; replaced whole when weights are loaded.
    classes: RwLock<Arc<Classes>>,
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
        let head = if cfg.decoder_stride == 0 {
            Head::Seed {
                conv: ConvBn::new(ConvSpec::new(d, d, 3), &c.pp(1), &c.pp(2), true)?,
                cls: Conv::new(
                    ConvSpec::new(d, cfg.num_classes, 1).bias(),
                    &c.pp(4),
                    Init::FanInUniform,
                )?,
            }
        } else {
            Head::Decoder(Decoder::new(cfg, &root.pp("decoder"))?)
        };
        Ok(Self {
            cfg: cfg.clone(),
            store,
            backbone,
            aspp,
            head,
            classes: RwLock::new(Arc::new(Classes::defaults(cfg.num_classes))),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The class names and colours (index 0 the background): those of the weights last
    /// loaded, else the defaults for the class count ([`Classes::defaults`]).
    pub fn classes(&self) -> Arc<Classes> {
        self.classes.read().clone()
    }

    /// Replaces the class names and colours; there must be `num_classes` of them.
    pub fn set_classes(&self, classes: Classes) -> Result<()> {
        classes.check_count(self.cfg.num_classes)?;
        *self.classes.write() = Arc::new(classes);
        Ok(())
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
        match &self.head {
            Head::Seed { cls, .. } => &cls.weight,
            Head::Decoder(d) => d.classifier_weight(),
        }
    }

    /// Encoder: `[B, 3, H, W]` -> layer4's output `[B, C_enc, H/OS, W/OS]` (`deep`) and
    /// the skip features at strides 2 and 4.
    pub fn encode(&self, x: &Tensor, train: bool) -> Result<Encoded> {
        self.backbone.forward_skips(x, train)
    }

    /// Everything after the encoder; logits (and geometry) upsampled to `(h, w)`.
    pub fn decode(&self, enc: &Encoded, h: usize, w: usize, train: bool) -> Result<Parts> {
        let y = self.aspp.forward_t(&enc.deep, train)?;
        match &self.head {
            Head::Seed { conv, cls } => {
                let features = conv.forward_t(&y, train)?;
                let low = cls.forward_t(&features, train)?;
                let logits = resize_bilinear(&low, h, w)?;
                Ok(Parts {
                    features,
                    logits,
                    geometry: None,
                })
            }
            Head::Decoder(dec) => {
                let out = dec.forward_t(&y, enc, train)?;
                let geometry = match out.geometry {
                    Some(g) => Some(resize_bilinear(&g, h, w)?),
                    None => None,
                };
                Ok(Parts {
                    features: out.features,
                    logits: resize_bilinear(&out.logits, h, w)?,
                    geometry,
                })
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The nuclei preset: class logits and HV maps at the input size; in training every
    /// parameter gets a gradient from the two heads.
    #[test]
    fn nuclei_preset_outputs_and_gradients() -> Result<()> {
        let dev = Device::Cpu;
        let mut cfg = Config::nuclei();
        cfg.width = 0.125;
        let net = CsraNet::new(&cfg, &dev, 5)?;
        // RAA's output conv starts at zero (identity); give it a value so it trains too.
        let w = net.params().get("classifier.0.raa.out.weight").unwrap();
        w.set(&Tensor::randn(0f32, 0.1, w.shape(), &dev)?)?;
        let x = Tensor::randn(0f32, 1., (2, 3, 64, 96), &dev)?;
        let parts = net.forward_parts(&x, true)?;
        assert_eq!(parts.logits.dims(), &[2, cfg.num_classes, 64, 96]);
        let g = parts.geometry.as_ref().expect("geometry head");
        assert_eq!(g.dims(), &[2, 2, 64, 96]);
        assert_eq!(parts.features.dims()[2..], [32, 48], "decoder at stride 2");
        let loss = (parts.logits.sqr()?.mean_all()? + g.sqr()?.mean_all()?)?;
        let grads = loss.backward()?;
        for (name, var) in net.params().trainable() {
            let gr = grads.get(var.as_tensor());
            assert!(gr.is_some(), "no gradient for {name}");
        }
        // The seed's network has no decoder parameters and no geometry.
        let seed = CsraNet::new(&Config::lite(), &dev, 5)?;
        assert!(seed.params().get("decoder.classes.weight").is_none());
        assert!(seed.forward_parts(&x, false)?.geometry.is_none());
        Ok(())
    }
}
