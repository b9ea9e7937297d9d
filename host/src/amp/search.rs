//! Phase-2 searches over the sorted prefixes (AIMET's brute-force, binary and interpolation searches, same
//! evaluation counts) and the knapsack alternative.
//!
//! Point i is "baseline + the first i+1 entries of the sorted sensitivity list". Every search assumes the
//! score does not increase with i and returns the largest i whose score reaches the target (0 when even the
//! first point misses it; the caller then checks point 0 and keeps the baseline).

use anyhow::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum SearchAlgo {
    /// Evaluate prefixes in order until one fails (every prefix with --allowed-drop none: the full curve).
    Bruteforce,
    /// Bisection over the prefixes: ≤ 2 + ⌈log2(L−1)⌉ evaluations.
    Binary,
    /// Like binary, but the split point is interpolated between the bracketing scores.
    Interpolation,
    /// Multiple-choice knapsack over the phase-1 sensitivities, verified by evaluation and repaired.
    Knapsack,
}

/// Largest `i` in `0..len` with `value(i) ≥ target` (see module docs). `value` is expected to memoise.
pub fn search(
    algo: SearchAlgo,
    len: usize,
    target: f64,
    value: &mut dyn FnMut(usize) -> Result<f64>,
) -> Result<usize> {
    if len == 0 {
        return Ok(0);
    }
    match algo {
        SearchAlgo::Bruteforce | SearchAlgo::Knapsack => {
            for i in 0..len {
                let v = value(i)?;
                if v == target {
                    return Ok(i);
                }
                if v < target {
                    return Ok(i.saturating_sub(1));
                }
            }
            Ok(len - 1)
        }
        SearchAlgo::Binary | SearchAlgo::Interpolation => {
            // ascending search on the reversed list: rev(j) = value(len − 1 − j)
            let last = len - 1;
            let mut rev = |j: usize| value(last - j);
            if target <= rev(0)? {
                return Ok(last);
            }
            if target >= rev(last)? {
                return Ok(0);
            }
            let (mut left, mut right) = (0usize, last);
            while right - left > 1 {
                let (vl, vr) = (rev(left)?, rev(right)?);
                let frac = if algo == SearchAlgo::Binary {
                    0.5
                } else {
                    (target - vl) / (vr - vl)
                };
                let mid = (left as f64 + (right - left) as f64 * frac)
                    .clamp((left + 1) as f64, (right - 1) as f64)
                    as usize;
                let v = rev(mid)?;
                if v < target {
                    left = mid;
                } else if v > target {
                    right = mid;
                } else {
                    left = mid;
                    right = mid;
                }
            }
            let j = if rev(left)? >= target { left } else { right };
            Ok(last - j)
        }
    }
}

/// One option of a group in the knapsack: its cost and its estimated accuracy drop.
#[derive(Clone, Debug)]
pub struct KnapsackItem {
    pub cost: f64,
    /// Estimated drop, in units of the budget's granularity.
    pub drop: usize,
}

