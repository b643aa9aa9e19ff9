//! Safetensors weights: strict, all-or-nothing loading and atomic saving.
//!
//! Names and shapes must match the model exactly; the first mismatch is named in the
//! error. torchvision extras (`*.num_batches_tracked`, `aux_classifier.*`) are accepted
//! and ignored. The model's configuration travels in the file's metadata under
//! `csranet.config` (JSON), so a file can rebuild its own model, and its class names and
//! colours under `csranet.classes` (JSON, [`Classes::to_json`]); files without the latter
//! get [`Classes::defaults`] for their class count.
//!
//! Errors: a file that cannot be read or written is [`ErrorKind::Io`]; a malformed buffer, or
//! one that does not fit the model, is [`ErrorKind::BadWeights`].

use crate::model::{Classes, Config, CsraNet, ParamStore};
use crate::{Error, ErrorKind, Result};
use candle_core::{DType, Device, Tensor};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

/// Metadata key holding the model configuration as JSON.
pub const CONFIG_KEY: &str = "csranet.config";

/// Metadata key holding the class names and colours as JSON ([`Classes::to_json`]).
pub const CLASSES_KEY: &str = "csranet.classes";

/// Upper bound on a weights file or buffer (4 GiB): larger is refused before parsing.
pub const MAX_BYTES: usize = 4 << 30;

fn ignored(name: &str) -> bool {
    name.ends_with("num_batches_tracked") || name.starts_with("aux_classifier.")
}

fn to_tensor(name: &str, v: &TensorView) -> Result<Tensor> {
    let dt = match v.dtype() {
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::F64 => DType::F64,
        other => {
            return Err(Error::bad_weights(format!(
                "tensor `{name}` has dtype {other:?}; expected a float type (F32, F16, BF16, F64)"
            )))
        }
    };
    let t = Tensor::from_raw_buffer(v.data(), dt, v.shape(), &Device::Cpu)
        .and_then(|t| t.to_dtype(DType::F32))
        .map_err(|e| Error::from_candle(ErrorKind::BadWeights, e))?;
    let bad = t
        .flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .any(|x| !x.is_finite());
    if bad {
        return Err(Error::bad_weights(format!(
            "tensor `{name}` contains NaN or infinite values"
        )));
    }
    Ok(t)
}

/// Parses a safetensors buffer and checks it against `store`; returns the new values
/// without touching the store.
pub fn check(store: &ParamStore, bytes: &[u8]) -> Result<BTreeMap<String, Tensor>> {
    if bytes.len() > MAX_BYTES {
        return Err(Error::bad_weights(format!(
            "weights buffer of {} bytes exceeds the {MAX_BYTES}-byte limit",
            bytes.len()
        )));
    }
    let st = SafeTensors::deserialize(bytes).map_err(not_safetensors)?;
    let file: HashMap<String, TensorView> = st.tensors().into_iter().collect();
    let mut out = BTreeMap::new();
    for (name, shape) in store.shapes() {
        let Some(v) = file.get(&name) else {
            return Err(Error::bad_weights(format!("weights file lacks tensor `{name}` (shape {shape:?}); is it for another configuration?")));
        };
        if v.shape() != shape.as_slice() {
            return Err(Error::bad_weights(format!(
                "tensor `{name}` has shape {:?} in the file, the model expects {shape:?}",
                v.shape()
            )));
        }
        out.insert(name.clone(), to_tensor(&name, v)?);
    }
    let mut extras: Vec<&String> = file
        .keys()
        .filter(|k| !ignored(k) && !out.contains_key(*k))
        .collect();
    extras.sort();
    if let Some(e) = extras.first() {
        return Err(Error::bad_weights(format!(
            "weights file has tensor `{e}` that this configuration lacks ({} unexpected in all); is it for another configuration?",
            extras.len()
        )));
    }
    Ok(out)
}

