//! Phase 3, Convert reduction: from phase 2's choice, groups raised (never lowered) so that the Convert
//! overhead is at most α × its own, for α = 1.0, 0.8 … 0.0, solved exactly; each config measured for accuracy
//! and latency, and the fastest that meets the target marked.

use amp_device::quant::Precision;
use anyhow::Result;

use super::cost_choice::point_cost;
use super::runner::Runner;
use super::{AlphaPoint, Phase3, Point, Search};
use crate::amp::cost::{self, CostModel};
use crate::amp::evaluator::Subset;
use crate::progress;

/// Phase 3: for each α, the least bit-ops config whose Convert overhead is at most α × the phase-2
/// solution's, moving groups only upward; each evaluated for accuracy and latency on the device.
pub(super) fn run(r: &mut Runner, s: &Search, m: &CostModel, p2: &Point) -> Result<Phase3> {
    let (g, groups, opts, target) = (s.g, s.groups, &s.opts, s.target);
    const ALPHAS: [f64; 6] = [1.0, 0.8, 0.6, 0.4, 0.2, 0.0];
    let (problem, precs) = cost::alpha_problem(g, groups, m, &opts.candidates, &p2.config);
    let full = m.convert_us(&p2.config);
    let budgets: Vec<f64> = ALPHAS.iter().map(|a| a * full).collect();
    let mut note = None;
    let solutions = match cost::solve_alphas(&problem, &budgets) {
        Ok(s) => s,
        Err(e) => {
            note = Some(format!(
                "{e:#}; only α = 1 (the phase-2 solution) is listed"
            ));
            vec![None; budgets.len()]
        }
    };
    let target = if opts.allowed_drop.is_some() {
        target
    } else {
        p2.score
    };
    let bar = progress::bar(ALPHAS.len() as u64, "phase 3");
    let mut points: Vec<AlphaPoint> = Vec::new();
    for (k, &alpha) in ALPHAS.iter().enumerate() {
        let cfg: Vec<Precision> = if k == 0 {
            p2.config.clone()
        } else {
            match &solutions[k] {
                Some(s) => s
                    .choice
                    .iter()
                    .enumerate()
                    .map(|(gi, &o)| precs[gi][o])
                    .collect(),
                None => {
                    bar.inc(1);
                    continue;
                }
            }
        };
        let (score, latency_us) = match points.iter().find(|p| p.config == cfg) {
            Some(p) => (p.score, p.latency_us),
            None => (
                r.eval(3, Some(&cfg), Subset::Phase2, &s.opts.metric)?,
                r.latency(&cfg, &opts.timing)?,
            ),
        };
        let pc = point_cost(s, m, &cfg);
        points.push(AlphaPoint {
            alpha,
            relative_bitops: groups.bit_ops(g, &cfg) / s.base_bitops,
            relative_cost: pc.relative_cost,
            convert_us: pc.convert_us,
            converts: pc.converts,
            groups_raised: cfg.iter().zip(&p2.config).filter(|(a, b)| a != b).count(),
            meets_target: score.is_some_and(|a| a >= target),
            score,
            latency_us,
            config: cfg,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    let marked = points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.meets_target && p.latency_us.is_some())
        .min_by(|a, b| {
            a.1.latency_us
                .unwrap_or(f64::INFINITY)
                .total_cmp(&b.1.latency_us.unwrap_or(f64::INFINITY))
                .then(b.1.alpha.total_cmp(&a.1.alpha))
        })
        .map(|(i, _)| i);
    Ok(Phase3 {
        phase2_convert_us: full,
        target,
        points,
        marked,
        note,
    })
}
