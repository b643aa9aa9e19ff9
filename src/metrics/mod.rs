//! Segmentation metrics (METHOD.md section 5).
//!
//! - [`pixel`]: per-class precision / recall / F1 / IoU from a confusion matrix pooled over tiles,
//!   and their means over the nucleus classes (background excluded).
//! - [`instance`]: PQ (DQ, SQ), bPQ, mPQ, AJI, Dice, detection F1 and per-class detection F1, with
//!   the conventions of PanNuke's and HoVer-Net's evaluation code.
//! - [`Evaluator`]: feeds both from (ground truth, prediction) tile pairs and produces a
//!   [`MetricsSummary`] that serialises to the JSON printed by `csranet eval --json`
//!   (NaN serialises as `null`).
//!
//! Class ids: 0 is background, `1..num_classes` are nucleus classes; `class_names[0]` names the
//! background.

pub mod agreement;
pub mod hungarian;
pub mod instance;
pub mod pixel;

pub use instance::{
    classes_from_class_map, evaluate_tile, DetectionCounts, InstanceAccumulator, InstanceClasses,
    InstanceMap, InstanceScores, PqStats, TileResult,
};
pub use pixel::{ConfusionMatrix, PixelScores, IGNORE};

use serde::{Deserialize, Serialize};
use std::fmt;

/// Errors of the metric functions (sizes and class ids that do not fit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsError {
    /// Two buffers that must have the same length do not.
    SizeMismatch {
        what: &'static str,
        expected: usize,
        found: usize,
    },
    /// Two maps that must have the same width and height do not.
    ShapeMismatch {
        what: &'static str,
        expected: (usize, usize),
        found: (usize, usize),
    },
    /// A class id is not below the number of classes.
    ClassOutOfRange {
        what: &'static str,
        class: u8,
        num_classes: usize,
    },
}

impl fmt::Display for MetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricsError::SizeMismatch {
                what,
                expected,
                found,
            } => {
                write!(
                    f,
                    "{what}: size mismatch (expected {expected}, found {found})"
                )
            }
            MetricsError::ShapeMismatch {
                what,
                expected,
                found,
            } => write!(
                f,
                "{what}: shape mismatch (expected {}x{}, found {}x{})",
                expected.0, expected.1, found.0, found.1
            ),
            MetricsError::ClassOutOfRange {
                what,
                class,
                num_classes,
            } => {
                write!(f, "{what}: class {class} is out of range (there are {num_classes} classes including background)")
            }
        }
    }
}

impl std::error::Error for MetricsError {}

/// A metrics error is [`crate::ErrorKind::InvalidArgument`] (the maps handed in do not fit
/// together), with the same message and the `MetricsError` as its source.
impl From<MetricsError> for crate::Error {
    fn from(e: MetricsError) -> Self {
        crate::Error::invalid(e.to_string()).with_source(e)
    }
}

/// `num / den`, NaN when `den == 0`.
pub(crate) fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        f64::NAN
    } else {
        num / den
    }
}

/// Mean of the non-NaN values; NaN when there are none (numpy's `nanmean`).
pub fn nanmean(values: impl IntoIterator<Item = f64>) -> f64 {
    let (mut sum, mut n) = (0.0f64, 0usize);
    for v in values {
        if !v.is_nan() {
            sum += v;
            n += 1;
        }
    }
    if n == 0 {
        f64::NAN
    } else {
        sum / n as f64
    }
}

/// serde helper: f64 that serialises NaN (and infinities) as `null` and reads `null` back as NaN.
pub mod nan_f64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

/// Pixel-level summary (means over nucleus classes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PixelSummary {
    #[serde(with = "nan_f64")]
    pub precision: f64,
    #[serde(with = "nan_f64")]
    pub recall: f64,
    #[serde(with = "nan_f64")]
    pub f1: f64,
    #[serde(with = "nan_f64")]
    pub miou: f64,
}

/// Instance-level summary. `bpq` and `mpq` are PanNuke's (per tissue, then over tissues);
/// `pq`/`dq`/`sq`/`aji`/`dice` are means over tiles (HoVer-Net); `f1_det` and `acc_type` pool the
/// centroid pairs of all tiles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceSummary {
    #[serde(with = "nan_f64")]
    pub bpq: f64,
    #[serde(with = "nan_f64")]
    pub mpq: f64,
    #[serde(with = "nan_f64")]
    pub aji: f64,
    #[serde(with = "nan_f64")]
    pub dice: f64,
    #[serde(with = "nan_f64")]
    pub f1_det: f64,
    #[serde(with = "nan_f64")]
    pub acc_type: f64,
    #[serde(with = "nan_f64")]
    pub pq: f64,
    #[serde(with = "nan_f64")]
    pub dq: f64,
    #[serde(with = "nan_f64")]
    pub sq: f64,
}

/// Scores of one nucleus class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassSummary {
    #[serde(with = "nan_f64")]
    pub precision: f64,
    #[serde(with = "nan_f64")]
    pub recall: f64,
    #[serde(with = "nan_f64")]
    pub f1: f64,
    #[serde(with = "nan_f64")]
    pub iou: f64,
    /// NaN-skipping mean over tiles of this class's PQ (NaN on tiles without the class in the GT).
    #[serde(with = "nan_f64")]
    pub pq: f64,
    /// Type-aware detection F1.
    #[serde(with = "nan_f64")]
    pub f1_det: f64,
}

/// bPQ / mPQ of one tissue (`tissue` is `null` for tiles without a tissue).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TissueSummary {
    pub tissue: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    pub tiles: usize,
    #[serde(with = "nan_f64")]
    pub bpq: f64,
    #[serde(with = "nan_f64")]
    pub mpq: f64,
}

