//! Checks on the real CoNSeP tiles. They need the dataset: set `CSRANET_CONSEP` to the
//! folder holding `train/` and `test/` (`.ci/run` points it at `../shared/data/consep`).
//! Without it each test prints why it did nothing.

use csranet::data::load_labelled;
use csranet::eval::{evaluate, Prediction};
use csranet::infer::PostprocessConfig;
use std::path::PathBuf;

fn consep() -> Option<PathBuf> {
    match std::env::var_os("CSRANET_CONSEP") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            eprintln!("SKIPPED: set CSRANET_CONSEP=<path to consep> to run the CoNSeP checks");
            None
        }
    }
}

/// Issue 3 item 5: the instance post-processing alone, on ground-truth class maps, must
/// reach bPQ >= 0.85 against the ground-truth instances of consep/test.
#[test]
fn postprocessing_alone_reaches_bpq_085_on_consep_test() {
    let Some(root) = consep() else { return };
    let data = load_labelled(root.join("test")).expect("consep/test");
    assert_eq!(data.len(), 112);
    let post = PostprocessConfig::default();
    let ev = evaluate(
        &data,
        data.class_names.clone(),
        &mut |s| Prediction::from_ground_truth(s, &post),
        &mut |_, _, _, _| Ok(()),
    )
    .unwrap();
    let bpq = ev.summary.instance.bpq;
    println!("post-processing only on consep/test: bPQ {bpq:.4}");
    assert!(bpq >= 0.85, "bPQ {bpq}");
}