/// Loads weights from a buffer into `model`, with the buffer's class names and colours
/// ([`classes_of`]): all or nothing.
pub fn load_bytes(model: &CsraNet, bytes: &[u8]) -> Result<()> {
    // Tensors first: a file of another architecture is named by its first misfit tensor.
    let values = check(model.params(), bytes)?;
    let classes = classes_of(bytes, model.config().num_classes)?;
    model.params().set_all(&values)?;
    // Equal classes keep the model's (so names handed out before stay valid).
    if *model.classes() != classes {
        model.set_classes(classes)?;
    }
    Ok(())
}

/// The class names and colours stored in a weights buffer's metadata, checked against a
/// model of `num_classes` classes; [`Classes::defaults`] when the buffer has none (files
/// written before they were stored).
pub fn classes_of(bytes: &[u8], num_classes: usize) -> Result<Classes> {
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| Error::bad_weights(format!("not a valid safetensors file: {e}")))?;
    let Some(js) = meta.metadata().as_ref().and_then(|m| m.get(CLASSES_KEY)) else {
        return Ok(Classes::defaults(num_classes));
    };
    let bad = |e: candle_core::Error| {
        Error::bad_weights(format!("bad `{CLASSES_KEY}` metadata: {}", Error::from(e)))
    };
    let classes = Classes::from_json(js).map_err(bad)?;
    classes.check_count(num_classes).map_err(bad)?;
    Ok(classes)
}

/// Reads a whole file with a size check: an unreadable file is [`ErrorKind::Io`], one
/// over [`MAX_BYTES`] [`ErrorKind::BadWeights`].
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    let io = |what: &str, e: std::io::Error| {
        Error::io_msg(format!("cannot {what} {}: {e}", path.display())).with_source(e)
    };
    let meta = std::fs::metadata(path).map_err(|e| io("open", e))?;
    if meta.len() as u128 > MAX_BYTES as u128 {
        return Err(Error::bad_weights(format!(
            "{} is {} bytes, over the {MAX_BYTES}-byte limit",
            path.display(),
            meta.len()
        )));
    }
    std::fs::read(path).map_err(|e| io("read", e))
}

/// Loads weights from a file into `model`: all or nothing.
pub fn load_file(model: &CsraNet, path: &Path) -> Result<()> {
    let bytes = read_file(path)?;
    load_bytes(model, &bytes).map_err(|e| e.context(path.display()))
}

/// The configuration stored in a weights buffer's metadata, if any.
pub fn config_of(bytes: &[u8]) -> Result<Option<Config>> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(not_safetensors)?;
    let Some(m) = meta.metadata() else {
        return Ok(None);
    };
    match m.get(CONFIG_KEY) {
        None => Ok(None),
        Some(js) => {
            let cfg: Config = serde_json::from_str(js).map_err(|e| {
                Error::bad_weights(format!("bad `{CONFIG_KEY}` metadata: {e}")).with_source(e)
            })?;
            cfg.validate()
                .map_err(|e| Error::from_candle(ErrorKind::BadWeights, e))?;
            Ok(Some(cfg))
        }
    }
}

/// Builds a model from a buffer that carries its configuration, or from `fallback`.
pub fn model_from_bytes(
    bytes: &[u8],
    fallback: Option<&Config>,
    device: &Device,
) -> Result<CsraNet> {
    let cfg = match (config_of(bytes)?, fallback) {
        (Some(c), _) => c,
        (None, Some(c)) => c.clone(),
        (None, None) => {
            return Err(Error::bad_weights(format!(
                "the weights carry no `{CONFIG_KEY}` metadata; give a configuration"
            )))
        }
    };
    check_holds_model(bytes, &cfg)?;
    let model = CsraNet::new(&cfg, device, 0)?;
    load_bytes(&model, bytes)?;
    Ok(model)
}