/// Everything `csranet eval --json` reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsSummary {
    pub pixel: PixelSummary,
    pub instance: InstanceSummary,
    /// Nucleus classes in class-id order, serialised as a JSON object `name -> scores`.
    #[serde(with = "ordered_map")]
    pub per_class: Vec<(String, ClassSummary)>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub per_tissue: Vec<TissueSummary>,
    pub tiles: usize,
}

/// serde helper: `Vec<(String, V)>` as a JSON object that keeps the order.
mod ordered_map {
    use serde::de::{MapAccess, Visitor};
    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::marker::PhantomData;

    pub fn serialize<S: Serializer, V: Serialize>(
        v: &[(String, V)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(v.len()))?;
        for (k, x) in v {
            m.serialize_entry(k, x)?;
        }
        m.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>, V: Deserialize<'de>>(
        d: D,
    ) -> Result<Vec<(String, V)>, D::Error> {
        struct Vis<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Vis<V> {
            type Value = Vec<(String, V)>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = a.next_entry()? {
                    out.push((k, v));
                }
                Ok(out)
            }
        }
        d.deserialize_map(Vis(PhantomData))
    }
}

impl MetricsSummary {
    /// One-line JSON (NaN as `null`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("summary serialises")
    }
}

/// Ground truth or prediction of one tile.
#[derive(Debug, Clone, Copy)]
pub struct TileLabels<'a> {
    pub inst: &'a InstanceMap,
    /// Class of each instance (missing ids: class 0).
    pub inst_class: &'a InstanceClasses,
    /// Per-pixel class map (same size as `inst`); ground-truth pixels equal to [`IGNORE`] are
    /// skipped by the pixel metrics.
    pub class_map: &'a [u8],
}

/// Accumulates pixel and instance metrics over tiles.
#[derive(Debug, Clone)]
pub struct Evaluator {
    class_names: Vec<String>,
    pixel: ConfusionMatrix,
    instance: InstanceAccumulator,
    tissue_names: Vec<String>,
}

impl Evaluator {
    /// `class_names[0]` is the background; there are `class_names.len()` classes in all.
    ///
    /// # Panics
    /// If there are fewer than 2 or more than 255 classes.
    pub fn new(class_names: Vec<String>) -> Self {
        assert!(
            class_names.len() >= 2 && class_names.len() <= 255,
            "need 2..=255 classes (background included)"
        );
        let k = class_names.len();
        Self {
            class_names,
            pixel: ConfusionMatrix::new(k),
            instance: InstanceAccumulator::new(k),
            tissue_names: Vec::new(),
        }
    }

    /// Names for tissue ids (`tissue_names[id]`), used in the per-tissue summary.
    pub fn with_tissue_names(mut self, names: Vec<String>) -> Self {
        self.tissue_names = names;
        self
    }

    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Number of tiles added.
    pub fn tiles(&self) -> usize {
        self.instance.len()
    }

    pub fn confusion(&self) -> &ConfusionMatrix {
        &self.pixel
    }

    pub fn instance(&self) -> &InstanceAccumulator {
        &self.instance
    }

    /// Measures one tile and adds it; on error nothing is added.
    pub fn add_tile(
        &mut self,
        gt: TileLabels<'_>,
        pred: TileLabels<'_>,
        tissue: Option<u32>,
    ) -> Result<&TileResult, MetricsError> {
        let n = gt.inst.labels.len();
        for (what, len) in [
            ("ground-truth class map", gt.class_map.len()),
            ("predicted class map", pred.class_map.len()),
        ] {
            if len != n {
                return Err(MetricsError::SizeMismatch {
                    what,
                    expected: n,
                    found: len,
                });
            }
        }
        let tile = evaluate_tile(
            gt.inst,
            gt.inst_class,
            pred.inst,
            pred.inst_class,
            self.num_classes(),
            tissue,
        )?;
        let mut pixel = self.pixel.clone();
        pixel.add(gt.class_map, pred.class_map)?;
        self.pixel = pixel;
        self.instance.push(tile)?;
        Ok(self.instance.tiles().last().unwrap())
    }

    pub fn summary(&self) -> MetricsSummary {
        let px = self.pixel.scores();
        let inst = self.instance.scores();
        let per_class = (1..self.num_classes())
            .map(|c| {
                let p = &px.per_class[c - 1];
                (
                    self.class_names[c].clone(),
                    ClassSummary {
                        precision: p.precision,
                        recall: p.recall,
                        f1: p.f1,
                        iou: p.iou,
                        pq: inst.class_pq[c - 1],
                        f1_det: inst.class_f1_det[c - 1],
                    },
                )
            })
            .collect();
        let per_tissue = inst
            .per_tissue
            .iter()
            .map(|t| TissueSummary {
                tissue: t.tissue,
                name: t
                    .tissue
                    .and_then(|i| self.tissue_names.get(i as usize).cloned()),
                tiles: t.tiles,
                bpq: t.bpq,
                mpq: t.mpq,
            })
            .collect();
        MetricsSummary {
            pixel: PixelSummary {
                precision: px.precision,
                recall: px.recall,
                f1: px.f1,
                miou: px.miou,
            },
            instance: InstanceSummary {
                bpq: inst.bpq,
                mpq: inst.mpq,
                aji: inst.aji,
                dice: inst.dice,
                f1_det: inst.f1_det,
                acc_type: inst.acc_type,
                pq: inst.pq,
                dq: inst.dq,
                sq: inst.sq,
            },
            per_class,
            per_tissue,
            tiles: inst.tiles,
        }
    }
}

#[cfg(test)]
mod tests;
