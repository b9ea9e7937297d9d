//! Runs that start where an earlier run of another config can hand over. A tune evaluates many configs that
//! differ from one evaluated before in one group or a few: phase 1 changes one group of its baseline, each
//! phase-2 step one more group than the step before. Every node before the first whose signature differs
//! ([`Reference::signatures`]) computes the same values in both. So a run of a quantized config on the
//! reference backend keeps the activations live at a few checkpoints, within a memory budget, and a later
//! run starts at the last checkpoint before its first differing node, from those values. Its outputs are
//! the same, bit for bit, as a whole run's.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::reference::Reference;
use super::{Array, Inputs, Prepared};

/// The memory budget when `AMP_RESUME_MB` does not set one.
pub const DEFAULT_BUDGET_MB: usize = 64;

/// Kept activations of the last few runs, to resume later runs from.
pub struct Prefixes {
    budget: usize,
    bases: Vec<Base>,
    clock: u64,
    /// Per sample count: the work before each node and the checkpoints, the same for every plan of the model.
    layouts: HashMap<usize, Layout>,
    /// Estimated work (MACs, or elements for ops without MACs) of the batches run since the last clear, and
    /// the part of it that resuming skipped.
    pub work: Work,
}

/// Estimated work done and skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Work {
    pub total: f64,
    pub skipped: f64,
}

/// Where runs of a sample count keep activations: [`work_before`] and [`checkpoints`].
struct Layout {
    done: Vec<f64>,
    checkpoints: Vec<usize>,
}

/// One run's kept activations.
struct Base {
    sigs: Vec<u64>,
    batch: usize,
    checkpoints: Vec<usize>,
    /// Per batch (its first sample, its samples): the tensors live at the checkpoints.
    kept: HashMap<(usize, usize), HashMap<usize, Arc<Array>>>,
    bytes: usize,
    used: u64,
}

impl Default for Prefixes {
    fn default() -> Prefixes {
        Prefixes::from_env()
    }
}

/// The budget in bytes `AMP_RESUME_MB` sets (megabytes; 0 turns resuming off), else
/// [`DEFAULT_BUDGET_MB`]'s; an error names a value that is not a whole number of megabytes.
pub fn budget_from_env() -> Result<usize, String> {
    match std::env::var("AMP_RESUME_MB") {
        Err(_) => Ok(DEFAULT_BUDGET_MB << 20),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(mb) if mb <= usize::MAX >> 20 => Ok(mb << 20),
            _ => Err(format!(
                "AMP_RESUME_MB={v:?} is not a whole number of megabytes (0 turns resuming off; unset, {DEFAULT_BUDGET_MB})"
            )),
        },
    }
}

impl Prefixes {
    /// Keeps at most `budget` bytes of activations (0: never resumes).
    pub fn new(budget: usize) -> Prefixes {
        Prefixes {
            budget,
            bases: Vec::new(),
            clock: 0,
            layouts: HashMap::new(),
            work: Work::default(),
        }
    }

    /// The budget `AMP_RESUME_MB` sets (0 turns resuming off), else [`DEFAULT_BUDGET_MB`]. The binaries
    /// refuse a value that is not a whole number at start ([`budget_from_env`]), so none reaches this.
    pub fn from_env() -> Prefixes {
        Prefixes::new(budget_from_env().unwrap_or(DEFAULT_BUDGET_MB << 20))
    }

    /// Forgets every kept run (the model or the data changed).
    pub fn clear(&mut self) {
        self.bases.clear();
        self.layouts.clear();
        self.work = Work::default();
    }

