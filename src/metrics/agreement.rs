//! Agreement between two segmentations of the same image (e.g. two tilings): instances
//! matched one-to-one at IoU > 0.5, and how often matched instances have the same class.

use std::collections::HashMap;

/// Agreement of segmentation A with segmentation B.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Agreement {
    /// Instances in A and in B.
    pub count_a: usize,
    pub count_b: usize,
    /// Pairs matched at IoU > 0.5 (unique by construction).
    pub matched: usize,
    /// Matched pairs with the same class.
    pub same_class: usize,
}

impl Agreement {
    /// Matched pairs over the larger of the two counts (1 when both are empty).
    pub fn matched_fraction(&self) -> f64 {
        let n = self.count_a.max(self.count_b);
        if n == 0 {
            1.0
        } else {
            self.matched as f64 / n as f64
        }
    }

    /// Matched pairs whose classes agree, over the matched pairs (1 when none matched).
    pub fn class_agreement(&self) -> f64 {
        if self.matched == 0 {
            1.0
        } else {
            self.same_class as f64 / self.matched as f64
        }
    }
}

/// Compares two label maps of the same size (0 = background, ids `1..=n`) with the class of
/// each id (`classes[id - 1]`). At IoU > 0.5 a match is unique, so no assignment is needed.
pub fn agreement(
    labels_a: &[u32],
    classes_a: &[u32],
    labels_b: &[u32],
    classes_b: &[u32],
) -> Agreement {
    assert_eq!(
        labels_a.len(),
        labels_b.len(),
        "label maps of different sizes"
    );
    let mut area_a: HashMap<u32, usize> = HashMap::new();
    let mut area_b: HashMap<u32, usize> = HashMap::new();
    let mut inter: HashMap<(u32, u32), usize> = HashMap::new();
    for (&a, &b) in labels_a.iter().zip(labels_b) {
        if a != 0 {
            *area_a.entry(a).or_default() += 1;
        }
        if b != 0 {
            *area_b.entry(b).or_default() += 1;
        }
        if a != 0 && b != 0 {
            *inter.entry((a, b)).or_default() += 1;
        }
    }
    let (mut matched, mut same_class) = (0, 0);
    for (&(a, b), &i) in &inter {
        let union = area_a[&a] + area_b[&b] - i;
        if 2 * i > union {
            matched += 1;
            if classes_a.get(a as usize - 1) == classes_b.get(b as usize - 1) {
                same_class += 1;
            }
        }
    }
    Agreement {
        count_a: area_a.len(),
        count_b: area_b.len(),
        matched,
        same_class,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_matches_and_classes() {
        // A: two objects; B: the first shifted by one pixel (IoU 2/4 = 0.5: no match... use
        // a 3-pixel object with one pixel moved: IoU 2/4), the second identical.
        let a = [1, 1, 1, 0, 2, 2, 0, 0];
        let b = [0, 1, 1, 1, 2, 2, 0, 3];
        let r = agreement(&a, &[1, 2], &b, &[1, 3, 1]);
        assert_eq!((r.count_a, r.count_b), (2, 3));
        assert_eq!(
            r.matched, 1,
            "IoU 0.5 is not a match; the identical pair is"
        );
        assert_eq!(r.same_class, 0, "class 2 vs 3");
        assert!((r.matched_fraction() - 1.0 / 3.0).abs() < 1e-12);
        let r = agreement(&a, &[1, 2], &a, &[1, 2]);
        assert_eq!((r.matched, r.same_class), (2, 2));
        assert_eq!(r.class_agreement(), 1.0);
    }
}
