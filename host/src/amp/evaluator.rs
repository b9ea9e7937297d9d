//! The evaluator interface every phase goes through, and its in-process implementation on the reference
//! backend. Transports to device agents implement the same trait.

use std::sync::Arc;

use amp_device::backend::Array;
use amp_device::error::EvalError;
use amp_device::ir::Graph;
use amp_device::quant::{Precision, QuantPlan, Stats};
use anyhow::Result;
use serde::Serialize;

use super::groups::Groups;
use crate::data::Dataset;

/// Which data an evaluation runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subset {
    Phase1,
    Phase2,
}

impl Subset {
    pub fn name(self) -> &'static str {
        match self {
            Subset::Phase1 => "phase1",
            Subset::Phase2 => "phase2",
        }
    }
}

/// One evaluation to run.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub config: Option<Vec<Precision>>,
    pub subset: Subset,
    pub metric: Metric,
}

/// How a timing is measured: batches of `batch` samples, `warmup` untimed runs, then `iterations` timed
/// ones (the median is kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Runs {
    pub batch: usize,
    pub warmup: usize,
    pub iterations: usize,
}

/// Where timings come from: what a stored Convert price is valid for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Provenance {
    /// The device (its transport name and agent device name).
    pub device: String,
    /// SoC or CPU model.
    pub soc: String,
    /// Backend and its build id.
    pub backend: String,
}

pub trait Evaluator {
    /// Backend and device identity; part of every journal key.
    fn identity(&self) -> String;
    /// What this evaluator's timings are valid for.
    fn provenance(&self) -> Provenance {
        Provenance {
            device: self.identity(),
            soc: String::new(),
            backend: self.identity(),
        }
    }
    /// Latency of one batch at `config` (None: FP32).
    fn latency(&mut self, _config: Option<&[Precision]>, _runs: Runs) -> Result<Latency> {
        anyhow::bail!("{} cannot measure latency", self.identity())
    }
    /// Prices of Convert ops on the device (measured, or estimated where the backend has none); the
    /// probes carry their shapes, batch included.
    fn price_converts(&mut self, _probes: &[Probe], _runs: Runs) -> Result<Prices> {
        anyhow::bail!("{} cannot price Convert ops", self.identity())
    }
    /// Bytes of model and data sent to the device in this session (0 for in-process evaluation).
    fn pushed_bytes(&self) -> u64 {
        0
    }
    /// Bytes of model outputs received from the device in this session (0 for in-process evaluation).
    fn pulled_bytes(&self) -> u64 {
        0
    }
    /// Which devices served, with how many evaluations each (empty for a single evaluator).
    fn served(&self) -> Vec<(String, usize)> {
        Vec::new()
    }
    /// Evaluates several jobs, calling `done(index, result)` as each finishes (a pool runs them in parallel,
    /// in any order). The default runs them one by one.
    fn evaluate_many(
        &mut self,
        jobs: &[Job],
        done: &mut dyn FnMut(usize, Result<f64>) -> Result<()>,
    ) -> Result<()> {
        for (i, j) in jobs.iter().enumerate() {
            let r = self.evaluate(j);
            done(i, r)?;
        }
        Ok(())
    }
    /// Scores a config (None: FP32) on a subset by a built-in metric, computed where the model runs.
    fn score(&mut self, config: Config, subset: Subset, metric: MetricSpec) -> Result<f64>;
    /// The model outputs of a config (None: FP32) on a subset: one array per model output, every sample.
    fn outputs(&mut self, config: Option<&[Precision]>, subset: Subset) -> Result<Vec<Array>>;
    /// Evaluates a job: its config (None: FP32) on its subset, by its metric. The user's command runs here,
    /// on the outputs the model sends back, with the FP32 outputs of the same subset made once.
    fn evaluate(&mut self, job: &Job) -> Result<f64> {
        let config = job.config.as_deref();
        match &job.metric {
            Metric::Builtin(m) => self.score(config, job.subset, *m),
            Metric::Command(c) => {
                let fp32 = c.fp32_file(job.subset.name(), || self.outputs(None, job.subset))?;
                let outs = self.outputs(config, job.subset)?;
                c.score(&outs, &fp32, &config_str(config))
            }
        }
    }
}

/// A config to evaluate: one precision per group, or None for FP32.
pub type Config<'a> = Option<&'a [Precision]>;

