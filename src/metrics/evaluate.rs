//! Running a model (or the post-processing alone) over a labelled dataset and scoring it.

use super::{Evaluator, InstanceClasses, InstanceMap, MetricsSummary, TileLabels};
use crate::data::{Dataset, Sample};
use crate::infer::postprocess::{instances_from_class_map, PostprocessConfig};
use crate::infer::{segment_tile, ImageView, PixelFormat, SegmentOptions, Segmentation};
use crate::model::CsraNet;
use candle_core::{bail, Result};
use std::time::Instant;

/// A scored run: the summary and the throughput of the segmentation itself.
pub struct Evaluation {
    pub summary: MetricsSummary,
    /// Tiles per second of segmentation (model + post-processing), excluding scoring.
    pub tiles_per_s: f64,
}

fn add(
    ev: &mut Evaluator,
    s: &Sample,
    labels: Vec<u32>,
    classes: InstanceClasses,
    class_map: &[u8],
) -> Result<()> {
    let (w, h) = (s.width(), s.height());
    let err = |e: super::MetricsError| candle_core::Error::Msg(format!("{}: {e}", s.name));
    let gt = InstanceMap::new(w, h, s.inst.clone()).map_err(err)?;
    let pred = InstanceMap::new(w, h, labels).map_err(err)?;
    ev.add_tile(
        TileLabels {
            inst: &gt,
            inst_class: &s.inst_class,
            class_map: &s.class_map,
        },
        TileLabels {
            inst: &pred,
            inst_class: &classes,
            class_map,
        },
        s.tissue,
    )
    .map_err(err)?;
    Ok(())
}

fn classes_of(seg: &Segmentation) -> InstanceClasses {
    seg.instances
        .iter()
        .map(|i| (i.id, i.class as u8))
        .collect()
}

/// Segments every tile of `data` with `model` and scores it. `each(i, n, &seg)` is
/// called after every tile (progress, overlays).
pub fn evaluate_model(
    model: &CsraNet,
    data: &Dataset,
    opts: &SegmentOptions,
    each: &mut dyn FnMut(usize, usize, &Sample, &Segmentation),
) -> Result<Evaluation> {
    if model.config().num_classes != data.class_names.len() {
        bail!(
            "the model has {} classes, the dataset {} ({:?})",
            model.config().num_classes,
            data.class_names.len(),
            data.class_names
        )
    }
    let mut ev =
        Evaluator::new(data.class_names.clone()).with_tissue_names(data.tissue_names.clone());
    let mut seconds = 0f64;
    let n = data.samples.len();
    for (i, s) in data.samples.iter().enumerate() {
        let (w, h) = (s.width(), s.height());
        let view = ImageView::new(&s.image.data, w, h, w * 3, PixelFormat::Rgb8)?;
        let t = Instant::now();
        let seg = segment_tile(model, &view, opts)?;
        seconds += t.elapsed().as_secs_f64();
        let classes = classes_of(&seg);
        add(&mut ev, s, seg.labels.clone(), classes, &seg.class_map)?;
        each(i + 1, n, s, &seg);
    }
    Ok(Evaluation {
        summary: ev.summary(),
        tiles_per_s: n as f64 / seconds.max(1e-9),
    })
}

/// Scores the instance post-processing alone: the ground-truth class map is the
/// "prediction" (perfect semantic input), split into instances by
/// `instances_from_class_map`.
pub fn evaluate_postprocess_only(data: &Dataset, post: &PostprocessConfig) -> Result<Evaluation> {
    let mut ev =
        Evaluator::new(data.class_names.clone()).with_tissue_names(data.tissue_names.clone());
    let mut seconds = 0f64;
    for s in &data.samples {
        let (w, h) = (s.width(), s.height());
        let t0 = Instant::now();
        let inst = instances_from_class_map(&s.class_map, w, h, post);
        seconds += t0.elapsed().as_secs_f64();
        let classes = inst
            .instances
            .iter()
            .map(|i| (i.id, i.class as u8))
            .collect();
        add(&mut ev, s, inst.labels, classes, &s.class_map)?;
    }
    Ok(Evaluation {
        summary: ev.summary(),
        tiles_per_s: data.samples.len() as f64 / seconds.max(1e-9),
    })
}
