//! The evaluator interface every phase goes through, and its in-process implementation on the reference
//! backend. Transports to device agents implement the same trait.

use std::sync::Arc;

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

/// Evaluation in this process on the reference backend.
pub struct LocalEvaluator {
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
    pub fn new(
        graph: Arc<Graph>,
        groups: Groups,
        stats: Stats,
        per_channel: bool,
        phase1: Dataset,
        phase2: Dataset,
        batch: usize,
    ) -> Self {
        LocalEvaluator {
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

    fn model(&self, config: Option<&[Precision]>) -> Result<Reference> {
        let plan = match config {
            None => None,
            Some(c) => Some(QuantPlan::new(
                &self.graph,
                &self.stats,
                &self.groups.bit_plan(&self.graph, c, self.per_channel),
            )?),
        };
        Ok(Reference::new(self.graph.clone(), plan)?)
    }

    fn outputs(&self, model: &Reference, data: &Dataset) -> Result<Vec<Array>> {
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
        "ref@local".to_string()
    }

    fn evaluate(
        &mut self,
        config: Option<&[Precision]>,
        subset: Subset,
        metric: Metric,
    ) -> Result<f64> {
        let model = self.model(config)?;
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
        let outs = self.outputs(&model, data)?;
        match metric {
            Metric::Accuracy => Ok(accuracy(&outs, &data.labels)),
            Metric::Sqnr => {
                if self.fp32_phase1.is_none() || subset != Subset::Phase1 {
                    let fp = self.outputs(&self.model(None)?, data)?;
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
