//! The search: phase 0 (FP32 and every uniform candidate), phase 1 (each group alone at each lower
//! candidate, all others at the baseline), phase 2 (sorted prefixes with the chosen search, or a knapsack),
//! every evaluation journalled.

use std::time::Instant;

use amp_device::ir::Graph;
use amp_device::quant::Precision;
use anyhow::{bail, Result};
use serde::Serialize;

use super::evaluator::{Evaluator, Job, Metric, Subset};
use super::groups::Groups;
use super::journal::{self, Journal};
use super::search::{knapsack, search, KnapsackItem, SearchAlgo};
use crate::progress;
use amp_device::backend::qnn::QnnBackendError;

/// What the search is asked.
#[derive(Clone, Debug, Serialize)]
pub struct TuneOptions {
    pub candidates: Vec<Precision>,
    /// None: no target, the whole curve.
    pub allowed_drop: Option<f64>,
    pub search: SearchAlgo,
    pub phase1_metric: Metric,
}

/// Hashes identifying the inputs of every evaluation (for journal keys).
#[derive(Clone, Debug, Serialize)]
pub struct Identity {
    pub model: String,
    pub phase1_data: String,
    pub phase2_data: String,
    pub encodings: String,
}

/// One phase-1 measurement.
#[derive(Clone, Debug, Serialize)]
pub struct Sensitivity {
    pub group: usize,
    pub candidate: Precision,
    pub score: f64,
    pub bitops_reduction: f64,
}

