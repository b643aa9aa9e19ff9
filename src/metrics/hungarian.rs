//! Minimum-cost assignment for rectangular cost matrices (Hungarian / Kuhn-Munkres with
//! potentials, O(n^2 m) for n <= m).
//!
//! Like `scipy.optimize.linear_sum_assignment`, every row of the smaller side is assigned to a
//! distinct column of the larger side so that the total cost is minimal.

/// Solves the assignment problem for a `rows x cols` cost matrix stored row-major.
///
/// Returns the assigned `(row, col)` pairs sorted by row; there are `min(rows, cols)` of them.
/// Costs must be finite.
///
/// # Panics
/// If `costs.len() != rows * cols` or a cost is not finite.
pub fn assign(costs: &[f64], rows: usize, cols: usize) -> Vec<(usize, usize)> {
    assert_eq!(costs.len(), rows * cols, "cost matrix has the wrong size");
    assert!(costs.iter().all(|c| c.is_finite()), "costs must be finite");
    if rows == 0 || cols == 0 {
        return Vec::new();
    }
    if rows <= cols {
        solve(|r, c| costs[r * cols + c], rows, cols)
    } else {
        let mut pairs: Vec<(usize, usize)> = solve(|r, c| costs[c * cols + r], cols, rows)
            .into_iter()
            .map(|(c, r)| (r, c))
            .collect();
        pairs.sort_unstable();
        pairs
    }
}

/// Core solver, n <= m. Uses 1-based internal indices with a virtual column 0.
fn solve(cost: impl Fn(usize, usize) -> f64, n: usize, m: usize) -> Vec<(usize, usize)> {
    let inf = f64::INFINITY;
    let mut u = vec![0.0f64; n + 1];
    let mut v = vec![0.0f64; m + 1];
    // p[j] = row (1-based) matched to column j; 0 = free
    let mut p = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    let mut minv = vec![inf; m + 1];
    let mut used = vec![false; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0usize;
        minv.iter_mut().for_each(|x| *x = inf);
        used.iter_mut().for_each(|x| *x = false);
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = inf;
            let mut j1 = 0usize;
            for j in 1..=m {
                if !used[j] {
                    let cur = cost(i0 - 1, j - 1) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut pairs: Vec<(usize, usize)> = (1..=m)
        .filter(|&j| p[j] != 0)
        .map(|j| (p[j] - 1, j - 1))
        .collect();
    pairs.sort_unstable();
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(costs: &[f64], cols: usize, pairs: &[(usize, usize)]) -> f64 {
        pairs.iter().map(|&(r, c)| costs[r * cols + c]).sum()
    }

    /// Exhaustive minimum over all injective maps of the smaller side.
    fn brute(costs: &[f64], rows: usize, cols: usize) -> f64 {
        fn rec(
            costs: &[f64],
            rows: usize,
            cols: usize,
            r: usize,
            used: &mut Vec<bool>,
            transposed: bool,
        ) -> f64 {
            let (n, m) = if transposed {
                (cols, rows)
            } else {
                (rows, cols)
            };
            if r == n {
                return 0.0;
            }
            let mut best = f64::INFINITY;
            for c in 0..m {
                if !used[c] {
                    used[c] = true;
                    let x = if transposed {
                        costs[c * cols + r]
                    } else {
                        costs[r * cols + c]
                    };
                    best = best.min(x + rec(costs, rows, cols, r + 1, used, transposed));
                    used[c] = false;
                }
            }
            best
        }
        let transposed = rows > cols;
        let m = if transposed { rows } else { cols };
        rec(costs, rows, cols, 0, &mut vec![false; m], transposed)
    }

    #[test]
    fn small_known_case() {
        // scipy's documented example: optimum 5 with rows->cols 0->1, 1->0, 2->2
        let c = [4.0, 1.0, 3.0, 2.0, 0.0, 5.0, 3.0, 2.0, 2.0];
        let p = assign(&c, 3, 3);
        assert_eq!(p, vec![(0, 1), (1, 0), (2, 2)]);
        assert_eq!(total(&c, 3, &p), 5.0);
    }

    #[test]
    fn empty_and_rectangular() {
        assert!(assign(&[], 0, 4).is_empty());
        assert!(assign(&[], 3, 0).is_empty());
        let c = [5.0, 1.0, 9.0, 2.0]; // 1 x 4
        assert_eq!(assign(&c, 1, 4), vec![(0, 1)]);
        let c = [5.0, 1.0, 9.0, 2.0]; // 4 x 1
        assert_eq!(assign(&c, 4, 1), vec![(1, 0)]);
    }

    #[test]
    fn matches_brute_force_on_random_matrices() {
        let mut s = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        for rows in 1..=6 {
            for cols in 1..=6 {
                for _ in 0..5 {
                    let c: Vec<f64> = (0..rows * cols)
                        .map(|_| (next() * 100.0).floor() / 7.0)
                        .collect();
                    let p = assign(&c, rows, cols);
                    assert_eq!(p.len(), rows.min(cols));
                    let mut rs: Vec<_> = p.iter().map(|x| x.0).collect();
                    let mut cs: Vec<_> = p.iter().map(|x| x.1).collect();
                    rs.dedup();
                    cs.sort_unstable();
                    cs.dedup();
                    assert_eq!(rs.len(), p.len());
                    assert_eq!(cs.len(), p.len());
                    assert!((total(&c, cols, &p) - brute(&c, rows, cols)).abs() < 1e-9);
                }
            }
        }
    }
}
