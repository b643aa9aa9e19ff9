//! SGD with momentum and weight decay (PyTorch semantics), a cosine learning-rate
//! schedule, an optional head multiplier and gradient clipping.

use crate::{Error, Result};
use candle_core::{backprop::GradStore, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Optimizer settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OptimConfig {
    /// Initial learning rate (paper: 0.005).
    pub lr: f64,
    pub momentum: f64,
    /// L2 weight decay added to the gradient (UniMatch: 1e-4).
    pub weight_decay: f64,
    /// Learning-rate multiplier of everything outside `backbone.*` (1 or 10).
    pub head_lr_mult: f64,
    /// Clip the global gradient norm to this value (0 = off).
    pub clip_norm: f64,
    /// Steps of the cosine schedule.
    pub total_steps: usize,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            lr: 0.005,
            momentum: 0.9,
            weight_decay: 1e-4,
            head_lr_mult: 1.0,
            clip_norm: 0.0,
            total_steps: 1000,
        }
    }
}

impl OptimConfig {
    /// Checks the ranges; the error ([`crate::ErrorKind::InvalidArgument`]) names the field.
    pub fn validate(&self) -> Result<()> {
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        if !(ok(self.lr) && self.lr > 0.0) {
            return Err(Error::invalid(format!(
                "optim.lr must be positive, got {}",
                self.lr
            )));
        }
        if !(ok(self.momentum) && self.momentum < 1.0) {
            return Err(Error::invalid(format!(
                "optim.momentum must be in [0, 1), got {}",
                self.momentum
            )));
        }
        if !ok(self.weight_decay) {
            return Err(Error::invalid(format!(
                "optim.weight_decay must be >= 0, got {}",
                self.weight_decay
            )));
        }
        if !(ok(self.head_lr_mult) && self.head_lr_mult > 0.0) {
            return Err(Error::invalid(format!(
                "optim.head_lr_mult must be positive, got {}",
                self.head_lr_mult
            )));
        }
        if !ok(self.clip_norm) {
            return Err(Error::invalid(format!(
                "optim.clip_norm must be >= 0, got {}",
                self.clip_norm
            )));
        }
        if self.total_steps == 0 {
            return Err(Error::invalid("optim.total_steps must be positive"));
        }
        Ok(())
    }

    /// Cosine-annealed learning rate at `step` (0-based).
    pub fn lr_at(&self, step: usize) -> f64 {
        let t = (step.min(self.total_steps) as f64) / self.total_steps as f64;
        self.lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

/// SGD with momentum; momentum buffers by parameter name.
pub struct Sgd {
    pub cfg: OptimConfig,
    pub buffers: BTreeMap<String, Tensor>,
}

impl Sgd {
    pub fn new(cfg: OptimConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            cfg,
            buffers: BTreeMap::new(),
        })
    }

    /// Global L2 norm of the gradients of `params`; [`crate::ErrorKind::NonFinite`] if any
    /// is NaN or infinite.
    pub fn grad_norm(params: &[(String, Var)], grads: &GradStore) -> Result<f64> {
        let mut sq = 0f64;
        for (_, v) in params {
            if let Some(g) = grads.get(v.as_tensor()) {
                sq += g
                    .sqr()?
                    .sum_all()?
                    .to_dtype(candle_core::DType::F64)?
                    .to_scalar::<f64>()?;
            }
        }
        if !sq.is_finite() {
            return Err(Error::non_finite("gradient is NaN or infinite"));
        }
        Ok(sq.sqrt())
    }

    /// One update at `step`; returns the learning rate used. Parameters without a
    /// gradient are left alone. All new values are computed first: if any is NaN or
    /// infinite (e.g. a learning rate far too large), nothing is written and the step is an
    /// error, so the model never holds a non-finite parameter.
    pub fn step(
        &mut self,
        params: &[(String, Var)],
        grads: &GradStore,
        step: usize,
    ) -> Result<f64> {
        let lr = self.cfg.lr_at(step);
        let norm = Self::grad_norm(params, grads)?;
        let clip = if self.cfg.clip_norm > 0.0 && norm > self.cfg.clip_norm {
            self.cfg.clip_norm / (norm + 1e-6)
        } else {
            1.0
        };
        let mut updates = Vec::with_capacity(params.len());
        for (name, v) in params {
            let Some(g) = grads.get(v.as_tensor()) else {
                continue;
            };
            let p = v.as_tensor();
            let mut g = (g * clip)?;
            if self.cfg.weight_decay > 0.0 {
                g = (g + (p.detach() * self.cfg.weight_decay)?)?;
            }
            let buf = match self.buffers.get(name) {
                Some(b) if self.cfg.momentum > 0.0 => ((b * self.cfg.momentum)? + &g)?,
                _ => g,
            };
            let mult = if name.starts_with("backbone.") {
                1.0
            } else {
                self.cfg.head_lr_mult
            };
            let new = (p.detach() - (&buf * (lr * mult))?)?;
            let worst = new.abs()?.max_all()?.to_dtype(candle_core::DType::F32)?;
            if !worst.to_scalar::<f32>()?.is_finite() {
                return Err(Error::non_finite(format!(
                    "the update makes `{name}` NaN or infinite (learning rate {lr}); weights left unchanged"
                )));
            }
            updates.push((v, new, name, buf.detach()));
        }
        for (v, new, name, buf) in updates {
            v.set(&new)?;
            self.buffers.insert(name.clone(), buf);
        }
        Ok(lr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_pytorch_sgd_on_a_quadratic() -> Result<()> {
        // torch.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01) on loss = sum(p^2),
        // p0 = [1, -2]: hand-unrolled reference values of PyTorch's update rule.
        let dev = Device::Cpu;
        let v = Var::new(&[1f32, -2.], &dev)?;
        let params = vec![("head.w".to_string(), v.clone())];
        let mut cfg = OptimConfig {
            lr: 0.1,
            weight_decay: 0.01,
            total_steps: 1_000_000,
            ..Default::default()
        };
        cfg.momentum = 0.9;
        let mut opt = Sgd::new(cfg)?;
        let (mut p, mut b) = ([1f64, -2.], [0f64, 0.]);
        for s in 0..3 {
            let loss = v.as_tensor().sqr()?.sum_all()?;
            let g = loss.backward()?;
            opt.step(&params, &g, s)?;
            let lr = opt.cfg.lr_at(s);
            for i in 0..2 {
                let gi = 2.0 * p[i] + 0.01 * p[i];
                b[i] = if s == 0 { gi } else { 0.9 * b[i] + gi };
                p[i] -= lr * b[i];
            }
        }
        let got = v.as_tensor().to_vec1::<f32>()?;
        assert!((got[0] as f64 - p[0]).abs() < 1e-5 && (got[1] as f64 - p[1]).abs() < 1e-5);
        Ok(())
    }

    #[test]
    fn cosine_schedule() {
        let c = OptimConfig {
            lr: 1.0,
            total_steps: 100,
            ..Default::default()
        };
        assert_eq!(c.lr_at(0), 1.0);
        assert!((c.lr_at(50) - 0.5).abs() < 1e-12);
        assert!(c.lr_at(100).abs() < 1e-12);
    }
}
