//! Region-adaptive attention (METHOD.md §1, "RAA"), between the four convolutional ASPP
//! branches and the ASPP projection.

use super::config::Config;
use super::layers::{param, softmax_last, Conv, ConvSpec, Linear};
use super::params::{Init, Pb};
use crate::ops::{depthwise_conv3x3, mean_pool, upsample_nearest};
use candle_core::{Result, Tensor};

#[derive(Clone, Debug)]
pub struct Raa {
    /// Learnable sharpness of the dynamic weight, `[1]`, initialised to 1.
    gamma: Tensor,
    /// One learned embedding per scale, `[4, D]`.
    scale_embed: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    fc1: Linear,
    dw_weight: Tensor,
    dw_bias: Tensor,
    fc2: Linear,
    /// 1x1 conv back to the map; zero-initialised so a new RAA starts as the identity.
    out: Conv,
    p: usize,
    /// Attention window in regions per side (0 = the whole input).
    window: usize,
    heads: usize,
    eps: f64,
}

impl Raa {
    pub fn new(cfg: &Config, pb: &Pb) -> Result<Self> {
        let d = cfg.aspp_channels();
        let e = d * cfg.raa_mlp_ratio;
        let mlp = pb.pp("mlp");
        Ok(Self {
            gamma: pb.weight(1, "gamma", Init::Const(1.0))?,
            scale_embed: pb.weight((4, d), "scale_embed", Init::Normal(0.02))?,
            q: Linear::new(d, d, &pb.pp("q"))?,
            k: Linear::new(d, d, &pb.pp("k"))?,
            v: Linear::new(d, d, &pb.pp("v"))?,
            fc1: Linear::new(d, e, &mlp.pp("fc1"))?,
            dw_weight: mlp
                .pp("dw")
                .weight((e, 1, 3, 3), "weight", Init::FanInUniform)?,
            dw_bias: mlp.pp("dw").weight(e, "bias", Init::Const(0.0))?,
            fc2: Linear::new(e, d, &mlp.pp("fc2"))?,
            out: Conv::new(
                ConvSpec::new(d, d, 1).bias(),
                &pb.pp("out"),
                Init::Const(0.0),
            )?,
            p: cfg.raa_region,
            window: cfg.raa_window,
            heads: cfg.heads(),
            eps: cfg.raa_eps,
        })
    }

    /// Region difficulty (Eq. 12-13) without gradient to the features:
    /// `[B, D, H, W] -> [B, R]` variance of the Sobel magnitude of the channel mean per region.
    fn difficulty(&self, f: &Tensor) -> Result<Tensor> {
        let (b, _, h, w) = f.dims4()?;
        let m = f.detach().mean_keepdim(1)?; // [B, 1, H, W]
        let sobel_x = Tensor::new(&[-1f32, 0., 1., -2., 0., 2., -1., 0., 1.], f.device())?
            .to_dtype(f.dtype())?
            .reshape((1, 1, 3, 3))?;
        let sobel_y = sobel_x.transpose(2, 3)?.contiguous()?;
        let gx = m.conv2d(&sobel_x, 1, 1, 1, 1)?;
        let gy = m.conv2d(&sobel_y, 1, 1, 1, 1)?;
        let g = (gx.sqr()? + gy.sqr()?)?.sqrt()?;
        let mean = mean_pool(&g, self.p)?;
        let var = (mean_pool(&g.sqr()?, self.p)? - mean.sqr()?)?.relu()?;
        var.reshape((b, (h / self.p) * (w / self.p)))
    }

    /// Takes the four branch maps `F_s` `[B, D, H, W]` and returns `F'_s`.
    ///
    /// With a window (`config.raa_window = k > 0`) the maps are cut into windows of
    /// `k x k` regions on a grid anchored at the map's origin (zero-padded at the bottom and
    /// right), each window attends within itself (Swin-style window partition: windows become
    /// batch items), and the maps are put back together: the output at a pixel depends on its
    /// window only, not on the size of the input. Without a window, all regions of the input
    /// attend to each other (the seed's definition).
    pub fn forward_t(&self, feats: &[Tensor], train: bool) -> Result<Vec<Tensor>> {
        if self.window == 0 {
            return self.forward_regions(feats, train);
        }
        let (b, d, h0, w0) = feats[0].dims4()?;
        let ws = self.p * self.window;
        let (h, w) = (h0.div_ceil(ws) * ws, w0.div_ceil(ws) * ws);
        let (nh, nw) = (h / ws, w / ws);
        // [B, D, H, W] -> [B * nh * nw, D, ws, ws]
        let part = |f: &Tensor| -> Result<Tensor> {
            f.pad_with_zeros(2, 0, h - h0)?
                .pad_with_zeros(3, 0, w - w0)?
                .reshape((b, d, nh, ws, nw, ws))?
                .permute((0, 2, 4, 1, 3, 5))?
                .contiguous()?
                .reshape((b * nh * nw, d, ws, ws))
        };
        let windows = feats.iter().map(part).collect::<Result<Vec<_>>>()?;
        let outs = self.forward_regions(&windows, train)?;
        outs.iter()
            .map(|o| {
                o.reshape((b, nh, nw, d, ws, ws))?
                    .permute((0, 3, 1, 4, 2, 5))?
                    .contiguous()?
                    .reshape((b, d, h, w))?
                    .narrow(2, 0, h0)?
                    .narrow(3, 0, w0)
            })
            .collect()
    }