/// Before a model of `cfg` is built for a buffer: the buffer must hold layer4's first 3x3
/// convolution at that configuration's shape, the tensor that grows fastest with depth and
/// width. Otherwise a few hundred bytes of metadata claiming ResNet-101 at width 4 would
/// make us allocate and initialise about 4 GB before the tensors are even compared
/// (issue 8); with the check, the model built is at most a few dozen times the file's size.
fn check_holds_model(bytes: &[u8], cfg: &Config) -> Result<()> {
    let st = SafeTensors::deserialize(bytes).map_err(not_safetensors)?;
    let name = "backbone.layer4.0.conv2.weight";
    let s = cfg.scaled(512);
    let want = [s, s, 3, 3];
    match st.tensor(name) {
        Ok(v) if v.shape() == want => Ok(()),
        Ok(v) => Err(Error::bad_weights(format!(
            "tensor `{name}` has shape {:?} in the file, its configuration (depth {}, width {}) \
             needs {want:?}",
            v.shape(),
            cfg.depth,
            cfg.width
        ))),
        Err(_) => Err(Error::bad_weights(format!(
            "weights file lacks tensor `{name}` (shape {want:?}) that its configuration (depth \
             {}, width {}) needs",
            cfg.depth, cfg.width
        ))),
    }
}

/// Serialises every tensor of `model` (f32, or f16 when `half` is set) with its
/// configuration and classes in the metadata.
pub fn to_bytes(model: &CsraNet, half: bool) -> Result<Vec<u8>> {
    let dt = if half { DType::F16 } else { DType::F32 };
    let snap = model.params().snapshot()?;
    let mut raw: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(snap.len());
    for (name, t) in snap {
        let t = t.to_dtype(dt)?;
        let bytes = match dt {
            DType::F16 => t
                .flatten_all()?
                .to_vec1::<half::f16>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            _ => t
                .flatten_all()?
                .to_vec1::<f32>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        };
        raw.push((name, t.dims().to_vec(), bytes));
    }
    let sdt = if half { Dtype::F16 } else { Dtype::F32 };
    let views = raw
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(sdt, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::internal(e.to_string()).with_source(e))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut meta = HashMap::new();
    meta.insert(
        CONFIG_KEY.to_string(),
        serde_json::to_string(model.config())
            .map_err(|e| Error::internal(e.to_string()).with_source(e))?,
    );
    meta.insert(CLASSES_KEY.to_string(), model.classes().to_json());
    meta.insert("format".to_string(), "pt".to_string());
    safetensors::tensor::serialize(views, Some(meta))
        .map_err(|e| Error::internal(e.to_string()).with_source(e))
}

