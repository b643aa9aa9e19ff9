//! Category-adaptive sampling (CAS), METHOD.md section 3.
//!
//! Labelled tiles are drawn with replacement with probability proportional to
//! `w(i) = w_t(i) + w_c(i)`, where the tissue weight `w_t` and the cell weight
//! `w_c` over-sample rare tissue categories and rare nucleus classes:
//!
//! * counts: `N_t` tiles of tissue `t`; `N_c` tiles holding at least one nucleus of class `c`;
//! * imbalance ratio (Eq. 1): `IR_k = N_max / N_k` within each family (tissue, cell);
//! * oversampling factor (Eq. 2, our reading): `r_k = 1 + alpha * (IR_k - 1)`;
//! * tissue weight (Eq. 3): `w_t(i) = r_{t_i} / sum_j r_{t_j}`;
//! * cell weight (Eq. 4): `w_c(i) = s_i / sum_j s_j` with `s_i = sum_c b_ic r_c`
//!   ([`CellScore::Sum`], the default) or the mean over the classes present
//!   ([`CellScore::Mean`]);
//! * periodic decay (Eq. 6, our reading): `alpha(e) = alpha0 * (1 - T * floor(e / T) / E)`.
//!
//! Choices made here where METHOD.md is silent (each documented where it applies):
//!
//! * **Nucleus-free tiles** get `s_i = min { s_j : s_j > 0 }`, the smallest non-zero
//!   *unnormalised* cell score over the data set, and are then normalised together with every
//!   other tile (so `sum_i w_c(i) = 1`). When no tile holds any nucleus, every `s_i = 1`
//!   (uniform cell weight).
//! * **No tissue family** (every tissue id `None`): `w(i) = w_c(i)` alone. When some tiles have
//!   a tissue id and others do not, the `None` tiles form one extra tissue category of their
//!   own ("unknown tissue") and are counted like any other category.
//! * **Zero counts**: a class that no tile holds has no `IR` (it never enters a weight);
//!   `N_max` is the largest count of the family.
//! * **alpha beyond the run**: `alpha(e)` is clamped at 0 for `e >= E`.
//! * **`CellScore::Sum` and alpha = 0**: with the literal Eq. 4 sum, `alpha = 0` gives every
//!   class `r_c = 1`, so `w_c(i)` is proportional to the *number of classes* in tile `i`; the
//!   sampling is uniform per tile only when every tile holds the same number of classes.
//!   `CellScore::Mean` makes `alpha = 0` exactly uniform (METHOD's stated intent); it is a
//!   configuration switch so that both readings can be run.
//! * **Disabled** (`enabled = false`): uniform per tile, `w(i) = 1 / n`.
//!
//! The draw sequence is a `ChaCha8Rng` seeded from a `u64`. [`SamplerState`] stores the epoch
//! and the exact RNG position (seed, stream, word position), so a sampler rebuilt with
//! [`CasSampler::from_state`] from the same tiles and configuration continues with exactly the
//! draws the original would have made.

use crate::{Error, Result};
use std::collections::BTreeMap;

use rand::distr::Distribution;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::weighted::WeightedAliasIndex;
use serde::{Deserialize, Serialize};

/// How the classes present in one tile combine into its unnormalised cell score `s_i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CellScore {
    /// `s_i = sum_c b_ic r_c` (METHOD.md Eq. 4 as written).
    #[default]
    Sum,
    /// `s_i = (sum_c b_ic r_c) / (sum_c b_ic)`: uniform per tile at `alpha = 0`.
    Mean,
}

/// CAS configuration. Every reading of METHOD.md section 3 is a named field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CasConfig {
    /// Initial rebalancing intensity `alpha_0` (0 = uniform, 1 = fully balanced). Default 1.0.
    pub alpha0: f64,
    /// Decay period `T` in epochs: alpha is refreshed every `T` epochs. Default 10.
    pub period_t: usize,
    /// Total number of epochs `E` of the run. Default 400 (the paper's recipe).
    pub total_epochs: usize,
    /// `false`: draw tiles uniformly. Default true.
    pub enabled: bool,
    /// Aggregation of the class factors within a tile (see [`CellScore`]). Default `Sum`.
    pub cell_score: CellScore,
}