/// Multiple-choice knapsack: pick one item per group minimising total cost with total drop ≤ `budget`.
/// Returns the chosen item per group, or None when even the least-drop choice of every group exceeds it.
pub fn knapsack(groups: &[Vec<KnapsackItem>], budget: usize) -> Option<Vec<usize>> {
    let inf = f64::INFINITY;
    // best[g][b]: least cost of groups g.. with drop budget b left
    let n = groups.len();
    let mut best = vec![vec![0.0f64; budget + 1]; n + 1];
    let mut choice = vec![vec![usize::MAX; budget + 1]; n];
    for g in (0..n).rev() {
        for b in 0..=budget {
            let mut m = inf;
            for (k, it) in groups[g].iter().enumerate() {
                if it.drop <= b {
                    let c = it.cost + best[g + 1][b - it.drop];
                    if c < m {
                        m = c;
                        choice[g][b] = k;
                    }
                }
            }
            best[g][b] = m;
        }
    }
    if !best[0][budget].is_finite() {
        return None;
    }
    let mut b = budget;
    let mut out = Vec::with_capacity(n);
    for (g, ch) in choice.iter().enumerate() {
        let k = ch[b];
        out.push(k);
        b -= groups[g][k].drop;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// AIMET's unit-test list (test_mixed_precision.py): four prefixes with phase-2 scores .94 .93 .89 .85,
    /// FP32 = 1.0. Returns (chosen index, distinct points evaluated).
    fn run(algo: SearchAlgo, drop: f64) -> (usize, usize) {
        let scores = [0.94, 0.93, 0.89, 0.85];
        let mut seen = BTreeSet::new();
        let i = search(algo, 4, 1.0 - drop, &mut |i| {
            seen.insert(i);
            Ok(scores[i])
        })
        .unwrap();
        (i, seen.len())
    }

    #[test]
    fn evaluation_counts_match_aimet_test_vectors() {
        assert_eq!(run(SearchAlgo::Bruteforce, 0.12), (2, 4));
        assert_eq!(run(SearchAlgo::Binary, 0.055), (0, 2));
        assert_eq!(run(SearchAlgo::Binary, 0.1), (1, 4));
        assert_eq!(run(SearchAlgo::Interpolation, 0.13), (2, 3));
        assert_eq!(run(SearchAlgo::Interpolation, 0.1), (1, 4));
    }

    #[test]
    fn worked_example_binary_search_takes_five_evaluations() {
        // aimet-amp.md §4.3: p9 = .962, p0 = .999, p5 = .992, p7 = .981, p6 = .987, target .99 → i* = 5
        let mut scores = [
            0.999, 0.998, 0.997, 0.996, 0.994, 0.992, 0.987, 0.981, 0.975, 0.962,
        ];
        scores[5] = 0.992;
        let mut seen = Vec::new();
        let i = search(SearchAlgo::Binary, 10, 0.99, &mut |i| {
            if !seen.contains(&i) {
                seen.push(i);
            }
            Ok(scores[i])
        })
        .unwrap();
        assert_eq!(i, 5);
        assert_eq!(seen, vec![9, 0, 5, 7, 6]);
        let mut n = 0;
        let j = search(SearchAlgo::Bruteforce, 10, 0.99, &mut |i| {
            n += 1;
            Ok(scores[i])
        })
        .unwrap();
        assert_eq!((j, n), (5, 7));
    }

    #[test]
    fn full_curve_with_no_target_evaluates_every_prefix() {
        let mut n = 0;
        let i = search(SearchAlgo::Bruteforce, 6, f64::NEG_INFINITY, &mut |_| {
            n += 1;
            Ok(0.5)
        })
        .unwrap();
        assert_eq!((i, n), (5, 6));
    }

    #[test]
    fn knapsack_matches_brute_force_on_small_instances() {
        let mut seed = 7u64;
        let mut rnd = |m: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % m
        };
        for _ in 0..200 {
            let n = 1 + rnd(4) as usize;
            let groups: Vec<Vec<KnapsackItem>> = (0..n)
                .map(|_| {
                    let k = 1 + rnd(3) as usize;
                    (0..k)
                        .map(|_| KnapsackItem {
                            cost: rnd(50) as f64,
                            drop: rnd(6) as usize,
                        })
                        .collect()
                })
                .collect();
            let budget = rnd(10) as usize;
            // brute force over all combinations
            let mut best: Option<f64> = None;
            let mut idx = vec![0usize; n];
            loop {
                let drop: usize = idx
                    .iter()
                    .enumerate()
                    .map(|(g, &k)| groups[g][k].drop)
                    .sum();
                if drop <= budget {
                    let cost: f64 = idx
                        .iter()
                        .enumerate()
                        .map(|(g, &k)| groups[g][k].cost)
                        .sum();
                    best = Some(best.map_or(cost, |b: f64| b.min(cost)));
                }
                let mut g = 0;
                while g < n {
                    idx[g] += 1;
                    if idx[g] < groups[g].len() {
                        break;
                    }
                    idx[g] = 0;
                    g += 1;
                }
                if g == n {
                    break;
                }
            }
            let got = knapsack(&groups, budget);
            match (best, got) {
                (None, None) => {}
                (Some(b), Some(ch)) => {
                    let cost: f64 = ch.iter().enumerate().map(|(g, &k)| groups[g][k].cost).sum();
                    let drop: usize = ch.iter().enumerate().map(|(g, &k)| groups[g][k].drop).sum();
                    assert_eq!(cost, b);
                    assert!(drop <= budget);
                }
                other => panic!("knapsack and brute force disagree: {other:?}"),
            }
        }
    }
}
