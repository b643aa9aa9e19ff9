//! ResNet encoders (torchvision layout and names) with dilation for DeepLabv3.

use super::config::Config;
use super::layers::{ConvBn, ConvSpec};
use super::params::Pb;
use crate::ops::max_pool_3x3_s2_p1;
use candle_core::{Result, Tensor};

/// One residual block: basic (two 3x3) or bottleneck (1x1, 3x3, 1x1).
#[derive(Clone, Debug)]
struct Block {
    convs: Vec<ConvBn>,
    downsample: Option<ConvBn>,
}

impl Block {
    #[allow(clippy::too_many_arguments)]
    fn new(
        bottleneck: bool,
        inplanes: usize,
        planes: usize,
        stride: usize,
        dilation: usize,
        downsample: bool,
        pb: &Pb,
    ) -> Result<Self> {
        let expansion = if bottleneck { 4 } else { 1 };
        let cb = |i: usize, s: ConvSpec, relu: bool| {
            ConvBn::new(
                s,
                &pb.pp(format!("conv{i}")),
                &pb.pp(format!("bn{i}")),
                relu,
            )
        };
        let convs = if bottleneck {
            vec![
                cb(1, ConvSpec::new(inplanes, planes, 1), true)?,
                cb(
                    2,
                    ConvSpec::new(planes, planes, 3)
                        .stride(stride)
                        .dilation(dilation),
                    true,
                )?,
                cb(3, ConvSpec::new(planes, planes * 4, 1), false)?,
            ]
        } else {
            vec![
                cb(
                    1,
                    ConvSpec::new(inplanes, planes, 3)
                        .stride(stride)
                        .dilation(dilation),
                    true,
                )?,
                cb(
                    2,
                    ConvSpec::new(planes, planes, 3).dilation(dilation),
                    false,
                )?,
            ]
        };
        let downsample = if downsample {
            let d = pb.pp("downsample");
            Some(ConvBn::new(
                ConvSpec::new(inplanes, planes * expansion, 1).stride(stride),
                &d.pp(0),
                &d.pp(1),
                false,
            )?)
        } else {
            None
        };
        Ok(Self { convs, downsample })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut y = x.clone();
        for c in &self.convs {
            y = c.forward_t(&y, train)?;
        }
        let id = match &self.downsample {
            Some(d) => d.forward_t(x, train)?,
            None => x.clone(),
        };
        crate::ops::add_relu(&y, &id)
    }
}

/// The encoder: stem, max pool, four stages.
#[derive(Clone, Debug)]
pub struct ResNet {
    stem: ConvBn,
    layers: Vec<Vec<Block>>,
}

impl ResNet {
    /// Builds under `pb` (the caller passes `backbone`). Dilation follows torchvision's
    /// `replace_stride_with_dilation`: the first block of a dilated stage keeps the
    /// previous dilation, the others use the new one.
    pub fn new(cfg: &Config, pb: &Pb) -> Result<Self> {
        let stem_c = cfg.scaled(64);
        let stem = ConvBn::new(
            ConvSpec::new(3, stem_c, 7).stride(2).padding(3),
            &pb.pp("conv1"),
            &pb.pp("bn1"),
            true,
        )?;
        let expansion = if cfg.bottleneck() { 4 } else { 1 };
        let dilate = if cfg.output_stride == 8 {
            [false, false, true, true]
        } else {
            [false, false, false, true]
        };
        let mut inplanes = stem_c;
        let mut dilation = 1;
        let mut layers = Vec::new();
        for (i, (&n, base)) in cfg.blocks().iter().zip([64, 128, 256, 512]).enumerate() {
            let planes = cfg.scaled(base);
            let mut stride = if i == 0 { 1 } else { 2 };
            let previous = dilation;
            if dilate[i] {
                dilation *= stride;
                stride = 1;
            }
            let lpb = pb.pp(format!("layer{}", i + 1));
            let mut blocks = Vec::with_capacity(n);
            let ds = stride != 1 || inplanes != planes * expansion;
            blocks.push(Block::new(
                cfg.bottleneck(),
                inplanes,
                planes,
                stride,
                previous,
                ds,
                &lpb.pp(0),
            )?);
            inplanes = planes * expansion;
            for j in 1..n {
                blocks.push(Block::new(
                    cfg.bottleneck(),
                    inplanes,
                    planes,
                    1,
                    dilation,
                    false,
                    &lpb.pp(j),
                )?);
            }
            layers.push(blocks);
        }
        Ok(Self { stem, layers })
    }

    /// `[B, 3, H, W] -> [B, C_enc, H/OS, W/OS]` (rounded up).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.forward_skips(x, train)?.deep)
    }

    /// The encoder output and the skip features a decoder takes: the stem's output at
    /// stride 2 and layer1's at stride 4.
    pub fn forward_skips(&self, x: &Tensor, train: bool) -> Result<Encoded> {
        let stem = self.stem.forward_t(x, train)?;
        let mut y = max_pool_3x3_s2_p1(&stem)?;
        let mut layer1 = None;
        for (i, layer) in self.layers.iter().enumerate() {
            for b in layer {
                y = b.forward_t(&y, train)?;
            }
            if i == 0 {
                layer1 = Some(y.clone());
            }
        }
        Ok(Encoded {
            stride2: stem,
            stride4: layer1.expect("four stages"),
            deep: y,
        })
    }
}

/// Encoder outputs: `[B, C, H/s, W/s]` at strides 2, 4 and the output stride.
#[derive(Clone, Debug)]
pub struct Encoded {
    /// The stem's output (after its ReLU, before the max pool).
    pub stride2: Tensor,
    /// layer1's output.
    pub stride4: Tensor,
    /// layer4's output (the ASPP's input).
    pub deep: Tensor,
}