fn not_safetensors(e: safetensors::SafeTensorError) -> Error {
    Error::bad_weights(format!("not a valid safetensors file: {e}")).with_source(e)
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, synced,
/// then renamed over the target. A crash mid-write leaves the previous file intact. Every
/// failure is [`ErrorKind::Io`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let err = |what: &str, e: std::io::Error| {
        Error::io_msg(format!("cannot {what} {}: {e}", path.display())).with_source(e)
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::io_msg(format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{:?}",
        file_name.to_string_lossy(),
        std::process::id(),
        std::thread::current().id()
    ));
    let result = (|| {
        let mut f =
            std::fs::File::create(&tmp).map_err(|e| err("create a temporary file beside", e))?;
        f.write_all(bytes).map_err(|e| err("write", e))?;
        f.sync_all().map_err(|e| err("sync", e))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| err("rename onto", e))?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Saves `model` to `path` atomically (f32, or f16 when `half`).
pub fn save_file(model: &CsraNet, path: &Path, half: bool) -> Result<()> {
    write_atomic(path, &to_bytes(model, half)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn tiny(num_classes: usize, seed: u64) -> CsraNet {
        let cfg = Config {
            depth: 18,
            width: 0.0625,
            output_stride: 16,
            num_classes,
            raa: false,
            ..Config::lite()
        };
        CsraNet::new(&cfg, &Device::Cpu, seed).unwrap()
    }

    /// `bytes` with its metadata replaced by `meta` (tensors unchanged).
    fn with_metadata(bytes: &[u8], meta: HashMap<String, String>) -> Vec<u8> {
        let st = SafeTensors::deserialize(bytes).unwrap();
        let views: Vec<(String, TensorView)> = st.tensors();
        safetensors::tensor::serialize(views, Some(meta)).unwrap()
    }

    fn metadata(bytes: &[u8]) -> HashMap<String, String> {
        let (_, m) = SafeTensors::read_metadata(bytes).unwrap();
        m.metadata().clone().unwrap_or_default()
    }

    #[test]
    fn classes_travel_with_the_weights() {
        let a = tiny(3, 1);
        assert_eq!(*a.classes(), Classes::defaults(3));
        let custom = Classes::new(
            vec!["background".into(), "Tumor".into(), "lymphocyte".into()],
            vec![[0, 0, 0], [200, 0, 0], [1, 2, 3]],
        )
        .unwrap();
        a.set_classes(custom.clone()).unwrap();
        let bytes = to_bytes(&a, true).unwrap();
        assert_eq!(metadata(&bytes)[CLASSES_KEY], custom.to_json());
        let b = model_from_bytes(&bytes, None, &Device::Cpu).unwrap();
        assert_eq!(*b.classes(), custom);
        // Loading into an existing model replaces its classes too.
        let c = tiny(3, 2);
        load_bytes(&c, &bytes).unwrap();
        assert_eq!(*c.classes(), custom);
        // Equal classes keep the model's own (names handed out stay valid).
        let before = c.classes();
        load_bytes(&c, &bytes).unwrap();
        assert!(Arc::ptr_eq(&before, &c.classes()));
        // A wrong count is refused by the setter.
        let e = a.set_classes(Classes::defaults(5)).unwrap_err();
        assert!(e.to_string().contains("the model has 3 classes"), "{e}");
    }

    #[test]
    fn files_without_classes_get_the_defaults() {
        for n in [5, 6, 3] {
            let a = tiny(n, 1);
            let mut meta = metadata(&to_bytes(&a, false).unwrap());
            meta.remove(CLASSES_KEY);
            let old = with_metadata(&to_bytes(&a, false).unwrap(), meta);
            let b = model_from_bytes(&old, None, &Device::Cpu).unwrap();
            assert_eq!(*b.classes(), Classes::defaults(n));
            // Also when loaded into a model that had other names.
            let c = tiny(n, 2);
            let names = (0..n).map(|i| format!("x{i}")).collect();
            c.set_classes(Classes::with_default_colours(names).unwrap())
                .unwrap();
            load_bytes(&c, &old).unwrap();
            assert_eq!(*c.classes(), Classes::defaults(n));
        }
        let names: Vec<String> = Classes::defaults(5).names().to_vec();
        assert_eq!(
            names,
            [
                "background",
                "other",
                "inflammatory",
                "epithelial",
                "spindle-shaped"
            ]
        );
    }

    #[test]
    fn bad_classes_are_refused_and_the_model_kept() {
        let a = tiny(3, 1);
        let good = to_bytes(&a, false).unwrap();
        let b = tiny(3, 2);
        let weights_before: HashMap<String, Tensor> =
            b.params().snapshot().unwrap().into_iter().collect();
        let classes_before = b.classes();
        for (js, needle) in [
            (
                r#"[{"name":"background"},{"name":"a"}]"#,
                "2 class names given, the model has 3",
            ),
            (
                r#"[{"name":"background"},{"name":""},{"name":"b"}]"#,
                "class 1 has an empty name",
            ),
            (
                r#"[{"name":"background"},{"name":"a"},{"name":"b\u0000"}]"#,
                "contains a NUL character",
            ),
            (r#"{"names":["a"]}"#, "expected a list"),
        ] {
            let mut meta = metadata(&good);
            meta.insert(CLASSES_KEY.into(), js.into());
            let bad = with_metadata(&good, meta);
            let e = load_bytes(&b, &bad).unwrap_err().to_string();
            assert!(e.contains(CLASSES_KEY) && e.contains(needle), "{js}: {e}");
            let e = model_from_bytes(&bad, None, &Device::Cpu)
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(needle), "{js}: {e}");
        }
        // All or nothing: neither the weights nor the classes changed.
        assert!(Arc::ptr_eq(&classes_before, &b.classes()));
        for (name, t) in b.params().snapshot().unwrap() {
            let diff = (&t - &weights_before[&name])
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert_eq!(diff, 0.0, "{name} changed");
        }
    }
}