    /// RAA over all regions of each batch item (H and W zero-padded to multiples of P
    /// internally and cropped back).
    fn forward_regions(&self, feats: &[Tensor], train: bool) -> Result<Vec<Tensor>> {
        let (b, d, h0, w0) = feats[0].dims4()?;
        // Parameters are cast to the features' float type (f16/bf16 inference).
        let dt = feats[0].dtype();
        let p = self.p;
        let (h, w) = (h0.div_ceil(p) * p, w0.div_ceil(p) * p);
        let feats = feats
            .iter()
            .map(|f| f.pad_with_zeros(2, 0, h - h0)?.pad_with_zeros(3, 0, w - w0))
            .collect::<Result<Vec<_>>>()?;
        let (gh, gw) = (h / p, w / p);
        let r = gh * gw;
        let s = feats.len();
        // Dynamic weights per scale and region: [B, R] each.
        let mut weights = Vec::with_capacity(s);
        let mut tokens = Vec::with_capacity(s);
        for (i, f) in feats.iter().enumerate() {
            let v = self.difficulty(f)?;
            let mu = v.mean_keepdim(1)?;
            let sd = v.broadcast_sub(&mu)?.sqr()?.mean_keepdim(1)?.sqrt()?;
            let z = v.broadcast_sub(&mu)?.broadcast_div(&(sd + self.eps)?)?;
            let wgt =
                candle_nn::ops::sigmoid(&z.broadcast_mul(&param(&self.gamma, train, dt)?)?)?;
            weights.push(wgt);
            // [B, D, H, W] -> [B, D, gh, gw] -> [B, R, D] + scale embedding
            let x = mean_pool(f, p)?.reshape((b, d, r))?.transpose(1, 2)?;
            let x = x.broadcast_add(&param(&self.scale_embed, train, dt)?.get(i)?)?;
            tokens.push(x);
        }
        let x = Tensor::cat(&tokens, 1)?.contiguous()?; // [B, 4R, D]
        let wk = Tensor::cat(&weights, 1)?; // [B, 4R]
        let nh = self.heads;
        let dh = d / nh;
        let split = |t: Tensor| -> Result<Tensor> {
            // [B, N, D] -> [B, h, N, d]
            t.reshape((b, s * r, nh, dh))?.transpose(1, 2)?.contiguous()
        };
        let q = split(self.q.forward_t(&x, train)?)?;
        let k = split(self.k.forward_t(&x, train)?)?;
        let v = split(self.v.forward_t(&x, train)?)?;
        let logits = (q.matmul(&k.t()?)? / (dh as f64).sqrt())?;
        // Bias every query toward difficult key regions: + log w_K.
        let bias = wk.clamp(1e-6, 1.0)?.log()?.reshape((b, 1, 1, s * r))?;
        let a = softmax_last(&logits.broadcast_add(&bias)?)?;
        let y = a.matmul(&v)?.transpose(1, 2)?.reshape((b, s * r, d))?; // [B, 4R, D]
        let mut outs = Vec::with_capacity(s);
        for (i, f) in feats.iter().enumerate() {
            let ys = y.narrow(1, i * r, r)?;
            // Instance norm over the R tokens of the scale, per channel.
            let mu = ys.mean_keepdim(1)?;
            let yc = ys.broadcast_sub(&mu)?;
            let var = yc.sqr()?.mean_keepdim(1)?;
            let ys = (yc.broadcast_div(&(var + 1e-5)?.sqrt()?)? + &tokens[i])?;
            // DMLP: Z = Y + fc2(GELU(DWConv3x3(fc1(Y)))) on the gh x gw token grid.
            let hdn = self.fc1.forward_t(&ys, train)?; // [B, R, E]
            let e = hdn.dim(2)?;
            let grid = hdn.transpose(1, 2)?.reshape((b, e, gh, gw))?;
            let grid = depthwise_conv3x3(
                &grid,
                &param(&self.dw_weight, train, dt)?,
                &param(&self.dw_bias, train, dt)?,
            )?
            .gelu_erf()?;
            let hdn = grid.reshape((b, e, r))?.transpose(1, 2)?;
            // Z: [B, R, D]. Back to the map: F' = F + w (.) Conv1x1(UpsampleNearest(Z)); the
            // 1x1 conv and the per-region weight commute with nearest upsampling, so apply
            // them first.
            let z = (ys + self.fc2.forward_t(&hdn, train)?)?;
            let zmap = z.transpose(1, 2)?.reshape((b, d, gh, gw))?;
            let delta = self
                .out
                .forward_t(&zmap, train)?
                .broadcast_mul(&weights[i].reshape((b, 1, gh, gw))?)?;
            let fo = (f + upsample_nearest(&delta, p)?)?;
            outs.push(fo.narrow(2, 0, h0)?.narrow(3, 0, w0)?);
        }
        Ok(outs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::params::ParamStore;
    use candle_core::{Device, Var};

    #[test]
    fn starts_as_identity_and_all_parameters_get_gradients() -> Result<()> {
        let dev = Device::Cpu;
        let mut cfg = Config::lite();
        cfg.width = 0.125;
        let store = ParamStore::new(&dev, 1);
        let raa = Raa::new(&cfg, &store.root().pp("raa"))?;
        let d = cfg.aspp_channels();
        // 10x9 is not a multiple of P = 4: exercises the internal padding.
        let feats: Vec<Tensor> = (0..4)
            .map(|_| Tensor::randn(0f32, 1., (2, d, 10, 9), &dev))
            .collect::<Result<_>>()?;
        let out = raa.forward_t(&feats, true)?;
        for (a, b) in out.iter().zip(&feats) {
            assert_eq!(a.dims(), b.dims());
            let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert_eq!(diff, 0.0, "zero-initialised output conv must give identity");
        }
        // Give the output conv a value so gradients flow to every parameter.
        let w = store.get("raa.out.weight").unwrap();
        w.set(&Tensor::randn(0f32, 0.1, w.shape(), &dev)?)?;
        let vars: Vec<Var> = feats.iter().map(Var::from_tensor).collect::<Result<_>>()?;
        let ins: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let out = raa.forward_t(&ins, true)?;
        let loss = Tensor::cat(&out, 1)?.sqr()?.mean_all()?;
        let grads = loss.backward()?;
        for (name, var) in store.trainable() {
            let g = grads.get(var.as_tensor());
            assert!(g.is_some(), "no gradient for {name}");
            let n = g.unwrap().abs()?.sum_all()?.to_scalar::<f32>()?;
            assert!(n.is_finite() && n > 0.0, "zero gradient for {name}");
        }
        Ok(())
    }

    /// With a window, the output over a window does not depend on the rest of the input:
    /// a map and its top-left part give the same values there (the seed's RAA does not).
    #[test]
    fn windowed_output_depends_on_its_window_only() -> Result<()> {
        let dev = Device::Cpu;
        for (window, invariant) in [(2usize, true), (0, false)] {
            let mut cfg = Config::nuclei();
            cfg.width = 0.125;
            cfg.raa_window = window;
            let store = ParamStore::new(&dev, 3);
            let raa = Raa::new(&cfg, &store.root().pp("raa"))?;
            let w = store.get("raa.out.weight").unwrap();
            w.set(&Tensor::randn(0f32, 0.5, w.shape(), &dev)?)?;
            let d = cfg.aspp_channels();
            // 12x8 feature map = 3x2 windows of 4x4; the part is the top-left 2x1 windows.
            let feats: Vec<Tensor> = (0..4)
                .map(|_| Tensor::randn(0f32, 1., (1, d, 12, 8), &dev))
                .collect::<Result<_>>()?;
            let part: Vec<Tensor> = feats
                .iter()
                .map(|f| f.narrow(2, 0, 8)?.narrow(3, 0, 4))
                .collect::<Result<_>>()?;
            let full = raa.forward_t(&feats, false)?;
            let cut = raa.forward_t(&part, false)?;
            let mut worst = 0f32;
            for (a, b) in full.iter().zip(&cut) {
                let a = a.narrow(2, 0, 8)?.narrow(3, 0, 4)?;
                worst = worst.max((a - b)?.abs()?.max_all()?.to_scalar::<f32>()?);
            }
            if invariant {
                assert!(worst < 1e-5, "windowed RAA changed by {worst}");
            } else {
                assert!(worst > 1e-3, "the seed's RAA should see the whole map");
            }
        }
        Ok(())
    }
}
