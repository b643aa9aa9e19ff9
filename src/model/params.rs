//! The parameter store: every tensor of a model by its torchvision name.
//!
//! Tensors handed to layers share storage with the store's `Var`s, so loading weights or
//! an optimizer step updates the model in place. Callers that mix inference and updates
//! across threads serialise them (the C ABI holds a read-write lock).

use candle_core::{bail, DType, Device, Result, Shape, Tensor, Var};
use rand::distr::{Distribution, Uniform};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::Normal;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// How a new parameter is initialised.
#[derive(Clone, Copy, Debug)]
pub enum Init {
    /// Every element equal to the value.
    Const(f64),
    /// Kaiming normal, `fan_out` mode, ReLU gain (torchvision's ResNet convs).
    KaimingFanOut,
    /// Uniform in `[-1/sqrt(fan_in), 1/sqrt(fan_in)]` (PyTorch's Linear/Conv default).
    FanInUniform,
    /// Normal with this standard deviation.
    Normal(f64),
}

/// What a parameter is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Trained by the optimizer.
    Weight,
    /// Updated by the forward pass (batch-norm running statistics), not by the optimizer.
    Buffer,
}

struct Entry {
    var: Var,
    kind: Kind,
}

/// All parameters of one model, ordered by name.
pub struct ParamStore {
    entries: Mutex<BTreeMap<String, Entry>>,
    device: Device,
    rng: Mutex<ChaCha8Rng>,
}

impl ParamStore {
    /// An empty store on `device`; random initialisation is deterministic from `seed`.
    pub fn new(device: &Device, seed: u64) -> Self {
        Self {
            entries: Mutex::new(BTreeMap::new()),
            device: device.clone(),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        }
    }

    /// The device parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A builder rooted at the empty prefix.
    pub fn root(&self) -> Pb<'_> {
        Pb {
            store: self,
            prefix: String::new(),
        }
    }

    fn register(&self, name: String, shape: Shape, init: Init, kind: Kind) -> Result<Var> {
        let mut entries = self.entries.lock().unwrap();
        if entries.contains_key(&name) {
            bail!("parameter `{name}` registered twice")
        }
        let n = shape.elem_count();
        let dims = shape.dims().to_vec();
        let fan_in: usize = dims.iter().skip(1).product::<usize>().max(1);
        let fan_out: usize = dims[0] * dims.iter().skip(2).product::<usize>().max(1);
        let mut rng = self.rng.lock().unwrap();
        let data: Vec<f32> = match init {
            Init::Const(v) => vec![v as f32; n],
            Init::KaimingFanOut => {
                let std = (2.0 / fan_out as f64).sqrt();
                let d = Normal::new(0.0, std).map_err(candle_core::Error::wrap)?;
                (0..n).map(|_| d.sample(&mut *rng) as f32).collect()
            }
            Init::FanInUniform => {
                let b = 1.0 / (fan_in as f64).sqrt();
                let d = Uniform::new(-b, b).map_err(candle_core::Error::wrap)?;
                (0..n).map(|_| d.sample(&mut *rng) as f32).collect()
            }
            Init::Normal(std) => {
                let d = Normal::new(0.0, std).map_err(candle_core::Error::wrap)?;
                (0..n).map(|_| d.sample(&mut *rng) as f32).collect()
            }
        };
        let t = Tensor::from_vec(data, shape, &self.device)?;
        let var = Var::from_tensor(&t)?;
        entries.insert(
            name,
            Entry {
                var: var.clone(),
                kind,
            },
        );
        Ok(var)
    }

    /// Names and shapes of every entry, in name order.
    pub fn shapes(&self) -> Vec<(String, Vec<usize>)> {
        let e = self.entries.lock().unwrap();
        e.iter()
            .map(|(k, v)| (k.clone(), v.var.dims().to_vec()))
            .collect()
    }

    /// Every entry (name, variable, kind), in name order.
    pub fn vars(&self) -> Vec<(String, Var, Kind)> {
        let e = self.entries.lock().unwrap();
        e.iter()
            .map(|(k, v)| (k.clone(), v.var.clone(), v.kind))
            .collect()
    }

    /// The trainable variables, in name order.
    pub fn trainable(&self) -> Vec<(String, Var)> {
        self.vars()
            .into_iter()
            .filter(|(_, _, k)| *k == Kind::Weight)
            .map(|(n, v, _)| (n, v))
            .collect()
    }

    /// One variable by name.
    pub fn get(&self, name: &str) -> Option<Var> {
        self.entries
            .lock()
            .unwrap()
            .get(name)
            .map(|e| e.var.clone())
    }

    /// Total number of scalars.
    pub fn num_elements(&self) -> usize {
        self.shapes()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }

    /// Copies of every tensor (f32, on the CPU), in name order.
    pub fn snapshot(&self) -> Result<Vec<(String, Tensor)>> {
        self.vars()
            .into_iter()
            .map(|(n, v, _)| {
                Ok((
                    n,
                    v.as_tensor()
                        .to_device(&Device::Cpu)?
                        .to_dtype(DType::F32)?
                        .copy()?,
                ))
            })
            .collect()
    }

    /// Replaces every tensor at once. `values` must hold exactly this store's names with
    /// equal shapes (checked by the caller, see `io::weights`); this sets them all.
    pub(crate) fn set_all(&self, values: &BTreeMap<String, Tensor>) -> Result<()> {
        let entries = self.entries.lock().unwrap();
        // Move everything to the device first so a device error leaves the model unchanged.
        let mut staged = Vec::with_capacity(entries.len());
        for (name, e) in entries.iter() {
            let Some(v) = values.get(name) else {
                bail!("missing tensor `{name}`")
            };
            staged.push((&e.var, v.to_device(&self.device)?.to_dtype(e.var.dtype())?));
        }
        for (var, v) in staged {
            var.set(&v)?;
        }
        Ok(())
    }
}

/// A path into the store, like candle's `VarBuilder::pp`.
#[derive(Clone)]
pub struct Pb<'a> {
    store: &'a ParamStore,
    prefix: String,
}

impl<'a> Pb<'a> {
    /// A sub-path: `pp("layer1").pp(0)` names `layer1.0.*`.
    pub fn pp<S: ToString>(&self, s: S) -> Pb<'a> {
        let s = s.to_string();
        let prefix = if self.prefix.is_empty() {
            s
        } else {
            format!("{}.{}", self.prefix, s)
        };
        Pb {
            store: self.store,
            prefix,
        }
    }

    fn name(&self, n: &str) -> String {
        if self.prefix.is_empty() {
            n.to_string()
        } else {
            format!("{}.{}", self.prefix, n)
        }
    }

    /// A trainable parameter.
    pub fn weight<S: Into<Shape>>(&self, shape: S, name: &str, init: Init) -> Result<Tensor> {
        Ok(self
            .store
            .register(self.name(name), shape.into(), init, Kind::Weight)?
            .as_tensor()
            .clone())
    }

    /// A buffer updated outside the optimizer (batch-norm running statistics).
    pub fn buffer<S: Into<Shape>>(&self, shape: S, name: &str, init: Init) -> Result<Var> {
        self.store
            .register(self.name(name), shape.into(), init, Kind::Buffer)
    }
}
