//! The search, AIMET's phases measured on the device: phase 0 (FP32 and every uniform candidate; the best is
//! the baseline), phase 1 (each group alone at each lower candidate, the others at the baseline), phase 2
//! (the sorted prefixes, searched, or a knapsack: `phase2`), then choosing by cost (`cost_choice`) and
//! phase 3 (`phase3`). Every measurement goes through the journalled [`runner::Runner`]; what a tune answers
//! is in [`result`].

mod cost_choice;
mod knapsack;
mod phase2;
mod phase3;
pub mod result;
mod runner;
mod verify;

use std::path::PathBuf;
use std::time::Instant;

use amp_device::ir::Graph;
use amp_device::quant::Precision;
use anyhow::{bail, Result};
use serde::Serialize;

use super::cost::CostKind;
use super::evaluator::{Evaluator, Metric, Runs, Subset};
use super::groups::Groups;
use super::journal::Journal;
use super::metric::MetricInfo;
use super::search::SearchAlgo;
use crate::progress;
pub use result::*;
use runner::Runner;
pub use verify::{verify, Verification};

/// What the search is asked.
#[derive(Clone, Debug)]
pub struct TuneOptions {
    pub candidates: Vec<Precision>,
    /// None: no target, the whole curve. In the metric's own unit.
    pub allowed_drop: Option<f64>,
    pub search: SearchAlgo,
    /// What every config is scored by.
    pub metric: Metric,
    /// What phase 1 ranks the groups by (the metric itself, or a cheaper one).
    pub phase1_metric: Metric,
    /// What phase 2 ranks and reports.
    pub cost: CostKind,
    /// Run phase 3 (Convert reduction).
    pub phase3: bool,
    pub timing: Timing,
}

/// How latencies and Convert prices are measured.
#[derive(Clone, Debug, Serialize)]
pub struct Timing {
    pub batch: usize,
    pub warmup: usize,
    pub iterations: usize,
    /// Where Convert prices are kept between runs (None: not kept).
    pub convert_costs: Option<PathBuf>,
    /// The command line, for the prices' provenance.
    pub command: String,
}

impl Timing {
    pub fn runs(&self) -> Runs {
        Runs {
            batch: self.batch,
            warmup: self.warmup,
            iterations: self.iterations,
        }
    }
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            batch: 1,
            warmup: 3,
            iterations: 20,
            convert_costs: None,
            command: String::new(),
        }
    }
}

/// Hashes identifying the inputs of every evaluation (for journal keys).
#[derive(Clone, Debug, Serialize)]
pub struct Identity {
    pub model: String,
    pub phase1_data: String,
    pub phase2_data: String,
    pub encodings: String,
}

/// What every phase after phase 0 reads: the model and its groups, the options (with only the candidates
/// the backend runs), phase 0's answers and the numbers relative costs are made of.
pub(crate) struct Search<'a> {
    pub g: &'a Graph,
    pub groups: &'a Groups,
    pub opts: TuneOptions,
    pub fp32: f64,
    /// Phase-0 score of each candidate the backend runs.
    pub scores: Vec<(Precision, f64)>,
    pub baseline: Precision,
    /// The candidate of fewest bit-ops (the best scoring among equals).
    pub min_candidate: Precision,
    /// Every group at the baseline.
    pub base_cfg: Vec<Precision>,
    pub base_bitops: f64,
    /// The score a drop counts from: FP32's, or the baseline's for a metric against the FP32 outputs.
    pub reference: f64,
    /// The reference less the allowed drop (−∞ without a target: the whole curve). Scores here are
    /// oriented: higher is better.
    pub target: f64,
}

