//! The cost model: bit-ops plus the Convert ops mixed precision inserts, priced on the device.
//!
//! - Convert prices per (tensor shape, direction) come from the device (measured on QNN, estimated on the
//!   reference backend) and are kept in `convert_costs.json` with their provenance; a later run reuses them
//!   while device, SoC and backend build are the same, and prices only shapes it lacks.
//! - The uniform candidates' latencies give a line latency ≈ a + b × bit-ops; a Convert of p µs costs p / b
//!   bit-op equivalents, so cost(config) = bit-ops + Σ Convert overhead is in one unit.
//! - Phase 3 ([`solve_alphas`]): for each α, the least bit-ops config whose Convert overhead is at most α × the
//!   phase-2 solution's, moving groups only upward. Solved exactly by dynamic programming over the groups in
//!   topological order with the groups still joined to later ones as state (narrow for CNNs), keeping per
//!   state the (overhead, cost) pareto set; one pass answers every α.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use amp_device::convert::{sites, Probe};
use amp_device::ir::{Graph, TensorId};
use amp_device::quant::Precision;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::evaluator::{Evaluator, Provenance, Runs};
use super::groups::Groups;

/// What phase 2 ranks and reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum CostKind {
    /// AIMET's bit-ops.
    Bitops,
    /// Bit-ops plus the Convert ops' measured overhead in bit-op equivalents.
    #[value(name = "bitops+convert")]
    BitopsConvert,
    /// Whole-graph latency measured on the device.
    Latency,
}

/// One priced Convert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PriceEntry {
    pub shape: Vec<usize>,
    pub from: u8,
    pub to: u8,
    pub us: f64,
}

/// `convert_costs.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConvertTable {
    pub provenance: Provenance,
    /// "measured" or "estimated, not measured".
    pub kind: String,
    pub method: String,
    /// UTC date of the first measurement, YYYY-MM-DD.
    pub date: String,
    pub command: String,
    pub batch: usize,
    pub prices: Vec<PriceEntry>,
}

impl ConvertTable {
    pub fn measured(&self) -> bool {
        self.kind == "measured"
    }

    pub fn get(&self, p: &Probe) -> Option<f64> {
        self.prices
            .iter()
            .find(|e| e.shape == p.shape && e.from == p.from && e.to == p.to)
            .map(|e| e.us)
    }
}

/// Today's UTC date as YYYY-MM-DD.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    // days since 1970-01-01 to a civil date (proleptic Gregorian)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!("{y:04}-{m:02}-{d:02}")
}

/// How a run got its Convert prices.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PricingReport {
    pub reused: usize,
    pub measured: usize,
    /// Why an existing table was not used, if one was set aside.
    pub invalidated: Option<String>,
}

