//! Phase 2: the phase-1 list sorted, and the configs that lower its prefixes, searched for the longest
//! prefix that meets the target (binary, interpolation or brute force; every prefix without a target), or
//! AIMET's list replaced by an exact knapsack over the phase-1 drops; then the chosen point, re-picked by
//! cost when a cost model is in use.

use std::time::Instant;

use amp_device::quant::Precision;
use anyhow::{anyhow, bail, Result};

use super::runner::Runner;
use super::{cost_choice, knapsack, Point, Search, TuneResult};
use crate::amp::cost::CostModel;
use crate::amp::evaluator::Subset;
use crate::amp::search::{search, SearchAlgo};
use crate::progress;

pub(super) fn run(
    r: &mut Runner,
    s: &Search,
    model: Option<&CostModel>,
    result: &mut TuneResult,
) -> Result<()> {
    let t2 = Instant::now();
    let list = result.sensitivity.clone();
    let prefix = |i: usize| {
        let mut cfg = s.base_cfg.clone();
        for e in &list[..=i] {
            cfg[e.group] = e.candidate;
        }
        cfg
    };
    let mut values: Vec<Option<f64>> = vec![None; list.len()];
    let bar = progress::bar(list.len() as u64, "phase 2");
    let chosen_cfg = if s.opts.search == SearchAlgo::Knapsack {
        let Some(drop) = s.opts.allowed_drop else {
            bail!("--search knapsack needs --allowed-drop")
        };
        if s.opts.phase1_metric != s.opts.metric {
            bail!("--search knapsack needs phase 1 scored by the tune's metric (it adds up its drops)");
        }
        let base1 = r
            .eval(1, Some(&s.base_cfg), Subset::Phase1, &s.opts.metric)?
            .unwrap_or(f64::NEG_INFINITY);
        let budget = drop - (s.reference - s.acc_of(s.baseline));
        let mut eval = |cfg: &[Precision]| -> Result<f64> {
            let v = r
                .eval(2, Some(cfg), Subset::Phase2, &s.opts.metric)?
                .unwrap_or(f64::NEG_INFINITY);
            bar.inc(1);
            Ok(v)
        };
        knapsack::choose(s, &list, base1, budget, &mut eval, &mut result.pareto)?
    } else {
        let mut value = |i: usize| -> Result<f64> {
            if let Some(v) = values[i] {
                return Ok(v);
            }
            let v = r
                .eval(2, Some(&prefix(i)), Subset::Phase2, &s.opts.metric)?
                .unwrap_or(f64::NEG_INFINITY);
            values[i] = Some(v);
            bar.inc(1);
            Ok(v)
        };
        let algo = if s.opts.allowed_drop.is_none() {
            SearchAlgo::Bruteforce
        } else {
            s.opts.search
        };
        let i = search(algo, list.len(), s.target, &mut value)?;
        if list.is_empty() || value(i)? < s.target {
            None
        } else {
            Some(prefix(i))
        }
    };
    bar.finish_and_clear();
    for (i, v) in values.iter().enumerate() {
        if let Some(v) = v {
            let cfg = prefix(i);
            result.pareto.push(Point {
                index: Some(i),
                relative_bitops: s.rel(&cfg),
                score: *v,
                group: Some(list[i].group),
                candidate: Some(list[i].candidate),
                config: cfg,
                cost: None,
            });
        }
    }
    let chosen_cfg = chosen_cfg.unwrap_or_else(|| s.base_cfg.clone());
    let acc = r
        .eval(2, Some(&chosen_cfg), Subset::Phase2, &s.opts.metric)?
        .ok_or_else(|| anyhow!("the chosen config could not be evaluated"))?;
    let index = result
        .pareto
        .iter()
        .find(|p| p.config == chosen_cfg)
        .and_then(|p| p.index);
    result.chosen = Point {
        index,
        ..s.point(chosen_cfg, acc)
    };
    // AIMET keeps the prefix it found. A narrower uniform candidate that phase 0 measured within the target
    // can cost less: the sorted list mixes candidates, and where the curve falls steeply the search stops at
    // a wide prefix (MiniLM on HTP: 98 of 106 groups at 16 bits, relative bit-ops 0.97, while uniform a16w8
    // meets the target at 0.5).
    if model.is_none() && s.opts.allowed_drop.is_some() {
        let measured: Vec<(Precision, f64, f64)> = (s.scores.iter())
            .map(|&(c, score)| (c, score, s.rel(&s.uniform(c))))
            .collect();
        if let Some(c) = cheaper_uniform(&measured, s.target, result.chosen.relative_bitops) {
            result.chosen = s.point(s.uniform(c), s.acc_of(c));
        }
    }
    if let Some(m) = model {
        let prefixes: Vec<Vec<Precision>> = match index {
            Some(i) => (0..=i).map(prefix).collect(),
            None => Vec::new(),
        };
        cost_choice::choose_by_cost(r, s, m, &prefixes, result)?;
    }
    r.phases[2].seconds = t2.elapsed().as_secs_f64();
    Ok(())
}

/// The uniform candidate, of `(candidate, phase-0 score, relative bit-ops)`, that meets `target` at the
/// fewest bit-ops, when that is fewer than `chosen`'s.
fn cheaper_uniform(
    measured: &[(Precision, f64, f64)],
    target: f64,
    chosen: f64,
) -> Option<Precision> {
    measured
        .iter()
        .filter(|&&(_, score, rel)| score >= target && rel < chosen)
        .min_by(|a, b| a.2.total_cmp(&b.2))
        .map(|&(c, _, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cheaper_uniform_candidate_within_the_target_replaces_a_wide_prefix() {
        let measured = [
            (Precision::A16W16, 0.99999, 1.0),
            (Precision::A16W8, 0.9996, 0.5),
            (Precision::A8W8, 0.85, 0.25),
        ];
        // MiniLM on HTP: the search stopped at 0.97 of the bit-ops; a16w8 meets 0.995 at half
        assert_eq!(
            cheaper_uniform(&measured, 0.995, 0.966),
            Some(Precision::A16W8)
        );
        // the cheapest that meets it wins; none when the prefix found is already cheaper
        assert_eq!(
            cheaper_uniform(&measured, 0.8, 0.966),
            Some(Precision::A8W8)
        );
        assert_eq!(cheaper_uniform(&measured, 0.995, 0.436), None);
        // none meets a target above them all; a tie in bit-ops keeps the prefix
        assert_eq!(cheaper_uniform(&measured, 0.999999, 1.5), None);
        assert_eq!(cheaper_uniform(&measured, 0.995, 0.5), None);
    }
}