impl Search<'_> {
    pub fn uniform(&self, c: Precision) -> Vec<Precision> {
        vec![c; self.groups.len()]
    }

    pub fn bitops(&self, c: &[Precision]) -> f64 {
        self.groups.bit_ops(self.g, c)
    }

    /// Bit-ops relative to the baseline's.
    pub fn rel(&self, c: &[Precision]) -> f64 {
        if self.base_bitops > f64::MIN_POSITIVE {
            self.bitops(c) / self.base_bitops
        } else {
            1.0
        }
    }

    /// Phase 0's score of a uniform candidate.
    pub fn acc_of(&self, c: Precision) -> f64 {
        self.scores
            .iter()
            .find(|s| s.0 == c)
            .map(|s| s.1)
            .unwrap_or(0.0)
    }

    /// A point of the curve that is no prefix of the sorted list.
    pub fn point(&self, cfg: Vec<Precision>, acc: f64) -> Point {
        Point {
            index: None,
            relative_bitops: self.rel(&cfg),
            score: acc,
            group: None,
            candidate: None,
            config: cfg,
            cost: None,
        }
    }
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
    let skipped: Vec<String> = (journal.skipped.iter())
        .map(|(n, why)| format!("line {n}: {why}"))
        .collect();
    let mut r = Runner::new(ev, ev1, journal, id);
    let s = phase0(&mut r, g, groups, opts)?;
    // the cost model: uniform latencies → bit-op equivalents; Convert prices from the device
    let model = if s.opts.cost != CostKind::Bitops || s.opts.phase3 {
        Some(cost_choice::build_cost_model(&mut r, &s)?)
    } else {
        None
    };
    let baseline_point = s.point(s.uniform(s.baseline), s.acc_of(s.baseline));
    let names: Vec<String> = g
        .outputs
        .iter()
        .map(|&t| g.tensors[t].name.clone())
        .collect();
    let mut result = TuneResult {
        metric: MetricInfo::of(&opts.metric, &names),
        phase1_metric: MetricInfo::of(&opts.phase1_metric, &names),
        fp32: s.fp32,
        reference: s.reference,
        reference_of: if opts.metric.against_fp32() {
            format!("{}, the best uniform candidate", s.baseline)
        } else {
            "FP32".into()
        },
        target: opts.allowed_drop.map(|_| s.target),
        uniform: s.scores.clone(),
        baseline: s.baseline,
        min_candidate: s.min_candidate,
        early_exit: None,
        sensitivity: Vec::new(),
        pareto: vec![baseline_point.clone()],
        chosen: baseline_point,
        phases: Default::default(),
        torn_journal_lines: torn,
        skipped_journal_lines: skipped,
        unsupported: 0,
        failures: Vec::new(),
        verification: None,
        verify_note: None,
        bias_raise: Vec::new(),
        timing: Default::default(),
        cost: model.as_ref().map(|m| m.1.clone()),
        phase3: None,
    };
    if !early_exit(&s, &mut result) {
        phase1(&mut r, &s, &mut result)?;
        let cost_model = model.as_ref().map(|m| &m.0);
        phase2::run(&mut r, &s, cost_model, &mut result)?;
        if let (true, Some(m)) = (s.opts.phase3, cost_model) {
            let t3 = Instant::now();
            result.phase3 = Some(phase3::run(&mut r, &s, m, &result.chosen)?);
            r.phases[3].seconds = t3.elapsed().as_secs_f64();
        }
    }
    result.phases = [0, 1, 2, 3].map(|i| r.phases[i].clone());
    result.timing = r.timing;
    result.failures = r.failures;
    Ok(result.shown(&opts.metric, &opts.phase1_metric))
}

