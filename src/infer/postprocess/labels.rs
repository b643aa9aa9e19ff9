//! Step 6 of the pipeline: area filtering, merging of small fragments, renumbering.

use super::PostprocessConfig;

/// Area filtering (optionally merging small fragments into a touching neighbour) and
/// renumbering `1..=n` in raster order of the first pixel.
pub(super) fn finalize_labels(
    raw: &[u32],
    width: usize,
    height: usize,
    cfg: &PostprocessConfig,
) -> Vec<u32> {
    let n = width * height;
    let nl = raw.iter().copied().max().unwrap_or(0) as usize;
    let mut area = vec![0u32; nl + 1];
    for &l in raw {
        area[l as usize] += 1;
    }
    // `target[l]`: what raw label l becomes (0 = dropped).
    let mut target: Vec<u32> = (0..=nl as u32).collect();
    target[0] = 0;
    if cfg.merge_small {
        // Merge small regions into the (non-small) neighbour with the longest shared boundary,
        // smallest regions first; neighbours are counted on the raw map.
        let mut small: Vec<u32> = (1..=nl as u32)
            .filter(|&l| area[l as usize] > 0 && area[l as usize] < cfg.min_area)
            .collect();
        small.sort_by_key(|&l| (area[l as usize], l));
        if !small.is_empty() {
            let is_small = {
                let mut v = vec![false; nl + 1];
                for &l in &small {
                    v[l as usize] = true;
                }
                v
            };
            // Shared boundary counts between small regions and their neighbours.
            let mut contacts: std::collections::HashMap<(u32, u32), u32> =
                std::collections::HashMap::new();
            for y in 0..height {
                for x in 0..width {
                    let i = y * width + x;
                    let a = raw[i];
                    if a == 0 {
                        continue;
                    }
                    let mut add = |b: u32| {
                        if b != 0 && b != a && (is_small[a as usize] || is_small[b as usize]) {
                            *contacts.entry((a, b)).or_insert(0) += 1;
                            *contacts.entry((b, a)).or_insert(0) += 1;
                        }
                    };
                    if x + 1 < width {
                        add(raw[i + 1]);
                    }
                    if y + 1 < height {
                        add(raw[i + width]);
                    }
                }
            }
            let mut sorted_contacts: Vec<((u32, u32), u32)> = contacts.into_iter().collect();
            sorted_contacts.sort_unstable();
            for &s in &small {
                // Best neighbour: longest contact, then lowest label, among neighbours that are
                // not small (after their own resolution).
                let mut best: Option<(u32, u32)> = None;
                let lo = sorted_contacts.partition_point(|&((a, _), _)| a < s);
                for &((a, b), c) in &sorted_contacts[lo..] {
                    if a != s {
                        break;
                    }
                    if is_small[b as usize] {
                        continue;
                    }
                    if best.is_none_or(|(bc, bl)| c > bc || (c == bc && b < bl)) {
                        best = Some((c, b));
                    }
                }
                if let Some((_, b)) = best {
                    target[s as usize] = b;
                    area[b as usize] += area[s as usize];
                    area[s as usize] = 0;
                }
            }
        }
    }
    for l in 1..=nl {
        if target[l] as usize == l && area[l] < cfg.min_area {
            target[l] = 0;
        }
    }
    // Renumber in raster order of first pixel (of the merged region).
    let mut new_id = vec![0u32; nl + 1];
    let mut next = 1u32;
    let mut out = vec![0u32; n];
    for i in 0..n {
        let t = target[raw[i] as usize] as usize;
        if t == 0 {
            continue;
        }
        if new_id[t] == 0 {
            new_id[t] = next;
            next += 1;
        }
        out[i] = new_id[t];
    }
    out
}

/// 4-connected components of `mask` (`w x h`): labels from 1 (0 outside the mask) and the
/// size of each (index = label; `sizes[0]` is 0).
pub(super) fn components(mask: &[bool], w: usize, h: usize) -> (Vec<u32>, Vec<usize>) {
    let mut labels = vec![0u32; w * h];
    let mut sizes = vec![0usize];
    let mut stack = Vec::new();
    for start in 0..w * h {
        if !mask[start] || labels[start] != 0 {
            continue;
        }
        let id = sizes.len() as u32;
        sizes.push(0);
        labels[start] = id;
        stack.push(start);
        while let Some(p) = stack.pop() {
            sizes[id as usize] += 1;
            let (x, y) = (p % w, p / w);
            let mut visit = |q: usize| {
                if mask[q] && labels[q] == 0 {
                    labels[q] = id;
                    stack.push(q);
                }
            };
            if x > 0 {
                visit(p - 1);
            }
            if x + 1 < w {
                visit(p + 1);
            }
            if y > 0 {
                visit(p - w);
            }
            if y + 1 < h {
                visit(p + w);
            }
        }
    }
    (labels, sizes)
}