impl Default for CasConfig {
    fn default() -> Self {
        Self {
            alpha0: 1.0,
            period_t: 10,
            total_epochs: 400,
            enabled: true,
            cell_score: CellScore::Sum,
        }
    }
}

impl CasConfig {
    /// Checks the ranges: `alpha0` finite and >= 0, `period_t >= 1`, `total_epochs >= 1`.
    pub fn validate(&self) -> Result<()> {
        if !self.alpha0.is_finite() || self.alpha0 < 0.0 {
            return Err(Error::invalid(format!(
                "CAS: alpha0 must be finite and >= 0, got {}",
                self.alpha0
            )));
        }
        if self.period_t == 0 {
            return Err(Error::invalid("CAS: period_t must be >= 1"));
        }
        if self.total_epochs == 0 {
            return Err(Error::invalid("CAS: total_epochs must be >= 1"));
        }
        Ok(())
    }

    /// Periodic decay (Eq. 6): `alpha(e) = alpha0 * (1 - T * floor(e / T) / E)`, clamped at 0.
    /// Returns 0 when CAS is disabled.
    pub fn alpha(&self, epoch: usize) -> f64 {
        if !self.enabled {
            return 0.0;
        }
        let t = self.period_t.max(1);
        let e = self.total_epochs.max(1);
        let start = (epoch / t) * t;
        (self.alpha0 * (1.0 - start as f64 / e as f64)).max(0.0)
    }
}

/// Serialisable sampler position: enough, with the same tiles and configuration, to resume the
/// exact draw sequence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplerState {
    /// Current epoch.
    pub epoch: usize,
    /// Number of tiles the sampler was built on (checked on resume).
    pub num_tiles: usize,
    /// ChaCha8 seed.
    pub seed: [u8; 32],
    /// ChaCha8 stream.
    pub stream: u64,
    /// ChaCha8 word position, high 64 bits.
    pub word_pos_hi: u64,
    /// ChaCha8 word position, low 64 bits.
    pub word_pos_lo: u64,
}

/// Per-tile categories after validation.
#[derive(Clone, Debug)]
struct Tiles {
    /// Tissue category index per tile (dense, 0..num_tissue_cats), `None` = no tissue family.
    tissue: Option<Vec<usize>>,
    num_tissue_cats: usize,
    /// Classes present per tile.
    classes: Vec<Vec<usize>>,
    num_classes: usize,
}

impl Tiles {
    fn new(tissues: &[Option<u32>], presence: &[Vec<bool>]) -> Result<Self> {
        let n = presence.len();
        if n == 0 {
            return Err(Error::invalid("CAS: no tiles (presence is empty)"));
        }
        if tissues.len() != n {
            return Err(Error::invalid(format!(
                "CAS: {} tissue ids but {} class-presence rows; give one of each per tile \
                 (use None tissue ids when there are no tissue categories)",
                tissues.len(),
                n
            )));
        }
        let width = presence[0].len();
        for (i, row) in presence.iter().enumerate() {
            if row.len() != width {
                return Err(Error::invalid(format!(
                    "CAS: class-presence row {} has {} entries, row 0 has {}; all rows must have \
                     one entry per nucleus class (background excluded)",
                    i,
                    row.len(),
                    width
                )));
            }
        }
        let classes = presence
            .iter()
            .map(|row| {
                row.iter()
                    .enumerate()
                    .filter(|(_, &b)| b)
                    .map(|(c, _)| c)
                    .collect()
            })
            .collect();
        let (tissue, num_tissue_cats) = if tissues.iter().all(|t| t.is_none()) {
            (None, 0)
        } else {
            // Dense category ids in sorted order of the tissue id; `None` sorts first and forms
            // its own category.
            let mut ids: BTreeMap<Option<u32>, usize> = BTreeMap::new();
            for t in tissues {
                ids.entry(*t).or_insert(0);
            }
            for (k, v) in ids.values_mut().enumerate() {
                *v = k;
            }
            let cats = ids.len();
            (Some(tissues.iter().map(|t| ids[t]).collect()), cats)
        };
        Ok(Self {
            tissue,
            num_tissue_cats,
            classes,
            num_classes: width,
        })
    }

    fn len(&self) -> usize {
        self.classes.len()
    }
}

