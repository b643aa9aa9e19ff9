//! Several labelled sets trained together: tiles chosen by a name pattern, classes mapped onto
//! the model's, and partial labels for sets whose classes do not map.

use super::Dataset;
use super::UNKNOWN_CLASS;
use crate::{Error, Result};

/// A labelled set and which of its tiles to use.
pub struct Part {
    pub data: Dataset,
    /// Only tiles whose name matches this `*`-pattern (e.g. `emory_*`); `None` = all.
    pub pattern: Option<String>,
}

/// Whether `name` matches a pattern of literal text and `*` wildcards.
pub fn matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// Combines `parts` into one dataset with `class_names` (index 0 = background). A set whose
/// class names equal `class_names` keeps its class maps; any other set keeps its nuclei as
/// nuclei of unknown class ([`UNKNOWN_CLASS`]): they train the foreground and geometry
/// outputs, not the classes. Tissue ids are dropped (they are per set).
pub fn combine(parts: Vec<Part>, class_names: &[String]) -> Result<Dataset> {
    let mut samples = Vec::new();
    for part in parts {
        let same = part.data.class_names == class_names;
        let before = samples.len();
        for mut s in part.data.samples {
            if let Some(p) = &part.pattern {
                if !matches(p, &s.name) {
                    continue;
                }
            }
            if !same {
                for (c, &i) in s.class_map.iter_mut().zip(&s.inst) {
                    *c = if i > 0 { UNKNOWN_CLASS } else { 0 };
                }
                s.inst_class.clear();
            }
            s.tissue = None;
            samples.push(s);
        }
        if samples.len() == before {
            return Err(Error::invalid(format!(
                "no tile matches {}",
                part.pattern.as_deref().unwrap_or("(all)")
            )));
        }
    }
    let mut names: Vec<&str> = samples.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::invalid(format!(
            "tile name {} appears in two sets: rename one, or choose tiles with a pattern",
            w[0]
        )));
    }
    Ok(Dataset {
        samples,
        class_names: class_names.to_vec(),
        tissue_names: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches("emory_*", "emory_003"));
        assert!(!matches("emory_*", "tcga_040"));
        assert!(matches("*_1*", "test_1_07"));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(!matches("a*b*c", "axxcyyb"));
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exactly"));
    }
}
