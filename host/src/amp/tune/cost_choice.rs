//! The cost model in the search: uniform latencies and Convert prices measured on the device, every point
//! priced, and the chosen point re-picked by bit-ops + Convert overhead or by measured latency.

use std::time::Instant;

use amp_device::quant::Precision;
use anyhow::Result;

use super::runner::Runner;
use super::{CostReport, Point, PointCost, Search, TuneResult};
use crate::amp::cost::{self, CostKind, CostModel};
use crate::amp::evaluator::Subset;
use crate::progress;

/// Latency of each uniform candidate, the line through them, and the Convert prices (kept in
/// `convert_costs.json` while the device, SoC and backend are the same).
pub(super) fn build_cost_model(r: &mut Runner, s: &Search) -> Result<(CostModel, CostReport)> {
    let (g, groups, opts, scores) = (s.g, s.groups, &s.opts, &s.scores);
    let n = groups.len();
    let bar = progress::bar(scores.len() as u64 + 1, "latency");
    let mut pts = Vec::new();
    for &(c, _) in scores {
        let cfg = vec![c; n];
        if let Some(us) = r.latency(&cfg, &opts.timing)? {
            pts.push((c.to_string(), groups.bit_ops(g, &cfg), us));
        }
        bar.inc(1);
    }
    let fit = cost::fit_latency(&pts);
    let probes = cost::probes(g, opts.timing.batch);
    let t = Instant::now();
    let (table, pricing) = cost::price_converts(
        opts.timing.convert_costs.as_deref(),
        &mut *r.ev,
        &probes,
        opts.timing.runs(),
        &opts.timing.command,
    )?;
    r.timing.seconds += t.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let model = CostModel::new(g, groups, &table, fit.clone());
    let report = CostReport {
        kind: opts.cost,
        convert_prices: table.kind.clone(),
        method: table.method.clone(),
        provenance: table.provenance.clone(),
        fit,
        pricing,
        sites: model.sites.len(),
    };
    Ok((model, report))
}

/// A config's Converts and its cost relative to the baseline's bit-ops.
pub(super) fn point_cost(s: &Search, m: &CostModel, cfg: &[Precision]) -> PointCost {
    PointCost {
        relative_cost: (s.bitops(cfg) + m.convert_bitops(cfg)) / s.base_bitops,
        convert_us: m.convert_us(cfg),
        converts: m.convert_count(cfg),
        latency_us: None,
    }
}

/// Prices every point; with `--cost bitops+convert` picks, among the evaluated points that meet the target
/// and the prefixes up to phase 2's choice (each lowers a subset of its groups), the one of least combined
/// cost; with `--cost latency` measures each point of the front and picks the fastest that meets the target.
pub(super) fn choose_by_cost(
    r: &mut Runner,
    s: &Search,
    m: &CostModel,
    prefixes: &[Vec<Precision>],
    result: &mut TuneResult,
) -> Result<()> {
    let (opts, target) = (&s.opts, s.target);
    for p in result
        .pareto
        .iter_mut()
        .chain(std::iter::once(&mut result.chosen))
    {
        p.cost = Some(point_cost(s, m, &p.config));
    }
    let feasible = |p: &Point| p.score >= target;
    if opts.cost == CostKind::Bitops
        || opts.allowed_drop.is_none() && opts.cost != CostKind::Latency
    {
        return Ok(());
    }
    let combined = |cfg: &[Precision]| s.bitops(cfg) + m.convert_bitops(cfg);
    // the cheapest prefix by combined cost: evaluate it if it is new
    if let Some(best) = prefixes
        .iter()
        .min_by(|a, b| combined(a).total_cmp(&combined(b)))
    {
        if !result.pareto.iter().any(|p| &p.config == best) {
            if let Some(acc) = r.eval(2, Some(best), Subset::Phase2, &s.opts.metric)? {
                let index = prefixes.iter().position(|p| p == best);
                result.pareto.push(Point {
                    index,
                    cost: Some(point_cost(s, m, best)),
                    ..s.point(best.clone(), acc)
                });
            }
        }
    }
    if opts.cost == CostKind::Latency {
        // the front: points no other point beats in both bit-ops and accuracy
        let front: Vec<usize> = (0..result.pareto.len())
            .filter(|&i| {
                let p = &result.pareto[i];
                !result.pareto.iter().any(|q| {
                    q.relative_bitops <= p.relative_bitops
                        && q.score >= p.score
                        && (q.relative_bitops < p.relative_bitops || q.score > p.score)
                })
            })
            .collect();
        let bar = progress::bar(front.len() as u64, "latency");
        for i in front {
            let cfg = result.pareto[i].config.clone();
            let us = r.latency(&cfg, &opts.timing)?;
            if let Some(c) = result.pareto[i].cost.as_mut() {
                c.latency_us = us;
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
    }
    let key = |p: &Point| -> Option<f64> {
        let c = p.cost.as_ref()?;
        match opts.cost {
            CostKind::Latency => c.latency_us,
            _ => Some(c.relative_cost),
        }
    };
    let best = result
        .pareto
        .iter()
        .filter(|p| feasible(p) && key(p).is_some())
        .min_by(|a, b| {
            key(a)
                .unwrap_or(f64::INFINITY)
                .total_cmp(&key(b).unwrap_or(f64::INFINITY))
                .then(a.relative_bitops.total_cmp(&b.relative_bitops))
        })
        .cloned();
    if let Some(b) = best {
        let cur = result
            .pareto
            .iter()
            .find(|p| p.config == result.chosen.config)
            .and_then(key)
            .or_else(|| key(&result.chosen));
        if cur.is_none_or(|c| key(&b).is_some_and(|k| k < c)) || !feasible(&result.chosen) {
            result.chosen = b;
        } else if let Some(p) = result
            .pareto
            .iter()
            .find(|p| p.config == result.chosen.config)
        {
            result.chosen.cost = p.cost.clone();
        }
    }
    Ok(())
}
