//! The search: phase 0 (FP32 and every uniform candidate), phase 1 (each group alone at each lower
//! candidate, all others at the baseline), phase 2 (sorted prefixes with the chosen search, or a knapsack),
//! every evaluation journalled.

use std::path::PathBuf;
use std::time::Instant;

use amp_device::ir::Graph;
use amp_device::quant::Precision;
use anyhow::{bail, Result};
use serde::Serialize;

use super::cost::{self, CostKind, CostModel, LatencyFit, PricingReport};
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
    /// Set when a cost model was built.
    pub cost: Option<PointCost>,
}

/// A point's cost beyond bit-ops.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PointCost {
    /// (bit-ops + Convert overhead in bit-op equivalents) / the baseline's bit-ops.
    pub relative_cost: f64,
    pub convert_us: f64,
    pub converts: usize,
    /// Whole-graph latency measured on the device (median µs), where measured.
    pub latency_us: Option<f64>,
}

/// The cost model a run used.
#[derive(Clone, Debug, Serialize)]
pub struct CostReport {
    pub kind: CostKind,
    /// "measured" or "estimated, not measured".
    pub convert_prices: String,
    pub method: String,
    pub provenance: super::evaluator::Provenance,
    pub fit: LatencyFit,
    pub pricing: PricingReport,
    pub sites: usize,
}