/// Phase 0: FP32 and every uniform candidate; the best scoring candidate is the baseline. Candidates the
/// backend cannot run are dropped for the rest of the search.
fn phase0<'a>(
    r: &mut Runner,
    g: &'a Graph,
    groups: &'a Groups,
    opts: &TuneOptions,
) -> Result<Search<'a>> {
    let t0 = Instant::now();
    let bar = progress::bar(opts.candidates.len() as u64 + 1, "phase 0");
    let fp32 = match r.eval(0, None, Subset::Phase2, &opts.metric)? {
        Some(v) => v,
        None => bail!(
            "the FP32 evaluation failed: {}",
            r.failures
                .last()
                .map(String::as_str)
                .unwrap_or("not supported")
        ),
    };
    bar.inc(1);
    let n = groups.len();
    let mut scores = Vec::new();
    let mut dropped = Vec::new();
    for &c in &opts.candidates {
        match r.eval(0, Some(&vec![c; n]), Subset::Phase2, &opts.metric)? {
            Some(v) => scores.push((c, v)),
            None => dropped.push(c),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if scores.is_empty() {
        bail!(
            "the backend runs none of the candidates uniformly ({}){}",
            dropped
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            r.failures
                .last()
                .map(|f| format!("; last failure: {f}"))
                .unwrap_or_default()
        );
    }
    let opts = TuneOptions {
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
    let bitops = |c: Precision| groups.bit_ops(g, &vec![c; n]);
    // the fewest bit-ops; where they tie (a model without MAC ops has none), the fewest bits; then the best
    let min_candidate = scores
        .iter()
        .fold(None::<(Precision, (f64, u8), f64)>, |best, &(c, acc)| {
            let b = (bitops(c), c.act + c.weight);
            match best {
                Some((_, bb, ba)) if bb < b || (bb == b && ba >= acc) => best,
                _ => Some((c, b, acc)),
            }
        })
        .map_or(baseline, |m| m.0);
    let reference = if opts.metric.against_fp32() {
        scores
            .iter()
            .find(|s| s.0 == baseline)
            .map_or(fp32, |s| s.1)
    } else {
        fp32
    };
    let target = opts
        .allowed_drop
        .map(|d| reference - d)
        .unwrap_or(f64::NEG_INFINITY);
    r.phases[0].seconds = t0.elapsed().as_secs_f64();
    Ok(Search {
        g,
        groups,
        opts,
        fp32,
        scores,
        baseline,
        min_candidate,
        base_cfg: vec![baseline; n],
        base_bitops: bitops(baseline).max(f64::MIN_POSITIVE),
        reference,
        target,
    })
}

/// Ends the search after phase 0 when the target is out of reach (even the baseline misses it) or already
/// met by the cheapest candidate; says why in the result.
fn early_exit(s: &Search, result: &mut TuneResult) -> bool {
    let Some(drop) = s.opts.allowed_drop else {
        return false;
    };
    let (baseline, reference) = (s.baseline, s.reference);
    let unit = s.opts.metric.unit();
    let shown = |v: f64| s.opts.metric.orient(v);
    if reference - s.acc_of(baseline) > drop {
        result.early_exit = Some(format!(
            "even the best uniform candidate ({baseline}, {:.4}) is more than {drop} {unit} below FP32 ({:.4}); keeping it",
            shown(s.acc_of(baseline)),
            shown(reference)
        ));
        return true;
    }
    let min = s.min_candidate;
    if reference - s.acc_of(min) < drop {
        result.chosen = s.point(s.uniform(min), s.acc_of(min));
        result.pareto.push(result.chosen.clone());
        result.early_exit = Some(format!(
            "the cheapest uniform candidate ({min}) is already within {drop} {unit} of {}",
            result.reference_of
        ));
        return true;
    }
    false
}

/// Phase 1: each group alone at each lower candidate, the others at the baseline; the sensitivities come
/// out sorted as AIMET sorts them.
fn phase1(r: &mut Runner, s: &Search, result: &mut TuneResult) -> Result<()> {
    let t1 = Instant::now();
    let todo: Vec<(usize, Precision)> = (0..s.groups.len())
        .flat_map(|gi| {
            phase1_candidates(s.groups, gi, &s.opts.candidates, s.baseline)
                .into_iter()
                .map(move |c| (gi, c))
        })
        .collect();
    let bar = progress::bar(todo.len() as u64, "phase 1");
    let configs: Vec<Vec<Precision>> = todo
        .iter()
        .map(|&(gi, c)| {
            let mut cfg = s.base_cfg.clone();
            cfg[gi] = c;
            cfg
        })
        .collect();
    let scores = r.eval_many(1, &configs, Subset::Phase1, &s.opts.phase1_metric, || {
        bar.inc(1)
    })?;
    for ((&(gi, c), cfg), score) in todo.iter().zip(&configs).zip(scores) {
        let Some(score) = score else {
            result.unsupported += 1;
            continue;
        };
        result.sensitivity.push(Sensitivity {
            group: gi,
            candidate: c,
            score,
            bitops_reduction: s.bitops(&s.base_cfg) - s.bitops(cfg),
        });
    }
    bar.finish_and_clear();
    sort_sensitivities(&mut result.sensitivity);
    r.phases[1].seconds = t1.elapsed().as_secs_f64();
    Ok(())
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
            op: amp_device::ir::Op::Gemm(amp_device::ir::Gemm),
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
