//! Model evaluation: running a model (or the post-processing alone) over a labelled dataset
//! and scoring it with [`crate::metrics`]. The one evaluation loop shared by `csranet eval`,
//! `csranet train` and the tests.
//!
//! This layer sits above [`crate::infer`] (which produces the predictions) and
//! [`crate::metrics`] (pure functions of label maps, which know nothing of models).

use crate::data::{Dataset, Sample};
use crate::infer::postprocess::{instances_from_class_map, PostprocessConfig};
use crate::infer::{segment_tile, ImageView, PixelFormat, SegmentOptions, Segmentation};
use crate::metrics::{
    Evaluator, InstanceClasses, InstanceMap, MetricsError, MetricsSummary, TileLabels,
};
use crate::model::CsraNet;
use crate::{Error, Result};
use std::time::Instant;

/// A prediction for one tile, in the metrics' terms.
pub struct Prediction {
    pub inst: InstanceMap,
    pub classes: InstanceClasses,
    pub class_map: Vec<u8>,
}

fn err(name: &str) -> impl Fn(MetricsError) -> Error + '_ {
    move |e| Error::from(e).context(format!("tile {name}"))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::RgbImage;
    use std::collections::HashMap;

    /// A 16 x 12 tile with two 5 x 5 nuclei of classes 1 and 2.
    fn tile() -> Sample {
        let (w, h) = (16, 12);
        let mut inst = vec![0u32; w * h];
        let mut class_map = vec![0u8; w * h];
        for (id, x0) in [(1u32, 2usize), (2, 9)] {
            for y in 3..8 {
                for x in x0..x0 + 5 {
                    inst[y * w + x] = id;
                    class_map[y * w + x] = id as u8;
                }
            }
        }
        Sample {
            name: "squares".into(),
            image: RgbImage {
                width: w,
                height: h,
                data: vec![0; w * h * 3],
            },
            inst,
            class_map,
            inst_class: HashMap::from([(1, 1), (2, 2)]),
            tissue: None,
        }
    }

    #[test]
    fn ground_truth_post_processing_scores_perfectly() -> Result<()> {
        let data = Dataset {
            samples: vec![tile()],
            class_names: vec!["background".into(), "a".into(), "b".into()],
            tissue_names: Vec::new(),
        };
        assert_eq!(class_names_for(&data, 4)[3], "class 3");
        let names = class_names_for(&data, 3);
        assert_eq!(names, data.class_names);
        let post = PostprocessConfig::default();
        let mut calls = 0;
        let e = evaluate(
            &data,
            names,
            &mut |s| Prediction::from_ground_truth(s, &post),
            &mut |i, s, gt, pred| {
                calls += 1;
                assert_eq!((i, s.name.as_str(), gt.count()), (0, "squares", 2));
                assert_eq!(pred.class_map, s.class_map);
                Ok(())
            },
        )?;
        assert_eq!(calls, 1);
        let m = e.summary;
        assert_eq!(m.tiles, 1);
        assert_eq!(m.pixel.f1, 1.0);
        assert!((m.instance.pq - 1.0).abs() < 1e-5, "{}", m.instance.pq);
        assert_eq!(m.instance.f1_det, 1.0);
        assert_eq!(m.per_class.len(), 2);
        // A view of a tile below the smallest segmentable size is refused, not misread.
        assert!(sample_view(&data.samples[0]).is_err());
        Ok(())
    }
}