/// One evaluated point of the curve.
#[derive(Clone, Debug, Serialize)]
pub struct Point {
    /// Index in the sorted list (the prefix 0..=index is applied); None for the all-baseline point.
    pub index: Option<usize>,
    pub relative_bitops: f64,
    pub accuracy: f64,
    pub group: Option<usize>,
    pub candidate: Option<Precision>,
    pub config: Vec<Precision>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PhaseStats {
    pub evaluations: usize,
    pub cached: usize,
    pub seconds: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct TuneResult {
    pub fp32: f64,
    pub uniform: Vec<(Precision, f64)>,
    pub baseline: Precision,
    pub min_candidate: Precision,
    pub early_exit: Option<String>,
    pub sensitivity: Vec<Sensitivity>,
    pub pareto: Vec<Point>,
    pub chosen: Point,
    pub phases: [PhaseStats; 3],
    pub torn_journal_lines: usize,
    /// Phase-1 (group, candidate) pairs the backend could not run (dropped from the search).
    pub unsupported: usize,
}

fn config_str(c: Option<&[Precision]>) -> String {
    match c {
        None => "fp32".into(),
        Some(c) => c
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(","),
    }
}

struct Runner<'a, 'b> {
    ev: &'a mut dyn Evaluator,
    /// The evaluator of phase 1 (the same device as `ev`, or the reference backend as a fast path).
    ev1: Option<&'b mut dyn Evaluator>,
    journal: &'a mut Journal,
    id: &'a Identity,
    phases: [PhaseStats; 3],
}

impl Runner<'_, '_> {
    /// The metric of `config` on `subset`, from the journal or measured; None when the backend cannot run
    /// the config (an op or dtype combination it rejects): the search then drops it.
    fn eval(
        &mut self,
        phase: usize,
        config: Option<&[Precision]>,
        subset: Subset,
        metric: Metric,
    ) -> Result<Option<f64>> {
        let cfg = config_str(config);
        let data = if subset == Subset::Phase1 {
            &self.id.phase1_data
        } else {
            &self.id.phase2_data
        };
        let ev: &mut dyn Evaluator = match (phase, self.ev1.as_deref_mut()) {
            (1, Some(e)) => e,
            _ => &mut *self.ev,
        };
        let who = ev.identity();
        let key = journal::key(&[
            &self.id.model,
            data,
            &self.id.encodings,
            &cfg,
            &who,
            metric.name(),
        ]);
        if let Some(e) = self.journal.get(&key) {
            self.phases[phase].cached += 1;
            return Ok(e.value);
        }
        let t = Instant::now();
        let (value, unsupported) = match ev.evaluate(config, subset, metric) {
            Ok(v) => (Some(v), None),
            Err(e) => match e.downcast_ref::<QnnBackendError>() {
                Some(QnnBackendError::Unsupported { .. }) => (None, Some(e.to_string())),
                _ => return Err(e),
            },
        };
        let secs = t.elapsed().as_secs_f64();
        self.journal.append(journal::Entry {
            key,
            phase: phase.to_string(),
            config: cfg,
            metric: metric.name().into(),
            value,
            unsupported,
            seconds: secs,
        })?;
        self.phases[phase].evaluations += 1;
        Ok(value)
    }
}

impl Runner<'_, '_> {
    /// Like `eval` for many configs at once (a device pool runs them in parallel); every result is
    /// journalled as soon as it arrives.
    fn eval_many(
        &mut self,
        phase: usize,
        configs: &[Vec<Precision>],
        subset: Subset,
        metric: Metric,
        mut tick: impl FnMut(),
    ) -> Result<Vec<Option<f64>>> {
        let data = if subset == Subset::Phase1 {
            self.id.phase1_data.clone()
        } else {
            self.id.phase2_data.clone()
        };
        let ev: &mut dyn Evaluator = match (phase, self.ev1.as_deref_mut()) {
            (1, Some(e)) => e,
            _ => &mut *self.ev,
        };
        let who = ev.identity();
        let mut out = vec![None; configs.len()];
        let mut todo = Vec::new();
        let mut keys = Vec::new();
        for (i, c) in configs.iter().enumerate() {
            let key = journal::key(&[
                &self.id.model,
                &data,
                &self.id.encodings,
                &config_str(Some(c)),
                &who,
                metric.name(),
            ]);
            if let Some(e) = self.journal.get(&key) {
                self.phases[phase].cached += 1;
                out[i] = e.value;
                tick();
            } else {
                todo.push(i);
                keys.push(key);
            }
        }
        let jobs: Vec<Job> = todo
            .iter()
            .map(|&i| Job {
                config: Some(configs[i].clone()),
                subset,
                metric,
            })
            .collect();
        let journal = &mut *self.journal;
        let stats = &mut self.phases[phase];
        let t = Instant::now();
        ev.evaluate_many(&jobs, &mut |k, r| {
            let (value, unsupported) = match r {
                Ok(v) => (Some(v), None),
                Err(e) => match e.downcast_ref::<QnnBackendError>() {
                    Some(QnnBackendError::Unsupported { .. }) => (None, Some(e.to_string())),
                    _ => return Err(e),
                },
            };
            journal.append(journal::Entry {
                key: keys[k].clone(),
                phase: phase.to_string(),
                config: config_str(Some(&configs[todo[k]])),
                metric: metric.name().into(),
                value,
                unsupported,
                seconds: t.elapsed().as_secs_f64(),
            })?;
            stats.evaluations += 1;
            out[todo[k]] = value;
            tick();
            Ok(())
        })?;
        Ok(out)
    }
}

/// AIMET's sort key: score desc, bit sum desc, bit-ops reduction desc, group index asc.
pub fn sort_sensitivities(list: &mut [Sensitivity]) {
    list.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(
                (b.candidate.act + b.candidate.weight).cmp(&(a.candidate.act + a.candidate.weight)),
            )
            .then(b.bitops_reduction.total_cmp(&a.bitops_reduction))
            .then(a.group.cmp(&b.group))
    });
}