/// Loads `path` (if given) when it is valid for `prov` and `batch`, prices the probes it lacks on `ev`, saves it back.
pub fn price_converts(
    path: Option<&Path>,
    ev: &mut dyn Evaluator,
    probes: &[Probe],
    runs: Runs,
    command: &str,
) -> Result<(ConvertTable, PricingReport)> {
    let batch = runs.batch;
    let prov = ev.provenance();
    let mut report = PricingReport::default();
    let old: Option<ConvertTable> = path
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str(&t).ok());
    let mut table = match old {
        Some(t) if t.provenance == prov && t.batch == batch => t,
        other => {
            if let Some(t) = other {
                report.invalidated = Some(if t.provenance.device != prov.device {
                    format!("device changed ({} → {})", t.provenance.device, prov.device)
                } else if t.provenance.soc != prov.soc {
                    format!("SoC changed ({} → {})", t.provenance.soc, prov.soc)
                } else if t.provenance.backend != prov.backend {
                    format!(
                        "backend changed ({} → {})",
                        t.provenance.backend, prov.backend
                    )
                } else {
                    format!("batch changed ({} → {batch})", t.batch)
                });
            }
            ConvertTable {
                provenance: prov,
                kind: String::new(),
                method: String::new(),
                date: today(),
                command: command.to_string(),
                batch,
                prices: Vec::new(),
            }
        }
    };
    let missing: Vec<Probe> = probes
        .iter()
        .filter(|p| table.get(p).is_none())
        .cloned()
        .collect();
    report.reused = probes.len() - missing.len();
    if !missing.is_empty() {
        let prices = ev.price_converts(&missing, runs)?;
        if prices.us.len() != missing.len() {
            anyhow::bail!(
                "the device priced {} of {} Convert shapes",
                prices.us.len(),
                missing.len()
            );
        }
        table.kind = if prices.measured {
            "measured".into()
        } else {
            "estimated, not measured".into()
        };
        table.method = prices.method;
        for (p, us) in missing.iter().zip(prices.us) {
            table.prices.push(PriceEntry {
                shape: p.shape.clone(),
                from: p.from,
                to: p.to,
                us,
            });
        }
        report.measured = missing.len();
        if let Some(path) = path {
            std::fs::write(path, serde_json::to_string_pretty(&table)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok((table, report))
}

/// latency ≈ a + b × bit-ops over the uniform candidates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyFit {
    /// µs
    pub a: f64,
    /// µs per bit-op
    pub b: f64,
    /// root-mean-square residual, µs
    pub rms_residual_us: f64,
    /// (candidate, bit-ops, median latency µs)
    pub points: Vec<(String, f64, f64)>,
    /// "least squares", or "through the origin" when the slope came out ≤ 0 (latency not growing with
    /// bit-ops on this device, or too few points)
    pub kind: String,
}

pub fn fit_latency(points: &[(String, f64, f64)]) -> LatencyFit {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), p| (a + p.1, b + p.2));
    let (mx, my) = (sx / n.max(1.0), sy / n.max(1.0));
    let sxx: f64 = points.iter().map(|p| (p.1 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.1 - mx) * (p.2 - my)).sum();
    let (mut a, mut b, mut kind) = (0.0, 0.0, "least squares");
    if points.len() >= 2 && sxx > 0.0 {
        b = sxy / sxx;
        a = my - b * mx;
    }
    if b <= 0.0 {
        let xx: f64 = points.iter().map(|p| p.1 * p.1).sum();
        let xy: f64 = points.iter().map(|p| p.1 * p.2).sum();
        a = 0.0;
        b = if xx > 0.0 { xy / xx } else { 0.0 };
        kind = "through the origin";
    }
    let rms = (points
        .iter()
        .map(|p| (p.2 - a - b * p.1).powi(2))
        .sum::<f64>()
        / n.max(1.0))
    .sqrt();
    LatencyFit {
        a,
        b,
        rms_residual_us: rms,
        points: points.to_vec(),
        kind: kind.into(),
    }
}

/// A tensor between groups that needs a Convert when their activation widths differ: narrowing after its
/// producer when that computes wider than the tensor is kept, widening before its readers that compute
/// wider (amp_device::convert). Widths are 8 and 16 bits, so a site needs at most one of each.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupSite {
    pub tensor: String,
    /// The groups whose widest width the tensor is kept at (its own).
    pub kept: Vec<usize>,
    /// The groups whose widest width its producer computes at.
    pub produced: Vec<usize>,
    /// The groups whose widest width its readers compute at (every reader's groups together: only whether
    /// one reads wider matters).
    pub read: Vec<usize>,
    /// Price in µs of converting 8 → 16 and 16 → 8.
    pub up_us: f64,
    pub down_us: f64,
}

impl GroupSite {
    /// (narrowing, widening) Converts the site needs under `act`.
    fn needs(&self, act: &dyn Fn(usize) -> u8) -> (bool, bool) {
        let widest = |set: &[usize]| set.iter().map(|&g| act(g)).max().unwrap_or(0);
        let kept = widest(&self.kept);
        (widest(&self.produced) > kept, widest(&self.read) > kept)
    }

    /// Every group the site depends on.
    fn members(&self) -> Vec<usize> {
        let mut m: Vec<usize> = [&self.kept[..], &self.produced, &self.read].concat();
        m.sort_unstable();
        m.dedup();
        m
    }
}

/// Prices configs: bit-ops + Convert overhead.
#[derive(Clone, Debug, Serialize)]
pub struct CostModel {
    pub sites: Vec<GroupSite>,
    pub fit: LatencyFit,
    pub measured: bool,
}