/// Oversampling factors `r_k = 1 + alpha (IR_k - 1)` from counts; 0 for a zero count.
fn factors(counts: &[usize], alpha: f64) -> Vec<f64> {
    let max = counts.iter().copied().max().unwrap_or(0) as f64;
    counts
        .iter()
        .map(|&n| {
            if n == 0 {
                0.0
            } else {
                1.0 + alpha * (max / n as f64 - 1.0)
            }
        })
        .collect()
}

/// Per-tile CAS weights `w(i)` (METHOD.md Eq. 1-5) at a given `alpha`.
fn compute_weights(tiles: &Tiles, alpha: f64, cell_score: CellScore) -> Vec<f64> {
    let n = tiles.len();
    // Cell family.
    let mut n_c = vec![0usize; tiles.num_classes];
    for cl in &tiles.classes {
        for &c in cl {
            n_c[c] += 1;
        }
    }
    let r_c = factors(&n_c, alpha);
    let mut s: Vec<f64> = tiles
        .classes
        .iter()
        .map(|cl| {
            let sum: f64 = cl.iter().map(|&c| r_c[c]).sum();
            match cell_score {
                CellScore::Sum => sum,
                CellScore::Mean if cl.is_empty() => 0.0,
                CellScore::Mean => sum / cl.len() as f64,
            }
        })
        .collect();
    let min_nonzero = s
        .iter()
        .copied()
        .filter(|&v| v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let fill = if min_nonzero.is_finite() {
        min_nonzero
    } else {
        1.0
    };
    for v in s.iter_mut() {
        if *v <= 0.0 {
            *v = fill;
        }
    }
    let s_total: f64 = s.iter().sum();
    let mut w: Vec<f64> = s.iter().map(|v| v / s_total).collect();

    // Tissue family.
    if let Some(tissue) = &tiles.tissue {
        let mut n_t = vec![0usize; tiles.num_tissue_cats];
        for &t in tissue {
            n_t[t] += 1;
        }
        let r_t = factors(&n_t, alpha);
        let t_total: f64 = tissue.iter().map(|&t| r_t[t]).sum();
        for (wi, &t) in w.iter_mut().zip(tissue) {
            *wi += r_t[t] / t_total;
        }
    }
    debug_assert_eq!(w.len(), n);
    w
}

/// Weighted sampler of labelled tiles with replacement (CAS).
#[derive(Clone, Debug)]
pub struct CasSampler {
    tiles: Tiles,
    cfg: CasConfig,
    epoch: usize,
    alpha: f64,
    weights: Vec<f64>,
    dist: WeightedAliasIndex<f64>,
    rng: ChaCha8Rng,
}

impl CasSampler {
    /// Builds a sampler from one tissue id (or `None`) and one class-presence row per tile.
    /// `presence[i][c]` is true when tile `i` holds at least one nucleus of class `c`
    /// (background excluded); every row has the same width. Starts at epoch 0.
    pub fn new(
        tissues: &[Option<u32>],
        presence: &[Vec<bool>],
        cfg: CasConfig,
        seed: u64,
    ) -> Result<Self> {
        cfg.validate()?;
        let tiles = Tiles::new(tissues, presence)?;
        let rng = ChaCha8Rng::seed_from_u64(seed);
        let alpha = cfg.alpha(0);
        let weights = Self::weights_for(&tiles, &cfg, alpha);
        let dist = Self::alias(&weights)?;
        Ok(Self {
            tiles,
            cfg,
            epoch: 0,
            alpha,
            weights,
            dist,
            rng,
        })
    }

    /// Same as [`CasSampler::new`] with class presence as bitmasks: bit `c` of `masks[i]` set
    /// when tile `i` holds class `c`; `num_classes <= 64`, higher bits must be clear.
    pub fn from_bitmasks(
        tissues: &[Option<u32>],
        masks: &[u64],
        num_classes: usize,
        cfg: CasConfig,
        seed: u64,
    ) -> Result<Self> {
        let presence = bitmasks_to_rows(masks, num_classes)?;
        Self::new(tissues, &presence, cfg, seed)
    }

    /// Rebuilds a sampler at a saved position. `tissues`, `presence` and `cfg` must be the ones
    /// the saved sampler was built with for the draws to continue identically; a state saved
    /// for another number of tiles is [`ErrorKind::BadWeights`] (a checkpoint that does not fit).
    pub fn from_state(
        tissues: &[Option<u32>],
        presence: &[Vec<bool>],
        cfg: CasConfig,
        state: &SamplerState,
    ) -> Result<Self> {
        let mut s = Self::new(tissues, presence, cfg, 0)?;
        if state.num_tiles != s.tiles.len() {
            return Err(Error::bad_weights(format!(
                "CAS: saved sampler state is for {} tiles, this data set has {}",
                state.num_tiles,
                s.tiles.len()
            )));
        }
        let mut rng = ChaCha8Rng::from_seed(state.seed);
        rng.set_stream(state.stream);
        rng.set_word_pos(((state.word_pos_hi as u128) << 64) | state.word_pos_lo as u128);
        s.rng = rng;
        s.set_epoch(state.epoch);
        Ok(s)
    }

    /// The current position (epoch and RNG state), for checkpoints.
    pub fn state(&self) -> SamplerState {
        let pos = self.rng.get_word_pos();
        SamplerState {
            epoch: self.epoch,
            num_tiles: self.tiles.len(),
            seed: self.rng.get_seed(),
            stream: self.rng.get_stream(),
            word_pos_hi: (pos >> 64) as u64,
            word_pos_lo: pos as u64,
        }
    }

    fn weights_for(tiles: &Tiles, cfg: &CasConfig, alpha: f64) -> Vec<f64> {
        if cfg.enabled {
            compute_weights(tiles, alpha, cfg.cell_score)
        } else {
            vec![1.0 / tiles.len() as f64; tiles.len()]
        }
    }

    fn alias(weights: &[f64]) -> Result<WeightedAliasIndex<f64>> {
        WeightedAliasIndex::new(weights.to_vec())
            .map_err(|e| Error::invalid(format!("CAS: cannot build the sampling table: {e}")))
    }

    /// Moves to epoch `e`; the weights are recomputed when `alpha(e)` changes (every `T` epochs).
    pub fn set_epoch(&mut self, epoch: usize) {
        self.epoch = epoch;
        let alpha = self.cfg.alpha(epoch);
        if alpha != self.alpha {
            self.alpha = alpha;
            self.weights = Self::weights_for(&self.tiles, &self.cfg, alpha);
            // Weights are positive and finite by construction.
            self.dist = Self::alias(&self.weights).expect("CAS weights are positive and finite");
        }
    }

    /// Current epoch.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Current `alpha(epoch)` (0 when disabled).
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// The configuration.
    pub fn config(&self) -> &CasConfig {
        &self.cfg
    }

    /// Number of tiles.
    pub fn num_tiles(&self) -> usize {
        self.tiles.len()
    }

    /// Per-tile weights `w(i) = w_t(i) + w_c(i)` at the current epoch (unnormalised: they sum to
    /// 2 with a tissue family, 1 without; `1/n` each when disabled).
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Per-tile draw probabilities (the weights normalised to sum 1).
    pub fn probabilities(&self) -> Vec<f64> {
        let total: f64 = self.weights.iter().sum();
        self.weights.iter().map(|w| w / total).collect()
    }

    /// Draws one tile index, with replacement.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> usize {
        self.dist.sample(&mut self.rng)
    }

    /// Draws `n` tile indices with replacement at the current epoch (does not change the epoch).
    pub fn sample_epoch(&mut self, n: usize) -> Vec<usize> {
        (0..n).map(|_| self.next()).collect()
    }
}

