//! The evaluator interface every phase goes through, and its in-process implementation on the reference
//! backend. Transports to device agents implement the same trait.

use std::sync::Arc;

use amp_device::backend::qnn::{QnnModel, QnnRuntime};
use amp_device::backend::reference::Reference;
use amp_device::backend::Array;
use amp_device::ir::Graph;
use amp_device::quant::{Precision, QuantPlan, Stats};
use anyhow::Result;
use serde::Serialize;

use super::groups::Groups;
use crate::data::Dataset;

/// What a phase measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum Metric {
    /// Top-1 accuracy against the labels.
    Accuracy,
    /// AIMET's SQNR (dB) of the model output against the FP32 output.
    Sqnr,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::Sqnr => "sqnr",
        }
    }
}

/// Which data an evaluation runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subset {
    Phase1,
    Phase2,
}

pub trait Evaluator {
    /// Backend and device identity; part of every journal key.
    fn identity(&self) -> String;
    /// Evaluates a config (None: FP32) on a subset.
    fn evaluate(
        &mut self,
        config: Option<&[Precision]>,
        subset: Subset,
        metric: Metric,
    ) -> Result<f64>;
}

/// Which backend runs quantized configs.
#[derive(Clone)]
pub enum EvalBackend {
    /// The reference backend (pure Rust).
    Ref,
    /// Qualcomm's HTP through QNN (on x86_64 the emulator library).
    Htp(Arc<QnnRuntime>),
}

/// A model ready to run: FP32 or quantized on the reference backend, or a finalized QNN graph.
pub enum Prepared {
    Ref(Reference),
    Htp(Box<QnnModel>),
}

impl Prepared {
    pub fn run(&mut self, x: &Array) -> Result<Vec<Array>> {
        Ok(match self {
            Prepared::Ref(r) => r.run(x)?,
            Prepared::Htp(m) => m.run(x)?,
        })
    }
}

/// Prepares `graph` at `plan` (None: FP32, always on the reference backend) for `backend`.
pub fn prepare(
    backend: &EvalBackend,
    graph: &Arc<Graph>,
    plan: Option<QuantPlan>,
    batch: usize,
) -> Result<Prepared> {
    Ok(match (backend, plan) {
        (EvalBackend::Htp(rt), Some(plan)) => {
            Prepared::Htp(Box::new(QnnModel::build(rt, graph, &plan, batch)?))
        }
        (_, plan) => Prepared::Ref(Reference::new(graph.clone(), plan)?),
    })
}

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
    fp32_phase1: Option<Vec<Array>>,
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
            fp32_phase1: None,
        }
    }

    fn model(&self, config: Option<&[Precision]>) -> Result<Prepared> {
        let plan = match config {
            None => None,
            Some(c) => Some(QuantPlan::new(
                &self.graph,
                &self.stats,
                &self.groups.bit_plan(&self.graph, c, self.per_channel),
            )?),
        };
        prepare(&self.backend, &self.graph, plan, self.batch)
    }

    fn outputs(&self, model: &mut Prepared, data: &Dataset) -> Result<Vec<Array>> {
        let n = data.len();
        (0..n)
            .step_by(self.batch)
            .map(|s| {
                Ok(model
                    .run(&data.inputs.slice_batch(s, (s + self.batch).min(n)))?
                    .remove(0))
            })
            .collect()
    }
}

/// Top-1 accuracy of batched outputs against labels.
pub fn accuracy(outs: &[Array], labels: &[i64]) -> f64 {
    let mut hit = 0usize;
    let mut i = 0usize;
    for o in outs {
        let c = *o.shape.last().unwrap_or(&1);
        for row in o.data.chunks(c) {
            let best = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (j, &v)| if v > b.1 { (j, v) } else { b },
                )
                .0;
            hit += (best as i64 == labels[i]) as usize;
            i += 1;
        }
    }
    hit as f64 / labels.len().max(1) as f64
}

/// AIMET's SQNR: 10·log10(Σ_b mean(s²) / (mean((s − q)²) + 1e-4) / num_samples) over batches b.
pub fn sqnr(fp32: &[Array], quant: &[Array], num_samples: usize) -> f64 {
    let mut sum = 0.0;
    for (s, q) in fp32.iter().zip(quant) {
        let n = s.data.len().max(1) as f64;
        let sig: f64 = s.data.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / n;
        let noise: f64 = s
            .data
            .iter()
            .zip(&q.data)
            .map(|(&a, &b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            / n;
        sum += sig / (noise + 1e-4);
    }
    10.0 * (sum / num_samples.max(1) as f64).log10()
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

    fn evaluate(
        &mut self,
        config: Option<&[Precision]>,
        subset: Subset,
        metric: Metric,
    ) -> Result<f64> {
        let mut model = self.model(config)?;
        let data = if subset == Subset::Phase1 {
            &self.phase1
        } else {
            &self.phase2
        };
        data.check_labels(
            *self.graph.tensors[self.graph.outputs[0]]
                .shape
                .last()
                .unwrap_or(&1),
        )?;
        let outs = self.outputs(&mut model, data)?;
        match metric {
            Metric::Accuracy => Ok(accuracy(&outs, &data.labels)),
            Metric::Sqnr => {
                if self.fp32_phase1.is_none() || subset != Subset::Phase1 {
                    let fp = self.outputs(&mut self.model(None)?, data)?;
                    if subset != Subset::Phase1 {
                        return Ok(sqnr(&fp, &outs, data.len()));
                    }
                    self.fp32_phase1 = Some(fp);
                }
                Ok(sqnr(
                    self.fp32_phase1.as_ref().expect("set above"),
                    &outs,
                    data.len(),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqnr_follows_aimet_formula() {
        // one batch of ones against zeros: mean(s²)=1, noise 1 → ratio 1/(1+1e-4); one sample
        let s = vec![Array::new(vec![1, 4], vec![1.0; 4])];
        let q = vec![Array::new(vec![1, 4], vec![0.0; 4])];
        assert!((sqnr(&s, &q, 1) - 10.0 * (1.0f64 / 1.0001).log10()).abs() < 1e-12);
        // AIMET divides by num_samples, not by batches: two samples in one batch lose 10·log10(2)
        let s2 = vec![Array::new(vec![2, 2], vec![2.0; 4])];
        let q2 = vec![Array::new(vec![2, 2], vec![1.0; 4])];
        assert!((sqnr(&s2, &q2, 2) - 10.0 * (4.0f64 / 1.0001 / 2.0).log10()).abs() < 1e-12);
    }
}