/// A config as the journal and messages write it.
pub fn config_str(c: Option<&[Precision]>) -> String {
    match c {
        None => "fp32".into(),
        Some(c) => c
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(","),
    }
}

pub use super::metric::Metric;
pub use amp_device::backend::resume::Prefixes;
pub use amp_device::backend::{prepare, EvalBackend, Latency, Prepared};
pub use amp_device::convert::{Prices, Probe};
pub use amp_device::metrics::{MetricKind, MetricSpec};

/// Evaluation in this process, on the reference backend or on QNN HTP.
pub struct LocalEvaluator {
    pub backend: EvalBackend,
    pub graph: Arc<Graph>,
    pub groups: Groups,
    pub stats: Stats,
    pub per_channel: bool,
    pub phase1: Dataset,
    pub phase2: Dataset,
    pub batch: usize,
    /// The FP32 outputs of phase 1's and phase 2's data, made the first time a metric needs them.
    fp32: [Option<Vec<Array>>; 2],
    /// Per subset, activations of earlier runs that later runs of other configs start from.
    prefixes: [Prefixes; 2],
}

impl LocalEvaluator {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        backend: EvalBackend,
        graph: Arc<Graph>,
        groups: Groups,
        stats: Stats,
        per_channel: bool,
        phase1: Dataset,
        phase2: Dataset,
        batch: usize,
    ) -> Self {
        LocalEvaluator {
            backend,
            graph,
            groups,
            stats,
            per_channel,
            phase1,
            phase2,
            batch: batch.max(1),
            fp32: [None, None],
            prefixes: [Prefixes::from_env(), Prefixes::from_env()],
        }
    }

    fn model(&self, config: Option<&[Precision]>) -> Result<Prepared> {
        self.model_at(config, self.batch)
    }

    fn model_at(&self, config: Option<&[Precision]>, batch: usize) -> Result<Prepared> {
        let plan = match config {
            None => None,
            Some(c) => Some(QuantPlan::new(
                &self.graph,
                &self.stats,
                &self.groups.bit_plan(&self.graph, c, self.per_channel),
            )?),
        };
        prepare(&self.backend, &self.graph, plan, batch.max(1))
    }

    fn data(&self, subset: Subset) -> &Dataset {
        match subset {
            Subset::Phase1 => &self.phase1,
            Subset::Phase2 => &self.phase2,
        }
    }
}

impl Evaluator for LocalEvaluator {
    fn identity(&self) -> String {
        match &self.backend {
            EvalBackend::Ref => "ref@local".to_string(),
            EvalBackend::Htp(rt) => format!(
                "htp-v{}@local:{}",
                rt.arch,
                rt.lib.build_id().unwrap_or_default()
            ),
        }
    }

    fn provenance(&self) -> Provenance {
        Provenance {
            device: "local".into(),
            soc: amp_device::agent::soc(),
            backend: self.identity(),
        }
    }

    fn latency(&mut self, config: Option<&[Precision]>, runs: Runs) -> Result<Latency> {
        let mut model = self.model_at(config, runs.batch)?;
        let x = self
            .phase2
            .inputs
            .slice_batch(0, runs.batch.max(1).min(self.phase2.len()));
        amp_device::backend::measure_latency(&mut model, &x, runs.warmup, runs.iterations)
    }

    fn price_converts(&mut self, probes: &[Probe], runs: Runs) -> Result<Prices> {
        amp_device::convert::price(&self.backend, probes, runs.warmup, runs.iterations)
    }

    fn outputs(&mut self, config: Option<&[Precision]>, subset: Subset) -> Result<Vec<Array>> {
        let mut model = self.model(config)?;
        let x = match subset {
            Subset::Phase1 => &self.phase1.inputs,
            Subset::Phase2 => &self.phase2.inputs,
        };
        self.prefixes[subset as usize].run_batched(&mut model, x, 0..x.batch(), self.batch)
    }

    fn score(&mut self, config: Config, subset: Subset, metric: MetricSpec) -> Result<f64> {
        let outs = self.outputs(config, subset)?;
        let k = subset as usize;
        if !metric.kind.needs_labels() && self.fp32[k].is_none() {
            self.fp32[k] = Some(self.outputs(None, subset)?);
        }
        let labels = self.data(subset).labels.as_deref();
        amp_device::metrics::score(metric, &outs, self.fp32[k].as_deref(), labels)
            .map_err(|e| EvalError::halt(format!("{}: {e}", self.data(subset).path)).into())
    }
}