    /// Runs samples `samples` of the data `x`, in batches of `batch`, as [`Prepared::run_samples`] does; on
    /// the reference backend, quantized, it starts each batch where a kept run of the same samples hands
    /// over, and keeps this run's activations for later runs.
    pub fn run_batched(
        &mut self,
        model: &mut Prepared,
        x: &Inputs,
        samples: std::ops::Range<usize>,
        batch: usize,
    ) -> anyhow::Result<Vec<Array>> {
        let sigs = match &*model {
            Prepared::Ref(r) if self.budget > 0 => r.signatures(),
            _ => None,
        };
        let (Prepared::Ref(r), Some(sigs)) = (&*model, sigs) else {
            return model.run_samples(x, samples, batch, |_| {});
        };
        let (first, n, batch) = (samples.start, samples.len(), model.batch_for(batch));
        let half = self.budget / 2;
        let Layout { done, checkpoints } = self.layouts.entry(n).or_insert_with(|| {
            let done = work_before(r);
            let checkpoints = checkpoints(r, &done, n, half);
            Layout { done, checkpoints }
        });
        let (done, checkpoints) = (done.clone(), checkpoints.clone());
        // the kept run that hands over latest
        let handover = |b: &Base| {
            let d = first_difference(&b.sigs, &sigs);
            b.checkpoints.iter().rev().find(|&&c| c <= d).copied()
        };
        let from = self
            .bases
            .iter()
            .enumerate()
            .filter(|(_, b)| b.batch == batch)
            .filter_map(|(k, b)| Some((k, handover(b)?)))
            .max_by(|a, b| done[a.1].total_cmp(&done[b.1]));
        self.clock += 1;
        if let Some((k, _)) = from {
            self.bases[k].used = self.clock;
        }
        // room for what this run keeps, made before it runs: at no time more than the budget is kept
        self.drop_oldest(self.budget.saturating_sub(self.budget / 2));
        let from = from.and_then(|(_, c)| {
            let k = self.bases.iter().position(|b| b.used == self.clock)?;
            Some((k, c))
        });
        let mut base = Base {
            sigs,
            batch,
            checkpoints: checkpoints.clone(),
            kept: HashMap::new(),
            bytes: 0,
            used: self.clock,
        };
        let mut parts: Vec<Vec<Array>> = Vec::new();
        for s in (0..n).step_by(batch) {
            let e = (s + batch).min(n);
            let key = (first + s, e - s);
            let xb = x.slice_batch(first + s, first + e);
            let given = from.and_then(|(k, c)| {
                let m = self.bases[k].kept.get(&key)?;
                // the latest checkpoint up to the handover whose values this batch kept
                let c = self.bases[k]
                    .checkpoints
                    .iter()
                    .rev()
                    .filter(|&&cp| cp <= c)
                    .find(|&&cp| r.live_at(cp).iter().all(|t| m.contains_key(t)))?;
                Some((*c, m))
            });
            let mut kept: HashMap<usize, Arc<Array>> = HashMap::new();
            let start = given.map_or(0, |(c, _)| c);
            if let Some((c, m)) = given {
                // what is live at this run's checkpoints before the handover is the kept run's
                for &cp in checkpoints.iter().filter(|&&cp| cp <= c) {
                    for t in r.live_at(cp) {
                        if let Some(a) = m.get(&t) {
                            kept.insert(t, a.clone());
                        }
                    }
                }
            }
            let value = |t: usize| given.and_then(|(_, m)| m.get(&t)).map(|a| (**a).clone());
            let outs = r.run_from(&xb, start, &value, &checkpoints, &mut |t, a| {
                kept.entry(t).or_insert_with(|| Arc::new(a.clone()));
            })?;
            self.work.total += done[done.len() - 1];
            self.work.skipped += done[start];
            base.bytes += kept.values().map(|a| a.data.len() * 4).sum::<usize>();
            base.kept.insert(key, kept);
            parts.resize_with(outs.len(), Vec::new);
            for (p, o) in parts.iter_mut().zip(outs) {
                p.push(o);
            }
        }
        if !checkpoints.is_empty() {
            self.bases.push(base);
            self.drop_oldest(self.budget);
        }
        Ok(parts.iter().map(|p| Array::concat(p)).collect())
    }

    /// Drops the runs used longest ago until at most `room` bytes are kept.
    fn drop_oldest(&mut self, room: usize) {
        while self.bases.iter().map(|b| b.bytes).sum::<usize>() > room {
            let oldest = (0..self.bases.len())
                .min_by_key(|&k| self.bases[k].used)
                .expect("bytes are kept by some run");
            self.bases.remove(oldest);
        }
    }
}

/// The first node whose signature differs (0 when the inputs' encodings do; the node count when none).
fn first_difference(a: &[u64], b: &[u64]) -> usize {
    if a.len() != b.len() || a.first() != b.first() {
        return 0;
    }
    a[1..]
        .iter()
        .zip(&b[1..])
        .position(|(x, y)| x != y)
        .unwrap_or(a.len() - 1)
}

/// Estimated work of the nodes before each node, and of all of them last: MACs per sample, or output
/// elements for ops without MACs.
fn work_before(r: &Reference) -> Vec<f64> {
    let g = r.graph();
    let mut done = vec![0.0; g.nodes.len() + 1];
    for (i, n) in g.nodes.iter().enumerate() {
        let w = g.macs(n).max(g.tensors[n.output].numel() as u64);
        done[i + 1] = done[i] + w as f64;
    }
    done
}

/// The nodes to keep the live activations at for `samples` samples within `budget` bytes: as evenly spread
/// over the work as the budget allows (the smallest spacing whose checkpoints fit).
fn checkpoints(r: &Reference, done: &[f64], samples: usize, budget: usize) -> Vec<usize> {
    let g = r.graph();
    let can = r.can_start_at();
    let live: Vec<(usize, Vec<usize>)> = (1..g.nodes.len())
        .filter(|&c| can[c])
        .map(|c| (c, r.live_at(c)))
        .collect();
    let bytes = |t: usize| g.tensors[t].numel() * 4 * samples;
    let spaced = |spacing: f64| {
        let (mut picked, mut seen, mut total, mut last) = (Vec::new(), HashSet::new(), 0, 0.0);
        for (c, ts) in &live {
            if done[*c] - last >= spacing && done[*c] > 0.0 {
                picked.push(*c);
                last = done[*c];
                total += ts
                    .iter()
                    .filter(|&&t| seen.insert(t))
                    .map(|&t| bytes(t))
                    .sum::<usize>();
            }
        }
        (picked, total)
    };
    let (mut lo, mut hi) = (0.0, done[done.len() - 1]);
    if spaced(lo).1 <= budget {
        return spaced(lo).0;
    }
    for _ in 0..40 {
        let mid = (lo + hi) / 2.0;
        if spaced(mid).1 <= budget {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    let (picked, total) = spaced(hi);
    if total <= budget {
        picked
    } else {
        Vec::new()
    }
}
