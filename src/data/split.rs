//! Deterministic labelled / unlabelled splits that keep all tiles of one source image together.
//!
//! Tiles are grouped by [`group_key`] (the name without a trailing `_NNN` tile index). Groups are
//! sorted by key, shuffled with a seeded SplitMix64 + Fisher-Yates (fixed here, so a split never
//! changes with a dependency upgrade), and taken in that order while adding the next group does not
//! move the labelled tile count farther from `fraction * tiles`. At least one group is labelled, and at
//! least one stays unlabelled when there are two or more. With the same seed, a smaller fraction
//! gives a subset of the labelled tiles of a larger one.

use crate::{Error, Result};
use std::collections::BTreeMap;

/// Indices of the labelled and unlabelled tiles, each sorted ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub labelled: Vec<usize>,
    pub unlabelled: Vec<usize>,
}

/// Source-image key of a tile name: the part before a final `_<digits>` (`train_10_003` ->
/// `train_10`); the whole name when it does not end that way.
pub fn group_key(name: &str) -> &str {
    match name.rfind('_') {
        Some(i)
            if i > 0 && i + 1 < name.len() && name[i + 1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            &name[..i]
        }
        _ => name,
    }
}

/// Parses `"1/8"`, `"0.125"` or `"12.5%"`; the value must be in (0, 1].
pub fn parse_fraction(s: &str) -> Result<f64> {
    let t = s.trim();
    let bad = || {
        Error::invalid(format!(
            "bad fraction '{s}': expected e.g. 1/8, 0.125 or 12.5%"
        ))
    };
    let v = if let Some((a, b)) = t.split_once('/') {
        let a: f64 = a.trim().parse().map_err(|_| bad())?;
        let b: f64 = b.trim().parse().map_err(|_| bad())?;
        if b == 0.0 {
            return Err(bad());
        }
        a / b
    } else if let Some(p) = t.strip_suffix('%') {
        p.trim().parse::<f64>().map_err(|_| bad())? / 100.0
    } else {
        t.parse().map_err(|_| bad())?
    };
    if !(v > 0.0 && v <= 1.0) {
        return Err(Error::invalid(format!(
            "fraction '{s}' = {v} is not in (0, 1]"
        )));
    }
    Ok(v)
}

struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0), by rejection.
    fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next();
            if x < zone {
                return x % n;
            }
        }
    }
}

/// Splits tiles by `names` into labelled / unlabelled (see the module documentation).
pub fn split_by_source<S: AsRef<str>>(names: &[S], fraction: f64, seed: u64) -> Result<Split> {
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(Error::invalid(format!(
            "fraction {fraction} is not in (0, 1]"
        )));
    }
    if names.is_empty() {
        return Err(Error::invalid("cannot split an empty dataset"));
    }
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, n) in names.iter().enumerate() {
        groups.entry(group_key(n.as_ref())).or_default().push(i);
    }
    let mut order: Vec<Vec<usize>> = groups.into_values().collect();
    let mut rng = SplitMix64(seed);
    for i in (1..order.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    let target = fraction * names.len() as f64;
    let mut labelled = Vec::new();
    let mut taken = 0usize;
    for (gi, g) in order.iter().enumerate() {
        let closer = (labelled.len() + g.len()) as f64 - target;
        let now = labelled.len() as f64 - target;
        let must = gi == 0;
        let last_left = gi + 1 == order.len() && order.len() > 1;
        if !must && (last_left || closer.abs() > now.abs()) {
            break;
        }
        labelled.extend_from_slice(g);
        taken += 1;
    }
    let mut unlabelled: Vec<usize> = order[taken..].iter().flatten().copied().collect();
    labelled.sort_unstable();
    unlabelled.sort_unstable();
    Ok(Split {
        labelled,
        unlabelled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn consep_like(images: usize, tiles: usize) -> Vec<String> {
        (1..=images)
            .flat_map(|i| (0..tiles).map(move |t| format!("train_{i}_{t:03}")))
            .collect()
    }

    #[test]
    fn keys() {
        assert_eq!(group_key("train_10_003"), "train_10");
        assert_eq!(group_key("test_1_015"), "test_1");
        assert_eq!(group_key("patch1"), "patch1");
        assert_eq!(group_key("pannuke-00012"), "pannuke-00012");
        assert_eq!(group_key("a_b"), "a_b");
        assert_eq!(group_key("x_"), "x_");
        assert_eq!(group_key("_12"), "_12");
    }

    #[test]
    fn fractions() {
        assert_eq!(parse_fraction("1/8").unwrap(), 0.125);
        assert_eq!(parse_fraction(" 1 / 32 ").unwrap(), 1.0 / 32.0);
        assert_eq!(parse_fraction("0.25").unwrap(), 0.25);
        assert_eq!(parse_fraction("12.5%").unwrap(), 0.125);
        assert_eq!(parse_fraction("1").unwrap(), 1.0);
        for bad in ["", "0", "1/0", "3/2", "-1/4", "x", "1/x", "150%"] {
            assert!(parse_fraction(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn split_properties() {
        let names = consep_like(27, 16);
        let mut prev: Option<HashSet<usize>> = None;
        for (frac, groups) in [
            (1.0 / 32.0, 1),
            (1.0 / 16.0, 2),
            (1.0 / 8.0, 3),
            (1.0 / 4.0, 7),
        ] {
            let s = split_by_source(&names, frac, 42).unwrap();
            assert_eq!(s.labelled.len(), groups * 16, "fraction {frac}");
            assert_eq!(s.labelled.len() + s.unlabelled.len(), names.len());
            let l: HashSet<usize> = s.labelled.iter().copied().collect();
            assert!(s.unlabelled.iter().all(|i| !l.contains(i)));
            let lk: HashSet<&str> = s.labelled.iter().map(|&i| group_key(&names[i])).collect();
            assert!(s
                .unlabelled
                .iter()
                .all(|&i| !lk.contains(group_key(&names[i]))));
            assert_eq!(s, split_by_source(&names, frac, 42).unwrap());
            if let Some(p) = &prev {
                assert!(p.is_subset(&l), "nested splits");
            }
            prev = Some(l);
        }
        let a = split_by_source(&names, 0.25, 1).unwrap();
        let b = split_by_source(&names, 0.25, 2).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn edge_cases() {
        // one group: all labelled; everything: all but one group
        let one = consep_like(1, 4);
        assert_eq!(split_by_source(&one, 0.1, 0).unwrap().labelled.len(), 4);
        let many = consep_like(4, 2);
        assert_eq!(split_by_source(&many, 1.0, 0).unwrap().unlabelled.len(), 2);
        assert_eq!(split_by_source(&many, 1e-6, 0).unwrap().labelled.len(), 2);
        // ungrouped names split tile by tile
        let flat: Vec<String> = (0..100).map(|i| format!("pannuke-{i:05}")).collect();
        assert_eq!(split_by_source(&flat, 0.125, 3).unwrap().labelled.len(), 13);
        assert!(split_by_source(&flat, 0.0, 3).is_err());
        assert!(split_by_source(&Vec::<String>::new(), 0.5, 3).is_err());
    }
}
