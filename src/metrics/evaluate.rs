//! Running a model (or the post-processing alone) over a labelled dataset and scoring it.
//! The one evaluation loop shared by `csranet eval`, `csranet train` and the tests.

use super::{Evaluator, InstanceClasses, InstanceMap, MetricsSummary, TileLabels};
use crate::data::{Dataset, Sample};
use crate::infer::postprocess::{instances_from_class_map, PostprocessConfig};
use crate::infer::{segment_tile, ImageView, PixelFormat, SegmentOptions, Segmentation};
use crate::model::CsraNet;
use candle_core::Result;
use std::time::Instant;

/// A prediction for one tile, in the metrics' terms.
pub struct Prediction {
    pub inst: InstanceMap,
    pub classes: InstanceClasses,
    pub class_map: Vec<u8>,
}

fn err(name: &str) -> impl Fn(super::MetricsError) -> candle_core::Error + '_ {
    move |e| candle_core::Error::Msg(format!("tile {name}: {e}"))
}

impl Prediction {
    /// From a model's segmentation of the tile.
    pub fn from_segmentation(name: &str, seg: Segmentation) -> Result<Self> {
        let classes = seg
            .instances
            .iter()
            .map(|i| (i.id, i.class.min(255) as u8))
            .collect();
        Ok(Self {
            inst: InstanceMap::new(seg.width, seg.height, seg.labels).map_err(err(name))?,
            classes,
            class_map: seg.class_map,
        })
    }

    /// The post-processing alone on the tile's ground-truth class map (perfect semantic
    /// input); the class map is the kept pixels with their instance's class.
    pub fn from_ground_truth(s: &Sample, post: &PostprocessConfig) -> Result<Self> {
        let (w, h) = (s.width(), s.height());
        let inst = instances_from_class_map(&s.class_map, w, h, post);
        let classes: InstanceClasses = inst
            .instances
            .iter()
            .map(|i| (i.id, i.class.min(255) as u8))
            .collect();
        let map = InstanceMap::new(w, h, inst.labels).map_err(err(&s.name))?;
        let class_map = map.class_map(&classes);
        Ok(Self {
            inst: map,
            classes,
            class_map,
        })
    }
}

/// A scored run: the summary and the throughput of the prediction itself.
pub struct Evaluation {
    pub summary: MetricsSummary,
    /// Tiles per second of prediction (model + post-processing), excluding scoring.
    pub tiles_per_s: f64,
}

/// The dataset's class names, extended with `class N` to cover a model's classes.
pub fn class_names_for(data: &Dataset, model_classes: usize) -> Vec<String> {
    let mut names = data.class_names.clone();
    for c in names.len()..model_classes {
        names.push(format!("class {c}"));
    }
    names
}

/// Scores `predict` on every tile of `data`; `each(index, sample, gt, prediction)` runs
/// after each tile (progress bars, pictures).
pub fn evaluate(
    data: &Dataset,
    class_names: Vec<String>,
    predict: &mut dyn FnMut(&Sample) -> Result<Prediction>,
    each: &mut dyn FnMut(usize, &Sample, &InstanceMap, &Prediction) -> Result<()>,
) -> Result<Evaluation> {
    let mut ev = Evaluator::new(class_names).with_tissue_names(data.tissue_names.clone());
    let mut seconds = 0f64;
    for (i, s) in data.samples.iter().enumerate() {
        let t = Instant::now();
        let pred = predict(s)?;
        seconds += t.elapsed().as_secs_f64();
        let gt = InstanceMap::new(s.width(), s.height(), s.inst.clone()).map_err(err(&s.name))?;
        ev.add_tile(
            TileLabels {
                inst: &gt,
                inst_class: &s.inst_class,
                class_map: &s.class_map,
            },
            TileLabels {
                inst: &pred.inst,
                inst_class: &pred.classes,
                class_map: &pred.class_map,
            },
            s.tissue,
        )
        .map_err(err(&s.name))?;
        each(i, s, &gt, &pred)?;
    }
    let n = data.samples.len() as f64;
    Ok(Evaluation {
        summary: ev.summary(),
        tiles_per_s: if seconds > 0.0 { n / seconds } else { f64::NAN },
    })
}

/// A view of a sample's RGB image.
pub fn sample_view(s: &Sample) -> Result<ImageView<'_>> {
    ImageView::new(
        &s.image.data,
        s.width(),
        s.height(),
        s.width() * 3,
        PixelFormat::Rgb8,
    )
}

/// Segments every tile with `model` and scores it.
pub fn evaluate_model(
    model: &CsraNet,
    data: &Dataset,
    opts: &SegmentOptions,
) -> Result<Evaluation> {
    let names = class_names_for(data, model.config().num_classes);
    evaluate(
        data,
        names,
        &mut |s| {
            Prediction::from_segmentation(&s.name, segment_tile(model, &sample_view(s)?, opts)?)
        },
        &mut |_, _, _, _| Ok(()),
    )
}