/// One row of phase 3's α table.
#[derive(Clone, Debug, Serialize)]
pub struct AlphaPoint {
    pub alpha: f64,
    pub config: Vec<Precision>,
    pub relative_bitops: f64,
    pub relative_cost: f64,
    pub convert_us: f64,
    pub converts: usize,
    pub groups_raised: usize,
    pub accuracy: Option<f64>,
    pub latency_us: Option<f64>,
    pub meets_target: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Phase3 {
    pub phase2_convert_us: f64,
    pub target: f64,
    pub points: Vec<AlphaPoint>,
    /// The point that meets the target at the lowest measured latency.
    pub marked: Option<usize>,
    pub note: Option<String>,
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
    pub phases: [PhaseStats; 4],
    /// Latency measurements (uniform candidates, pareto points, phase 3).
    pub timing: PhaseStats,
    pub cost: Option<CostReport>,
    pub phase3: Option<Phase3>,
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
    phases: [PhaseStats; 4],
    timing: PhaseStats,
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
    /// Median whole-graph latency (µs) of a config measured on the main evaluator, journalled like an
    /// evaluation; None when the backend cannot run it.
    fn latency(&mut self, config: &[Precision], t: &Timing) -> Result<Option<f64>> {
        let cfg = config_str(Some(config));
        let who = self.ev.identity();
        let metric = format!("latency-b{}", t.batch);
        let key = journal::key(&[
            &self.id.model,
            "latency",
            &self.id.encodings,
            &cfg,
            &who,
            &metric,
        ]);
        if let Some(e) = self.journal.get(&key) {
            self.timing.cached += 1;
            return Ok(e.value);
        }
        let start = Instant::now();
        let (value, unsupported) =
            match self
                .ev
                .latency(Some(config), t.batch, t.warmup, t.iterations)
            {
                Ok(l) => (Some(l.median_us), None),
                Err(e) => match e.downcast_ref::<QnnBackendError>() {
                    Some(QnnBackendError::Unsupported { .. }) => (None, Some(e.to_string())),
                    _ => return Err(e),
                },
            };
        let secs = start.elapsed().as_secs_f64();
        self.journal.append(journal::Entry {
            key,
            phase: "latency".into(),
            config: cfg,
            metric,
            value,
            unsupported,
            seconds: secs,
        })?;
        self.timing.evaluations += 1;
        self.timing.seconds += secs;
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
        timing: Default::default(),
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
        cost: None,
    };
    r.phases[0].seconds = t0.elapsed().as_secs_f64();

    // the cost model: uniform latencies → bit-op equivalents; Convert prices from the device
    let model = if opts.cost != CostKind::Bitops || opts.phase3 {
        Some(build_cost_model(&mut r, g, groups, opts, &scores)?)
    } else {
        None
    };

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
        timing: Default::default(),
        cost: model.as_ref().map(|m| m.1.clone()),
        phase3: None,
    };
    if let Some(drop) = opts.allowed_drop {
        if fp32 - acc_of(baseline) > drop {
            result.early_exit = Some(format!(
                "even the best uniform candidate ({baseline}, {:.4}) is more than {drop} below FP32 ({fp32:.4}); keeping it",
                acc_of(baseline)
            ));
            result.phases = r.phases;
            result.timing = r.timing;
            return Ok(result);
        }
        if fp32 - acc_of(min_candidate) < drop {
            result.chosen = point(uniform(min_candidate), acc_of(min_candidate));
            result.pareto.push(result.chosen.clone());
            result.early_exit = Some(format!(
                "the cheapest uniform candidate ({min_candidate}) is already within {drop} of FP32"
            ));
            result.phases = r.phases;
            result.timing = r.timing;
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
                cost: None,
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
    if let Some((m, _)) = &model {
        let prefixes: Vec<Vec<Precision>> = match index {
            Some(i) => (0..=i).map(prefix).collect(),
            None => Vec::new(),
        };
        choose_by_cost(
            &mut r,
            g,
            groups,
            opts,
            m,
            base_bitops,
            target,
            &prefixes,
            &mut result,
        )?;
    }
    r.phases[2].seconds = t2.elapsed().as_secs_f64();
    if let (true, Some((m, _))) = (opts.phase3, &model) {
        let t3 = Instant::now();
        result.phase3 = Some(phase3(
            &mut r,
            g,
            groups,
            opts,
            m,
            base_bitops,
            target,
            &result.chosen,
        )?);
        r.phases[3].seconds = t3.elapsed().as_secs_f64();
    }
    result.phases = r.phases;
    result.timing = r.timing;
    Ok(result)
}

/// Latency of each uniform candidate, the line through them, and the Convert prices (kept in
/// `convert_costs.json` while the device, SoC and backend are the same).
fn build_cost_model(
    r: &mut Runner,
    g: &Graph,
    groups: &Groups,
    opts: &TuneOptions,
    scores: &[(Precision, f64)],
) -> Result<(CostModel, CostReport)> {
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
        opts.timing.batch,
        &opts.timing.command,
        opts.timing.warmup,
        opts.timing.iterations,
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

fn point_cost(
    groups: &Groups,
    g: &Graph,
    m: &CostModel,
    base: f64,
    cfg: &[Precision],
) -> PointCost {
    PointCost {
        relative_cost: (groups.bit_ops(g, cfg) + m.convert_bitops(cfg)) / base,
        convert_us: m.convert_us(cfg),
        converts: m.convert_count(cfg),
        latency_us: None,
    }
}

/// Prices every point; with `--cost bitops+convert` picks, among the evaluated points that meet the target
/// and the prefixes up to phase 2's choice (each lowers a subset of its groups), the one of least combined
/// cost; with `--cost latency` measures each point of the front and picks the fastest that meets the target.
#[allow(clippy::too_many_arguments)]
fn choose_by_cost(
    r: &mut Runner,
    g: &Graph,
    groups: &Groups,
    opts: &TuneOptions,
    m: &CostModel,
    base: f64,
    target: f64,
    prefixes: &[Vec<Precision>],
    result: &mut TuneResult,
) -> Result<()> {
    for p in result
        .pareto
        .iter_mut()
        .chain(std::iter::once(&mut result.chosen))
    {
        p.cost = Some(point_cost(groups, g, m, base, &p.config));
    }
    let feasible = |p: &Point| p.accuracy >= target;
    if opts.cost == CostKind::Bitops
        || opts.allowed_drop.is_none() && opts.cost != CostKind::Latency
    {
        return Ok(());
    }
    let combined = |cfg: &[Precision]| groups.bit_ops(g, cfg) + m.convert_bitops(cfg);
    // the cheapest prefix by combined cost: evaluate it if it is new
    if let Some(best) = prefixes
        .iter()
        .min_by(|a, b| combined(a).total_cmp(&combined(b)))
    {
        if !result.pareto.iter().any(|p| &p.config == best) {
            if let Some(acc) = r.eval(2, Some(best), Subset::Phase2, Metric::Accuracy)? {
                let index = prefixes.iter().position(|p| p == best);
                result.pareto.push(Point {
                    index,
                    relative_bitops: groups.bit_ops(g, best) / base,
                    accuracy: acc,
                    group: None,
                    candidate: None,
                    config: best.clone(),
                    cost: Some(point_cost(groups, g, m, base, best)),
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
                        && q.accuracy >= p.accuracy
                        && (q.relative_bitops < p.relative_bitops || q.accuracy > p.accuracy)
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

/// Phase 3: for each α, the least bit-ops config whose Convert overhead is at most α × the phase-2
/// solution's, moving groups only upward; each evaluated for accuracy and latency on the device.
#[allow(clippy::too_many_arguments)]
fn phase3(
    r: &mut Runner,
    g: &Graph,
    groups: &Groups,
    opts: &TuneOptions,
    m: &CostModel,
    base: f64,
    target: f64,
    p2: &Point,
) -> Result<Phase3> {
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
        p2.accuracy
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
        let (accuracy, latency_us) = match points.iter().find(|p| p.config == cfg) {
            Some(p) => (p.accuracy, p.latency_us),
            None => (
                r.eval(3, Some(&cfg), Subset::Phase2, Metric::Accuracy)?,
                r.latency(&cfg, &opts.timing)?,
            ),
        };
        let pc = point_cost(groups, g, m, base, &cfg);
        points.push(AlphaPoint {
            alpha,
            relative_bitops: groups.bit_ops(g, &cfg) / base,
            relative_cost: pc.relative_cost,
            convert_us: pc.convert_us,
            converts: pc.converts,
            groups_raised: cfg.iter().zip(&p2.config).filter(|(a, b)| a != b).count(),
            meets_target: accuracy.is_some_and(|a| a >= target),
            accuracy,
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
            cost: None,
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