/// Converts class-presence bitmasks into rows of `num_classes` booleans.
pub fn bitmasks_to_rows(masks: &[u64], num_classes: usize) -> Result<Vec<Vec<bool>>> {
    if num_classes > 64 {
        return Err(Error::invalid(format!(
            "CAS: at most 64 classes fit a bitmask, got {num_classes}"
        )));
    }
    masks
        .iter()
        .enumerate()
        .map(|(i, &m)| {
            if num_classes < 64 && m >> num_classes != 0 {
                return Err(Error::invalid(format!(
                    "CAS: presence mask of tile {i} ({m:#x}) has bits set at or above class {num_classes}"
                )));
            }
            Ok((0..num_classes).map(|c| (m >> c) & 1 == 1).collect())
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::needless_range_loop, clippy::useless_vec)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn cfg(alpha0: f64, t: usize, e: usize) -> CasConfig {
        CasConfig {
            alpha0,
            period_t: t,
            total_epochs: e,
            enabled: true,
            cell_score: CellScore::Sum,
        }
    }

    /// 90 tiles of class A only, 10 tiles of class B only (two classes).
    fn a90_b10() -> (Vec<Option<u32>>, Vec<Vec<bool>>) {
        let mut p = vec![vec![true, false]; 90];
        p.extend(vec![vec![false, true]; 10]);
        (vec![None; 100], p)
    }

    fn frac_at_least(draws: &[usize], first: usize) -> f64 {
        draws.iter().filter(|&&i| i >= first).count() as f64 / draws.len() as f64
    }

    #[test]
    fn rare_class_drawn_about_half_at_epoch_0() {
        let (t, p) = a90_b10();
        let mut s = CasSampler::new(&t, &p, cfg(1.0, 10, 100), 7).unwrap();
        assert_eq!(s.alpha(), 1.0);
        // IR_B = 9 => r_B = 9; s_A = 1 per tile (90 in all), s_B = 9 per tile (90 in all).
        let w = s.weights();
        assert!((w[0] - 1.0 / 180.0).abs() < 1e-12);
        assert!((w[99] - 9.0 / 180.0).abs() < 1e-12);
        let d = s.sample_epoch(20_000);
        let f = frac_at_least(&d, 90);
        assert!((f - 0.5).abs() < 0.02, "B fraction {f}");
    }

    #[test]
    fn natural_distribution_at_the_end() {
        let (t, p) = a90_b10();
        let mut s = CasSampler::new(&t, &p, cfg(1.0, 10, 100), 11).unwrap();
        s.set_epoch(95); // last period: alpha = 1 - 90/100 = 0.1
        assert!((s.alpha() - 0.1).abs() < 1e-12);
        // r_B = 1 + 0.1 * 8 = 1.8 => B share = 18 / (90 + 18) = 1/6
        let d = s.sample_epoch(20_000);
        let f = frac_at_least(&d, 90);
        assert!((f - 18.0 / 108.0).abs() < 0.015, "B fraction {f}");
        s.set_epoch(100); // e = E: alpha = 0, uniform per tile
        assert_eq!(s.alpha(), 0.0);
        for w in s.weights() {
            assert!((w - 0.01).abs() < 1e-12);
        }
        let d = s.sample_epoch(20_000);
        let f = frac_at_least(&d, 90);
        assert!((f - 0.1).abs() < 0.012, "B fraction {f}");
    }

    #[test]
    fn rare_fraction_decreases_over_the_run() {
        let (t, p) = a90_b10();
        let mut s = CasSampler::new(&t, &p, cfg(1.0, 10, 100), 3).unwrap();
        let mut last = 1.0;
        for e in (0..100).step_by(10) {
            s.set_epoch(e);
            let pb: f64 = s.probabilities()[90..].iter().sum();
            assert!(pb < last + 1e-12);
            last = pb;
        }
        assert!(last < 0.2);
    }

    #[test]
    fn alpha_zero_is_uniform() {
        let (t, p) = a90_b10();
        let s = CasSampler::new(&t, &p, cfg(0.0, 10, 100), 1).unwrap();
        for w in s.weights() {
            assert!((w - 0.01).abs() < 1e-12);
        }
        // With tissues too.
        let tissues: Vec<Option<u32>> =
            (0..100).map(|i| Some(if i < 80 { 3 } else { 5 })).collect();
        let s = CasSampler::new(&tissues, &p, cfg(0.0, 10, 100), 1).unwrap();
        for w in s.weights() {
            assert!((w - 0.02).abs() < 1e-12);
        }
    }

    #[test]
    fn mean_cell_score_uniform_at_alpha_zero_with_multiclass_tiles() {
        let p = vec![
            vec![true, true, true],
            vec![true, false, false],
            vec![false, false, false],
        ];
        let t = vec![None; 3];
        let mut c = cfg(0.0, 10, 100);
        let sum = CasSampler::new(&t, &p, c.clone(), 1).unwrap();
        // Sum: proportional to the number of classes (3, 1, empty -> smallest non-zero = 1).
        let w = sum.weights();
        assert!(
            (w[0] - 0.6).abs() < 1e-12 && (w[1] - 0.2).abs() < 1e-12 && (w[2] - 0.2).abs() < 1e-12
        );
        c.cell_score = CellScore::Mean;
        let mean = CasSampler::new(&t, &p, c, 1).unwrap();
        for w in mean.weights() {
            assert!((w - 1.0 / 3.0).abs() < 1e-12);
        }
    }

    #[test]
    fn nucleus_free_tile_gets_smallest_nonzero_weight() {
        // Class 0 in 3 tiles, class 1 in 1 tile, one empty tile.
        let p = vec![
            vec![true, false],
            vec![true, false],
            vec![true, true],
            vec![false, false],
        ];
        let s = CasSampler::new(&vec![None; 4], &p, cfg(1.0, 10, 100), 1).unwrap();
        // r_0 = 1, r_1 = 3; s = [1, 1, 4, 1(fill)]; total 7.
        let w = s.weights();
        let want = [1.0 / 7.0, 1.0 / 7.0, 4.0 / 7.0, 1.0 / 7.0];
        for (a, b) in w.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{w:?}");
        }
        // All tiles empty: uniform.
        let s = CasSampler::new(
            &vec![None; 3],
            &vec![vec![false; 2]; 3],
            cfg(1.0, 10, 100),
            1,
        )
        .unwrap();
        for w in s.weights() {
            assert!((w - 1.0 / 3.0).abs() < 1e-12);
        }
        // Zero classes at all: uniform.
        let s = CasSampler::new(&vec![None; 2], &vec![vec![]; 2], cfg(1.0, 10, 100), 1).unwrap();
        assert_eq!(s.weights(), &[0.5, 0.5]);
    }

    #[test]
    fn tissue_and_cell_weights_add() {
        // Tissue 7: 3 tiles, tissue 9: 1 tile; all tiles class 0 only.
        let t = vec![Some(7), Some(7), Some(7), Some(9)];
        let p = vec![vec![true]; 4];
        let s = CasSampler::new(&t, &p, cfg(1.0, 10, 100), 1).unwrap();
        // r_7 = 1, r_9 = 3; w_t = [1,1,1,3]/6; w_c = 1/4 each.
        let w = s.weights();
        for i in 0..3 {
            assert!((w[i] - (1.0 / 6.0 + 0.25)).abs() < 1e-12);
        }
        assert!((w[3] - (0.5 + 0.25)).abs() < 1e-12);
        assert!((w.iter().sum::<f64>() - 2.0).abs() < 1e-12);
        // Mixed None / Some: None is its own category.
        let t = vec![Some(1), Some(1), None, None];
        let s = CasSampler::new(&t, &p, cfg(1.0, 10, 100), 1).unwrap();
        assert!((s.weights().iter().sum::<f64>() - 2.0).abs() < 1e-12);
        for w in s.weights() {
            assert!((w - 0.5).abs() < 1e-12);
        }
    }

    #[test]
    fn decay_schedule_values() {
        let c = cfg(1.0, 10, 400);
        assert_eq!(c.alpha(0), 1.0);
        assert_eq!(c.alpha(9), 1.0);
        assert!((c.alpha(10) - 0.975).abs() < 1e-12);
        assert!((c.alpha(19) - 0.975).abs() < 1e-12);
        assert!((c.alpha(200) - 0.5).abs() < 1e-12);
        assert!((c.alpha(399) - 0.025).abs() < 1e-12);
        assert_eq!(c.alpha(400), 0.0);
        assert_eq!(c.alpha(1000), 0.0);
        let c = cfg(0.5, 5, 20);
        assert_eq!(c.alpha(4), 0.5);
        assert!((c.alpha(5) - 0.375).abs() < 1e-12);
        assert!((c.alpha(15) - 0.125).abs() < 1e-12);
        let mut d = c.clone();
        d.enabled = false;
        assert_eq!(d.alpha(0), 0.0);
    }

    #[test]
    fn disabled_is_uniform() {
        let (t, p) = a90_b10();
        let mut c = cfg(1.0, 10, 100);
        c.enabled = false;
        let mut s = CasSampler::new(&t, &p, c, 5).unwrap();
        assert_eq!(s.alpha(), 0.0);
        for w in s.weights() {
            assert!((w - 0.01).abs() < 1e-12);
        }
        let f = frac_at_least(&s.sample_epoch(20_000), 90);
        assert!((f - 0.1).abs() < 0.012, "{f}");
    }

    #[test]
    fn deterministic_from_seed() {
        let (t, p) = a90_b10();
        let a = CasSampler::new(&t, &p, cfg(1.0, 10, 100), 42)
            .unwrap()
            .sample_epoch(500);
        let b = CasSampler::new(&t, &p, cfg(1.0, 10, 100), 42)
            .unwrap()
            .sample_epoch(500);
        let c = CasSampler::new(&t, &p, cfg(1.0, 10, 100), 43)
            .unwrap()
            .sample_epoch(500);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|&i| i < 100));
    }

    #[test]
    fn resume_from_state_gives_identical_draws() {
        let (t, p) = a90_b10();
        let c = cfg(1.0, 10, 100);
        let mut s = CasSampler::new(&t, &p, c.clone(), 99).unwrap();
        s.sample_epoch(37); // odd count: mid-block RNG position
        s.set_epoch(23);
        s.sample_epoch(5);
        let st = s.state();
        let json = serde_json::to_string(&st).unwrap();
        let st2: SamplerState = serde_json::from_str(&json).unwrap();
        assert_eq!(st, st2);
        let want = s.sample_epoch(1000);
        let mut r = CasSampler::from_state(&t, &p, c.clone(), &st2).unwrap();
        assert_eq!(r.epoch(), 23);
        assert_eq!(r.alpha(), s.alpha());
        assert_eq!(r.weights(), s.weights());
        assert_eq!(r.sample_epoch(1000), want);
        // Wrong data set size is refused.
        let mut bad = st2.clone();
        bad.num_tiles = 5;
        let e = CasSampler::from_state(&t, &p, c, &bad).expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::BadWeights, "{e}");
    }

    #[test]
    fn bitmasks_match_rows() {
        let (t, p) = a90_b10();
        let masks: Vec<u64> = p.iter().map(|r| if r[0] { 1 } else { 2 }).collect();
        let mut a = CasSampler::from_bitmasks(&t, &masks, 2, cfg(1.0, 10, 100), 8).unwrap();
        let mut b = CasSampler::new(&t, &p, cfg(1.0, 10, 100), 8).unwrap();
        assert_eq!(a.weights(), b.weights());
        assert_eq!(a.sample_epoch(100), b.sample_epoch(100));
        assert!(CasSampler::from_bitmasks(&t, &masks, 1, cfg(1.0, 10, 100), 8).is_err());
        assert!(bitmasks_to_rows(&[0], 65).is_err());
    }

    #[test]
    fn error_cases() {
        let c = cfg(1.0, 10, 100);
        let e = CasSampler::new(&[], &[], c.clone(), 0).unwrap_err();
        assert!(e.to_string().contains("no tiles"), "{e}");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let e = CasSampler::new(&[None], &[vec![true], vec![true]], c.clone(), 0).unwrap_err();
        assert!(e.to_string().contains("1 tissue ids but 2"), "{e}");
        let e = CasSampler::new(
            &[None, None],
            &[vec![true], vec![true, false]],
            c.clone(),
            0,
        )
        .unwrap_err();
        assert!(e.to_string().contains("row 1 has 2 entries"), "{e}");
        let mut bad = c.clone();
        bad.alpha0 = -1.0;
        assert!(CasSampler::new(&[None], &[vec![true]], bad, 0)
            .unwrap_err()
            .to_string()
            .contains("alpha0"));
        let mut bad = c.clone();
        bad.alpha0 = f64::NAN;
        assert!(CasSampler::new(&[None], &[vec![true]], bad, 0).is_err());
        let mut bad = c.clone();
        bad.period_t = 0;
        assert!(CasSampler::new(&[None], &[vec![true]], bad, 0)
            .unwrap_err()
            .to_string()
            .contains("period_t"));
        let mut bad = c;
        bad.total_epochs = 0;
        assert!(CasSampler::new(&[None], &[vec![true]], bad, 0)
            .unwrap_err()
            .to_string()
            .contains("total_epochs"));
    }

    #[test]
    fn config_serde_defaults() {
        let c: CasConfig = serde_json::from_str(r#"{"total_epochs": 50}"#).unwrap();
        assert_eq!(c.alpha0, 1.0);
        assert_eq!(c.period_t, 10);
        assert_eq!(c.total_epochs, 50);
        assert!(c.enabled);
        assert_eq!(c.cell_score, CellScore::Sum);
        let c: CasConfig = serde_json::from_str(r#"{"cell_score": "mean"}"#).unwrap();
        assert_eq!(c.cell_score, CellScore::Mean);
    }
}
