//! Phase 2 as an exact multiple-choice knapsack over the phase-1 drops, verified and repaired by evaluation.

use amp_device::quant::Precision;
use anyhow::Result;

use super::{Point, Search, Sensitivity};
use crate::amp::search::{knapsack, KnapsackItem};

/// Knapsack over the phase-1 sensitivities: per group, the baseline or one lower candidate, costs in bit-ops,
/// drops as measured alone in phase 1 (assumed additive). The solution is evaluated; while it misses the
/// target, the lowered group with the largest phase-1 drop goes back to the baseline.
pub(super) fn choose(
    s: &Search,
    list: &[Sensitivity],
    base1: f64,
    budget: f64,
    eval: &mut dyn FnMut(&[Precision]) -> Result<f64>,
    pareto: &mut Vec<Point>,
) -> Result<Option<Vec<Precision>>> {
    let (groups, g, base_cfg, target) = (s.groups, s.g, &s.base_cfg[..], s.target);
    // drops in units of 1e-4 of accuracy
    let unit = 1e-4;
    let budget_units = if budget <= 0.0 {
        0
    } else {
        (budget / unit).floor() as usize
    };
    let n = base_cfg.len();
    let base_bitops = groups.bit_ops(g, base_cfg);
    let mut options: Vec<Vec<(Precision, f64)>> =
        (0..n).map(|gi| vec![(base_cfg[gi], 0.0)]).collect();
    for e in list {
        options[e.group].push((e.candidate, (base1 - e.score).max(0.0)));
    }
    let items: Vec<Vec<KnapsackItem>> = (0..n)
        .map(|gi| {
            options[gi]
                .iter()
                .map(|&(c, drop)| {
                    let mut cfg = base_cfg.to_vec();
                    cfg[gi] = c;
                    // on equal bit-ops (groups without weights) prefer the narrower candidate: fewer 16-bit groups
                    let tie = (c.act + c.weight) as f64 * 1e-6;
                    KnapsackItem {
                        cost: groups.bit_ops(g, &cfg) - base_bitops + tie,
                        drop: (drop / unit).ceil() as usize,
                    }
                })
                .collect()
        })
        .collect();
    let Some(choice) = knapsack(&items, budget_units.min(1_000_000)) else {
        return Ok(None);
    };
    let mut cfg: Vec<Precision> = choice
        .iter()
        .enumerate()
        .map(|(gi, &k)| options[gi][k].0)
        .collect();
    loop {
        let acc = eval(&cfg)?;
        pareto.push(s.point(cfg.clone(), acc));
        if acc >= target {
            return Ok(Some(cfg));
        }
        // repair: raise the most sensitive lowered group
        let worst = (0..n)
            .filter(|&gi| cfg[gi] != base_cfg[gi])
            .max_by(|&a, &b| {
                let d = |gi: usize| {
                    options[gi]
                        .iter()
                        .find(|o| o.0 == cfg[gi])
                        .map(|o| o.1)
                        .unwrap_or(0.0)
                };
                d(a).total_cmp(&d(b)).then(b.cmp(&a))
            });
        match worst {
            Some(gi) => cfg[gi] = base_cfg[gi],
            None => return Ok(None),
        }
    }
}