/// The probes a model's configs can need, at `batch`: every site's shape in both directions.
pub fn probes(g: &Graph, batch: usize) -> Vec<Probe> {
    let mut out = Vec::new();
    for s in sites(g) {
        let mut shape = g.tensors[s.tensor].shape.clone();
        if let Some(b) = shape.first_mut() {
            *b = batch;
        }
        for (from, to) in [(8, 16), (16, 8)] {
            let p = Probe {
                shape: shape.clone(),
                from,
                to,
            };
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

impl CostModel {
    pub fn new(g: &Graph, groups: &Groups, table: &ConvertTable, fit: LatencyFit) -> CostModel {
        let to_groups = |set: &[TensorId]| -> Vec<usize> {
            let mut gs: Vec<usize> = set.iter().filter_map(|&t| groups.tensor_group[t]).collect();
            gs.sort_unstable();
            gs.dedup();
            gs
        };
        let mut out = Vec::new();
        for s in sites(g) {
            let kept = to_groups(&s.kept);
            let produced = to_groups(&s.produced);
            let read = to_groups(&s.read.concat());
            // a site whose widths are all its own group's never needs a Convert
            if produced.iter().chain(&read).all(|gi| kept.contains(gi)) {
                continue;
            }
            let mut shape = g.tensors[s.tensor].shape.clone();
            if let Some(b) = shape.first_mut() {
                *b = table.batch;
            }
            let price = |from, to| {
                table
                    .get(&Probe {
                        shape: shape.clone(),
                        from,
                        to,
                    })
                    .unwrap_or(0.0)
            };
            out.push(GroupSite {
                tensor: g.tensors[s.tensor].name.clone(),
                kept,
                produced,
                read,
                up_us: price(8, 16),
                down_us: price(16, 8),
            });
        }
        CostModel {
            sites: out,
            fit,
            measured: table.measured(),
        }
    }

    /// Convert overhead of a config in µs.
    pub fn convert_us(&self, config: &[Precision]) -> f64 {
        overhead(&self.sites, &|g| config[g].act)
    }

    /// Convert overhead in bit-op equivalents.
    pub fn convert_bitops(&self, config: &[Precision]) -> f64 {
        if self.fit.b > 0.0 {
            self.convert_us(config) / self.fit.b
        } else {
            0.0
        }
    }

    /// How many Converts a config needs.
    pub fn convert_count(&self, config: &[Precision]) -> usize {
        let act = |g: usize| config[g].act;
        self.sites
            .iter()
            .map(|s| {
                let (down, up) = s.needs(&act);
                down as usize + up as usize
            })
            .sum()
    }
}

/// Σ over sites of the price of the Converts each needs.
fn overhead(sites: &[GroupSite], act: &dyn Fn(usize) -> u8) -> f64 {
    sites
        .iter()
        .map(|s| {
            let (down, up) = s.needs(act);
            (if down { s.down_us } else { 0.0 }) + (if up { s.up_us } else { 0.0 })
        })
        .sum()
}

/// A phase-3 problem: per group the configs it may move to (upward from the phase-2 solution) with their
/// cost, and the sites whose Converts the budget bounds.
#[derive(Clone, Debug)]
pub struct AlphaProblem {
    /// Per group: (activation bits, cost) of each option; option 0 is the phase-2 choice.
    pub options: Vec<Vec<(u8, f64)>>,
    pub sites: Vec<GroupSite>,
}

/// One solution: option per group, its cost and Convert overhead.
#[derive(Clone, Debug, PartialEq)]
pub struct AlphaSolution {
    pub choice: Vec<usize>,
    pub cost: f64,
    pub overhead: f64,
}

impl AlphaProblem {
    pub fn overhead(&self, choice: &[usize]) -> f64 {
        overhead(&self.sites, &|g| self.options[g][choice[g]].0)
    }

    pub fn cost(&self, choice: &[usize]) -> f64 {
        choice
            .iter()
            .enumerate()
            .map(|(g, &k)| self.options[g][k].1)
            .sum()
    }
}

/// Largest number of (state, overhead) entries the exact solver keeps before giving up.
const MAX_ENTRIES: usize = 2_000_000;

/// (overhead, cost, parent entry, width).
type Candidate = (f64, f64, usize, u8);

struct Entry {
    overhead: f64,
    cost: f64,
    parent: usize,
    width: u8,
}

/// For each budget, the least-cost choice whose overhead is within it (None: none is). Exact: dynamic
/// programming over the groups in index order; the state is the widths of the groups that share an
/// unfinished site with a later group; per state, only (overhead, cost) pairs no other pair beats in both.
/// Per group only the cheapest option of each width matters. Errs when the state grows past a limit.
pub fn solve_alphas(p: &AlphaProblem, budgets: &[f64]) -> Result<Vec<Option<AlphaSolution>>> {
    let n = p.options.len();
    let max_budget = budgets.iter().copied().fold(0.0f64, f64::max);
    let tol = |b: f64| b * (1.0 + 1e-9) + 1e-12;
    // cheapest option per width
    let widths: Vec<BTreeMap<u8, usize>> = p
        .options
        .iter()
        .map(|opts| {
            let mut m: BTreeMap<u8, usize> = BTreeMap::new();
            for (k, &(w, c)) in opts.iter().enumerate() {
                match m.get(&w) {
                    Some(&j) if opts[j].1 <= c => {}
                    _ => {
                        m.insert(w, k);
                    }
                }
            }
            m
        })
        .collect();
    // the last group each group shares a site with; sites complete at their largest group
    let mut last = (0..n).collect::<Vec<usize>>();
    let mut closing: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (si, s) in p.sites.iter().enumerate() {
        let members = s.members();
        let Some(&hi) = members.iter().max() else {
            continue;
        };
        for &m in &members {
            last[m] = last[m].max(hi);
        }
        closing[hi].push(si);
    }
    // layers of entries; states map the frontier widths to entry indices of the layer
    let mut layers: Vec<Vec<Entry>> = Vec::with_capacity(n + 1);
    let mut frontier: Vec<usize> = Vec::new();
    let mut states: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
    layers.push(vec![Entry {
        overhead: 0.0,
        cost: 0.0,
        parent: usize::MAX,
        width: 0,
    }]);
    states.insert(Vec::new(), vec![0]);
    let mut entries = 0usize;
    for g in 0..n {
        let mut with_g = frontier.clone();
        with_g.push(g);
        let next_frontier: Vec<usize> = with_g.iter().copied().filter(|&m| last[m] > g).collect();
        let keep: Vec<usize> = next_frontier
            .iter()
            .map(|m| with_g.iter().position(|x| x == m).expect("subset"))
            .collect();
        let prev = layers.last().expect("layer 0 exists");
        let mut layer: Vec<Entry> = Vec::new();
        // per next state: (overhead, cost, parent entry, width of g)
        let mut cand: HashMap<Vec<u8>, Vec<Candidate>> = HashMap::new();
        for (key, idxs) in &states {
            for (&w, &k) in &widths[g] {
                let mut full = key.clone();
                full.push(w);
                let width_of =
                    |m: usize| full[with_g.iter().position(|&x| x == m).expect("member")];
                let add = overhead(
                    &closing[g]
                        .iter()
                        .map(|&si| p.sites[si].clone())
                        .collect::<Vec<_>>(),
                    &width_of,
                );
                let c = p.options[g][k].1;
                let next: Vec<u8> = keep.iter().map(|&i| full[i]).collect();
                for &ei in idxs {
                    let e = &prev[ei];
                    let o = e.overhead + add;
                    if o > tol(max_budget) {
                        continue;
                    }
                    cand.entry(next.clone())
                        .or_default()
                        .push((o, e.cost + c, ei, w));
                }
            }
        }
        let mut new_states: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
        for (key, mut list) in cand {
            // pareto: by overhead ascending, keep strictly cheaper
            list.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
            let mut best = f64::INFINITY;
            let mut kept = Vec::new();
            for (o, c, parent, w) in list {
                if best.is_infinite() || c < best - 1e-12 * best.abs().max(1.0) {
                    best = c;
                    kept.push(layer.len());
                    layer.push(Entry {
                        overhead: o,
                        cost: c,
                        parent,
                        width: w,
                    });
                }
            }
            new_states.insert(key, kept);
        }
        entries += layer.len();
        if entries > MAX_ENTRIES {
            anyhow::bail!(
                "the Convert-reduction problem is too wide for the exact solver (over {MAX_ENTRIES} states at group {g} of {n})"
            );
        }
        layers.push(layer);
        states = new_states;
        frontier = next_frontier;
    }
    let fin = layers.last().expect("layers");
    let mut out = Vec::new();
    for &budget in budgets {
        let best = fin
            .iter()
            .enumerate()
            .filter(|(_, e)| e.overhead <= tol(budget))
            .min_by(|a, b| a.1.cost.total_cmp(&b.1.cost))
            .map(|(i, _)| i);
        out.push(best.map(|mut i| {
            let mut choice = vec![0; n];
            for g in (0..n).rev() {
                let e = &layers[g + 1][i];
                choice[g] = widths[g][&e.width];
                i = e.parent;
            }
            AlphaSolution {
                cost: p.cost(&choice),
                overhead: p.overhead(&choice),
                choice,
            }
        }));
    }
    Ok(out)
}

/// The phase-3 problem around a phase-2 config: each group may keep its candidate or move to any candidate
/// at least as wide in both halves; costs are the bit-ops the group adds alone.
pub fn alpha_problem(
    g: &Graph,
    groups: &Groups,
    model: &CostModel,
    candidates: &[Precision],
    p2: &[Precision],
) -> (AlphaProblem, Vec<Vec<Precision>>) {
    let base = groups.bit_ops(g, p2);
    let mut options = Vec::new();
    let mut precs = Vec::new();
    for (gi, &cur) in p2.iter().enumerate() {
        let mut o = vec![(cur.act, 0.0)];
        let mut pr = vec![cur];
        for &c in candidates {
            if c != cur && c.act >= cur.act && c.weight >= cur.weight {
                let mut cfg = p2.to_vec();
                cfg[gi] = c;
                o.push((c.act, groups.bit_ops(g, &cfg) - base));
                pr.push(c);
            }
        }
        options.push(o);
        precs.push(pr);
    }
    (
        AlphaProblem {
            options,
            sites: model.sites.clone(),
        },
        precs,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed >> 33
    }

    fn brute(p: &AlphaProblem, budget: f64) -> Option<f64> {
        let n = p.options.len();
        let mut choice = vec![0usize; n];
        let mut best: Option<f64> = None;
        loop {
            if p.overhead(&choice) <= budget * (1.0 + 1e-9) + 1e-12 {
                let c = p.cost(&choice);
                if best.is_none_or(|b| c < b) {
                    best = Some(c);
                }
            }
            let mut i = 0;
            loop {
                if i == n {
                    return best;
                }
                choice[i] += 1;
                if choice[i] < p.options[i].len() {
                    break;
                }
                choice[i] = 0;
                i += 1;
            }
        }
    }

    #[test]
    fn alpha_solver_matches_brute_force() {
        let mut seed = 7u64;
        for case in 0..300 {
            let n = 1 + (rng(&mut seed) % 9) as usize;
            let options: Vec<Vec<(u8, f64)>> = (0..n)
                .map(|_| {
                    let start = if rng(&mut seed) % 3 == 0 { 16 } else { 8 };
                    let mut o = vec![(start, 0.0)];
                    if start == 8 {
                        o.push((16, (rng(&mut seed) % 100) as f64));
                    }
                    if rng(&mut seed) % 2 == 0 {
                        o.push((16, (rng(&mut seed) % 150) as f64));
                    }
                    o
                })
                .collect();
            let m = (rng(&mut seed) % (2 * n as u64 + 1)) as usize;
            let sites: Vec<GroupSite> = (0..m)
                .filter_map(|_| {
                    let src = (rng(&mut seed) % n as u64) as usize;
                    let mut dsts: Vec<usize> = (0..1 + rng(&mut seed) % 3)
                        .map(|_| (rng(&mut seed) % n as u64) as usize)
                        .filter(|&d| d != src)
                        .collect();
                    dsts.sort_unstable();
                    dsts.dedup();
                    let other = (rng(&mut seed) % n as u64) as usize;
                    let mut produced = vec![src, other];
                    produced.sort_unstable();
                    produced.dedup();
                    (!dsts.is_empty()).then(|| GroupSite {
                        tensor: String::new(),
                        kept: vec![src],
                        produced,
                        read: dsts,
                        up_us: (1 + rng(&mut seed) % 20) as f64,
                        down_us: (1 + rng(&mut seed) % 20) as f64,
                    })
                })
                .collect();
            let p = AlphaProblem { options, sites };
            let full = p.overhead(&vec![0; n]);
            let budgets: Vec<f64> = [1.0, 0.8, 0.6, 0.4, 0.2, 0.0]
                .iter()
                .map(|a| a * full)
                .collect();
            let got = solve_alphas(&p, &budgets).unwrap();
            for (b, s) in budgets.iter().zip(got) {
                let want = brute(&p, *b);
                match (want, s) {
                    (None, None) => {}
                    (Some(w), Some(s)) => {
                        assert!(
                            (w - s.cost).abs() < 1e-9,
                            "case {case} budget {b}: {w} vs {s:?}"
                        );
                        assert!(s.overhead <= b * (1.0 + 1e-9) + 1e-12, "case {case}");
                        assert!((s.cost - p.cost(&s.choice)).abs() < 1e-9);
                    }
                    (w, s) => panic!("case {case} budget {b}: brute force {w:?}, solver {s:?}"),
                }
            }
        }
    }

    #[test]
    fn alpha_one_keeps_the_phase2_choice_and_zero_removes_every_convert() {
        // a chain 0 → 1 → 2 with group 1 at 16 bits: the op between 0 and 1 widens group 0's tensor, the
        // op between 1 and 2 computes at 16 and narrows its output to group 2's width: two Converts
        let site = |kept: usize, produced: Vec<usize>, read: Vec<usize>| GroupSite {
            tensor: String::new(),
            kept: vec![kept],
            produced,
            read,
            up_us: 5.0,
            down_us: 3.0,
        };
        let p = AlphaProblem {
            options: vec![
                vec![(8, 0.0), (16, 10.0)],
                vec![(16, 0.0)],
                vec![(8, 0.0), (16, 4.0)],
            ],
            sites: vec![site(0, vec![0], vec![0, 1]), site(2, vec![1, 2], vec![])],
        };
        assert_eq!(p.overhead(&[0, 0, 0]), 8.0);
        let s = solve_alphas(&p, &[8.0, 5.0, 3.0, 0.0]).unwrap();
        assert_eq!(s[0].as_ref().unwrap().choice, vec![0, 0, 0]);
        // within 5: raise group 2 (cost 4) to drop the 16→8 Convert
        assert_eq!(s[1].as_ref().unwrap().choice, vec![0, 0, 1]);
        // within 3: raise group 0 (cost 10), keep the 3 µs Convert
        assert_eq!(s[2].as_ref().unwrap().choice, vec![1, 0, 0]);
        assert_eq!(s[3].as_ref().unwrap().choice, vec![1, 0, 1]);
        assert_eq!(s[3].as_ref().unwrap().overhead, 0.0);
    }

    #[test]
    fn latency_fit_recovers_a_line_and_falls_back_through_the_origin() {
        let pts = vec![
            ("a8w8".to_string(), 1.0e6, 110.0),
            ("a16w8".to_string(), 2.0e6, 210.0),
            ("a16w16".to_string(), 4.0e6, 410.0),
        ];
        let f = fit_latency(&pts);
        assert!(
            (f.b - 1e-4).abs() < 1e-12 && (f.a - 10.0).abs() < 1e-6,
            "{f:?}"
        );
        assert!(f.rms_residual_us < 1e-6);
        assert_eq!(f.kind, "least squares");
        // latency falling with bit-ops: no usable slope, so a proportional fit
        let pts = vec![
            ("x".to_string(), 1.0e6, 300.0),
            ("y".to_string(), 2.0e6, 200.0),
        ];
        let f = fit_latency(&pts);
        assert_eq!(f.kind, "through the origin");
        assert!(f.b > 0.0 && f.a == 0.0);
        assert!((f.b - (300.0 * 1e6 + 200.0 * 2e6) / (1e12 + 4e12)).abs() < 1e-15);
    }

    #[test]
    fn cost_is_bitops_plus_priced_converts() {
        // a tensor of group 0, produced by an op that also reads group 3, read by ops of groups 1 and 2
        let site = GroupSite {
            tensor: "t".into(),
            kept: vec![0],
            produced: vec![0, 3],
            read: vec![1, 2],
            up_us: 6.0,
            down_us: 2.0,
        };
        let m = CostModel {
            sites: vec![site],
            fit: fit_latency(&[("a".into(), 0.0, 1.0), ("b".into(), 100.0, 3.0)]),
            measured: true,
        };
        assert!((m.fit.b - 0.02).abs() < 1e-12);
        let p = |a| Precision { act: a, weight: 8 };
        assert_eq!(m.convert_us(&[p(8), p(8), p(8), p(8)]), 0.0);
        // two readers at 16 share one widening Convert
        assert_eq!(m.convert_us(&[p(8), p(16), p(16), p(8)]), 6.0);
        assert_eq!(m.convert_count(&[p(8), p(16), p(16), p(8)]), 1);
        // a tensor kept at 16 is read at 16 by every reader: none is narrower than what it reads
        assert_eq!(m.convert_us(&[p(16), p(8), p(16), p(8)]), 0.0);
        // its producer computing at 16 (group 3) narrows it to 8
        assert_eq!(m.convert_us(&[p(8), p(8), p(8), p(16)]), 2.0);
        assert_eq!(m.convert_count(&[p(8), p(16), p(8), p(16)]), 2);
        assert!((m.convert_bitops(&[p(8), p(16), p(16), p(8)]) - 300.0).abs() < 1e-9);
    }

    #[test]
    fn dates_are_civil() {
        let d = today();
        assert_eq!(d.len(), 10);
        assert!(d.starts_with("20"), "{d}");
    }
}
