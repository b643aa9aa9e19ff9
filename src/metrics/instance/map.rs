//! The instance label image and the classes of its instances.

use super::InstanceClasses;
use crate::metrics::MetricsError;
use std::collections::BTreeMap;

/// A label image: 0 is background, any other value is an instance id (ids need not be contiguous).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceMap {
    pub width: usize,
    pub height: usize,
    /// Row-major, `width * height` values.
    pub labels: Vec<u32>,
}

impl InstanceMap {
    pub fn new(width: usize, height: usize, labels: Vec<u32>) -> Result<Self, MetricsError> {
        if labels.len() != width * height {
            return Err(MetricsError::SizeMismatch {
                what: "instance map",
                expected: width * height,
                found: labels.len(),
            });
        }
        Ok(Self {
            width,
            height,
            labels,
        })
    }

    /// All background.
    pub fn empty(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            labels: vec![0; width * height],
        }
    }

    /// Sorted distinct non-zero ids.
    pub fn ids(&self) -> Vec<u32> {
        self.areas().into_keys().collect()
    }

    /// Number of instances.
    pub fn count(&self) -> usize {
        self.areas().len()
    }

    /// Pixel count of each instance.
    pub fn areas(&self) -> BTreeMap<u32, u64> {
        let mut out = BTreeMap::new();
        let mut last = 0u32;
        let mut run = 0u64;
        for &l in &self.labels {
            if l == last {
                run += 1;
                continue;
            }
            if last != 0 {
                *out.entry(last).or_insert(0) += run;
            }
            last = l;
            run = 1;
        }
        if last != 0 && run > 0 {
            *out.entry(last).or_insert(0) += run;
        }
        out
    }

    /// `(id, [x, y])` for each instance in ascending id order; the centroid is the mean pixel
    /// coordinate (x = column, y = row).
    pub fn centroids(&self) -> Vec<(u32, [f64; 2])> {
        let mut acc: BTreeMap<u32, (u64, u64, u64)> = BTreeMap::new();
        for y in 0..self.height {
            for x in 0..self.width {
                let l = self.labels[y * self.width + x];
                if l != 0 {
                    let e = acc.entry(l).or_insert((0, 0, 0));
                    e.0 += x as u64;
                    e.1 += y as u64;
                    e.2 += 1;
                }
            }
        }
        acc.into_iter()
            .map(|(id, (sx, sy, n))| (id, [sx as f64 / n as f64, sy as f64 / n as f64]))
            .collect()
    }

    /// A copy keeping only the instances for which `keep(id)` is true.
    pub fn retain(&self, keep: impl Fn(u32) -> bool) -> InstanceMap {
        let labels = self
            .labels
            .iter()
            .map(|&l| if l != 0 && keep(l) { l } else { 0 })
            .collect();
        InstanceMap {
            width: self.width,
            height: self.height,
            labels,
        }
    }

    /// Paints each instance with its class (instances missing from `classes` get 0).
    pub fn class_map(&self, classes: &InstanceClasses) -> Vec<u8> {
        self.labels
            .iter()
            .map(|l| {
                if *l == 0 {
                    0
                } else {
                    classes.get(l).copied().unwrap_or(0)
                }
            })
            .collect()
    }

    pub(super) fn check_same_size(&self, other: &InstanceMap) -> Result<(), MetricsError> {
        if self.width != other.width
            || self.height != other.height
            || self.labels.len() != other.labels.len()
        {
            return Err(MetricsError::ShapeMismatch {
                what: "instance maps",
                expected: (self.width, self.height),
                found: (other.width, other.height),
            });
        }
        Ok(())
    }
}

/// Class of each instance by majority vote over `class_map` (HoVer-Net's rule): the most frequent
/// class other than background (0) and [`IGNORE`](crate::metrics::pixel::IGNORE), the smallest
/// class id on ties; 0 when the instance covers only background / ignored pixels.
pub fn classes_from_class_map(
    inst: &InstanceMap,
    class_map: &[u8],
) -> Result<InstanceClasses, MetricsError> {
    if class_map.len() != inst.labels.len() {
        return Err(MetricsError::SizeMismatch {
            what: "class map",
            expected: inst.labels.len(),
            found: class_map.len(),
        });
    }
    let mut votes: BTreeMap<u32, [u32; 256]> = BTreeMap::new();
    for (&l, &c) in inst.labels.iter().zip(class_map) {
        if l != 0 {
            votes.entry(l).or_insert([0; 256])[c as usize] += 1;
        }
    }
    Ok(votes
        .into_iter()
        .map(|(id, v)| {
            let mut best = 0u8;
            let mut best_n = 0u32;
            for (c, &n) in v.iter().enumerate().take(255).skip(1) {
                if n > best_n {
                    best = c as u8;
                    best_n = n;
                }
            }
            (id, best)
        })
        .collect())
}

/// The class of instance `id` (0 when absent), checked against `num_classes`.
pub(super) fn class_of(
    classes: &InstanceClasses,
    id: u32,
    num_classes: usize,
    side: &'static str,
) -> Result<u8, MetricsError> {
    let c = classes.get(&id).copied().unwrap_or(0);
    if c as usize >= num_classes {
        return Err(MetricsError::ClassOutOfRange {
            what: side,
            class: c,
            num_classes,
        });
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::instance::test_maps::{classes, map};

    #[test]
    fn instance_map_basics() {
        let m = map(4, &[&[0, 7, 7, 0], &[3, 3, 7, 0], &[3, 0, 0, 9]]);
        assert_eq!(m.ids(), vec![3, 7, 9]);
        assert_eq!(m.count(), 3);
        assert_eq!(m.areas()[&7], 3);
        let c = m.centroids();
        assert_eq!(c[0], (3, [1.0 / 3.0, 4.0 / 3.0]));
        assert_eq!(c[1], (7, [5.0 / 3.0, 1.0 / 3.0]));
        assert_eq!(m.retain(|id| id != 7).ids(), vec![3, 9]);
        assert_eq!(
            m.class_map(&classes(&[(3, 2), (9, 1)]))[..5],
            [0, 0, 0, 0, 2]
        );
        assert!(InstanceMap::new(3, 3, vec![0; 8]).is_err());
        assert_eq!(InstanceMap::empty(2, 2).count(), 0);
    }

    #[test]
    fn majority_classes() {
        let m = map(5, &[&[1, 1, 1, 1, 2], &[2, 2, 3, 3, 0]]);
        let cm = [0, 2, 2, 3, 1, 1, 0, 255, 255, 4];
        let c = classes_from_class_map(&m, &cm).unwrap();
        assert_eq!(c[&1], 2); // 0,2,2,3 -> 2 (background never wins)
        assert_eq!(c[&2], 1); // 1,1,0 -> 1
        assert_eq!(c[&3], 0); // only ignored pixels
        assert!(!c.contains_key(&0));
        let tie = map(2, &[&[5, 5]]);
        assert_eq!(classes_from_class_map(&tie, &[3, 1]).unwrap()[&5], 1);
        assert!(classes_from_class_map(&tie, &[1]).is_err());
    }
}