/// The candidates phase 1 evaluates for a group: those below the baseline (no wider half; AIMET evaluates
/// every non-baseline candidate, so a baseline of a16w8 would also try a16w16, which only adds cost), and for
/// a group without weights one per distinct activation width (the weight half changes nothing there).
fn phase1_candidates(
    groups: &Groups,
    gi: usize,
    cands: &[Precision],
    baseline: Precision,
) -> Vec<Precision> {
    let weightless = groups.groups[gi].weight_nodes.is_empty();
    let mut out: Vec<Precision> = Vec::new();
    for &c in cands {
        let lower = c.act <= baseline.act && (weightless || c.weight <= baseline.weight);
        let same = if weightless {
            c.act == baseline.act || out.iter().any(|o| o.act == c.act)
        } else {
            c == baseline
        };
        if lower && !same {
            out.push(c);
        }
    }
    out
}

pub fn tune(
    g: &Graph,
    groups: &Groups,
    opts: &TuneOptions,
    ev: &mut dyn Evaluator,
    ev1: Option<&mut dyn Evaluator>,
    journal: &mut Journal,
    id: &Identity,
) -> Result<TuneResult> {
    if opts.candidates.is_empty() {
        bail!("no candidates given");
    }
    let torn = journal.torn;
    let mut r = Runner {
        ev,
        ev1,
        journal,
        id,
        phases: Default::default(),
    };
    let n = groups.len();
    let uniform = |c: Precision| vec![c; n];

    // phase 0
    let t0 = Instant::now();
    let bar = progress::bar(opts.candidates.len() as u64 + 1, "phase 0");
    let fp32 = r
        .eval(0, None, Subset::Phase2, Metric::Accuracy)?
        .ok_or_else(|| anyhow::anyhow!("the FP32 evaluation is not supported"))?;
    bar.inc(1);
    let mut scores = Vec::new();
    let mut dropped = Vec::new();
    for &c in &opts.candidates {
        match r.eval(0, Some(&uniform(c)), Subset::Phase2, Metric::Accuracy)? {
            Some(v) => scores.push((c, v)),
            None => dropped.push(c),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if scores.is_empty() {
        bail!(
            "the backend supports none of the candidates uniformly ({})",
            dropped
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let opts = &TuneOptions {
        candidates: opts
            .candidates
            .iter()
            .copied()
            .filter(|c| !dropped.contains(c))
            .collect(),
        ..opts.clone()
    };
    let baseline = scores
        .iter()
        .fold(scores[0], |b, &s| if s.1 > b.1 { s } else { b })
        .0;
    let bitops = |c: &[Precision]| groups.bit_ops(g, c);
    let base_bitops = bitops(&uniform(baseline)).max(f64::MIN_POSITIVE);
    let rel = |c: &[Precision]| {
        if base_bitops > f64::MIN_POSITIVE {
            bitops(c) / base_bitops
        } else {
            1.0
        }
    };
    let min_candidate = scores
        .iter()
        .fold(None::<(Precision, f64, f64)>, |best, &(c, acc)| {
            let b = bitops(&uniform(c));
            match best {
                Some((_, bb, ba)) if bb < b || (bb == b && ba >= acc) => best,
                _ => Some((c, b, acc)),
            }
        })
        .expect("candidates are not empty")
        .0;
    let acc_of = |c: Precision| scores.iter().find(|s| s.0 == c).map(|s| s.1).unwrap_or(0.0);
    let point = |cfg: Vec<Precision>, acc: f64| Point {
        index: None,
        relative_bitops: rel(&cfg),
        accuracy: acc,
        group: None,
        candidate: None,
        config: cfg,
    };
    r.phases[0].seconds = t0.elapsed().as_secs_f64();

    let mut result = TuneResult {
        fp32,
        uniform: scores.clone(),
        baseline,
        min_candidate,
        early_exit: None,
        sensitivity: Vec::new(),
        pareto: vec![point(uniform(baseline), acc_of(baseline))],
        chosen: point(uniform(baseline), acc_of(baseline)),
        phases: Default::default(),
        torn_journal_lines: torn,
        unsupported: 0,
    };
    if let Some(drop) = opts.allowed_drop {
        if fp32 - acc_of(baseline) > drop {
            result.early_exit = Some(format!(
                "even the best uniform candidate ({baseline}, {:.4}) is more than {drop} below FP32 ({fp32:.4}); keeping it",
                acc_of(baseline)
            ));
            result.phases = r.phases;
            return Ok(result);
        }
        if fp32 - acc_of(min_candidate) < drop {
            result.chosen = point(uniform(min_candidate), acc_of(min_candidate));
            result.pareto.push(result.chosen.clone());
            result.early_exit = Some(format!(
                "the cheapest uniform candidate ({min_candidate}) is already within {drop} of FP32"
            ));
            result.phases = r.phases;
            return Ok(result);
        }
    }

    // phase 1
    let t1 = Instant::now();
    let todo: Vec<(usize, Precision)> = (0..n)
        .flat_map(|gi| {
            phase1_candidates(groups, gi, &opts.candidates, baseline)
                .into_iter()
                .map(move |c| (gi, c))
        })
        .collect();
    let bar = progress::bar(todo.len() as u64, "phase 1");
    let base_cfg = uniform(baseline);
    let configs: Vec<Vec<Precision>> = todo
        .iter()
        .map(|&(gi, c)| {
            let mut cfg = base_cfg.clone();
            cfg[gi] = c;
            cfg
        })
        .collect();
    let scores = r.eval_many(1, &configs, Subset::Phase1, opts.phase1_metric, || {
        bar.inc(1)
    })?;
    for ((&(gi, c), cfg), score) in todo.iter().zip(&configs).zip(scores) {
        let Some(score) = score else {
            result.unsupported += 1;
            continue;
        };
        let reduction = bitops(&base_cfg) - bitops(cfg);
        result.sensitivity.push(Sensitivity {
            group: gi,
            candidate: c,
            score,
            bitops_reduction: reduction,
        });
    }
    bar.finish_and_clear();
    sort_sensitivities(&mut result.sensitivity);
    r.phases[1].seconds = t1.elapsed().as_secs_f64();

    // phase 2
    let t2 = Instant::now();
    let list = result.sensitivity.clone();
    let prefix = |i: usize| {
        let mut cfg = base_cfg.clone();
        for e in &list[..=i] {
            cfg[e.group] = e.candidate;
        }
        cfg
    };
    let target = opts
        .allowed_drop
        .map(|d| fp32 - d)
        .unwrap_or(f64::NEG_INFINITY);
    let mut values: Vec<Option<f64>> = vec![None; list.len()];
    let bar = progress::bar(list.len() as u64, "phase 2");
    let chosen_cfg = if opts.search == SearchAlgo::Knapsack {
        let Some(drop) = opts.allowed_drop else {
            bail!("--search knapsack needs --allowed-drop")
        };
        if opts.phase1_metric != Metric::Accuracy {
            bail!("--search knapsack needs --phase1-metric accuracy (it adds up accuracy drops)");
        }
        let base1 = r
            .eval(1, Some(&base_cfg), Subset::Phase1, Metric::Accuracy)?
            .unwrap_or(f64::NEG_INFINITY);
        knapsack_config(
            groups,
            g,
            &list,
            &base_cfg,
            base1,
            drop - (fp32 - acc_of(baseline)),
            &mut |cfg| {
                let v = r
                    .eval(2, Some(cfg), Subset::Phase2, Metric::Accuracy)?
                    .unwrap_or(f64::NEG_INFINITY);
                bar.inc(1);
                Ok(v)
            },
            target,
            &mut result.pareto,
        )?
    } else {
        let mut value = |i: usize| -> Result<f64> {
            if let Some(v) = values[i] {
                return Ok(v);
            }
            let v = r
                .eval(2, Some(&prefix(i)), Subset::Phase2, Metric::Accuracy)?
                .unwrap_or(f64::NEG_INFINITY);
            values[i] = Some(v);
            bar.inc(1);
            Ok(v)
        };
        let algo = if opts.allowed_drop.is_none() {
            SearchAlgo::Bruteforce
        } else {
            opts.search
        };
        let i = search(algo, list.len(), target, &mut value)?;
        if list.is_empty() || value(i)? < target {
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
                relative_bitops: rel(&cfg),
                accuracy: *v,
                group: Some(list[i].group),
                candidate: Some(list[i].candidate),
                config: cfg,
            });
        }
    }
    let chosen_cfg = chosen_cfg.unwrap_or_else(|| base_cfg.clone());
    let acc = r
        .eval(2, Some(&chosen_cfg), Subset::Phase2, Metric::Accuracy)?
        .ok_or_else(|| anyhow::anyhow!("the chosen config is not supported by the backend"))?;
    let index = result
        .pareto
        .iter()
        .find(|p| p.config == chosen_cfg)
        .and_then(|p| p.index);
    result.chosen = Point {
        index,
        ..point(chosen_cfg, acc)
    };
    r.phases[2].seconds = t2.elapsed().as_secs_f64();
    result.phases = r.phases;
    Ok(result)
}

/// Knapsack over the phase-1 sensitivities: per group, the baseline or one lower candidate, costs in bit-ops,
/// drops as measured alone in phase 1 (assumed additive). The solution is evaluated; while it misses the
/// target, the lowered group with the largest phase-1 drop goes back to the baseline.
#[allow(clippy::too_many_arguments)]
fn knapsack_config(
    groups: &Groups,
    g: &Graph,
    list: &[Sensitivity],
    base_cfg: &[Precision],
    base1: f64,
    budget: f64,
    eval: &mut dyn FnMut(&[Precision]) -> Result<f64>,
    target: f64,
    pareto: &mut Vec<Point>,
) -> Result<Option<Vec<Precision>>> {
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
        let rel = groups.bit_ops(g, &cfg) / base_bitops.max(f64::MIN_POSITIVE);
        pareto.push(Point {
            index: None,
            relative_bitops: rel,
            accuracy: acc,
            group: None,
            candidate: None,
            config: cfg.clone(),
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase1_tries_only_lower_candidates_once_per_distinct_config() {
        let mut g = Graph::default();
        let x = g.add_tensor("x", vec![1, 4], None);
        g.inputs.push(x);
        let w = g.add_tensor("w", vec![2, 4], Some(vec![1.0; 8]));
        let y = g.add_tensor("y", vec![1, 2], None);
        g.nodes.push(amp_device::ir::Node {
            name: "fc".into(),
            op: amp_device::ir::Op::Gemm,
            inputs: vec![x, w],
            output: y,
        });
        g.outputs.push(y);
        let groups = Groups::new(&g); // group 0: x with fc's weights; group 1: y, no weights
        let all = [Precision::A16W16, Precision::A16W8, Precision::A8W8];
        assert_eq!(
            phase1_candidates(&groups, 0, &all, Precision::A16W16),
            vec![Precision::A16W8, Precision::A8W8]
        );
        assert_eq!(
            phase1_candidates(&groups, 1, &all, Precision::A16W16),
            vec![Precision::A8W8]
        );
        // a baseline of a16w8 never tries the wider a16w16
        assert_eq!(
            phase1_candidates(&groups, 0, &all, Precision::A16W8),
            vec![Precision::A8W8]
        );
        assert_eq!(
            phase1_candidates(&groups, 1, &all, Precision::A16W8),
            vec![Precision::A8W8]
        );
    }

    #[test]
    fn sort_key_is_score_then_bits_then_reduction_then_group() {
        let s = |group, a, w, score, red| Sensitivity {
            group,
            candidate: Precision { act: a, weight: w },
            score,
            bitops_reduction: red,
        };
        let mut l = vec![
            s(2, 8, 8, 0.9, 5.0),
            s(1, 16, 8, 0.9, 1.0),
            s(0, 8, 8, 0.95, 0.0),
            s(3, 8, 8, 0.9, 7.0),
            s(4, 8, 8, 0.9, 7.0),
        ];
        sort_sensitivities(&mut l);
        let order: Vec<usize> = l.iter().map(|e| e.group).collect();
        assert_eq!(order, vec![0, 1, 3, 4, 2]);
    }
}
