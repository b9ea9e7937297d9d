//! Evaluation of a prepared graph on data: its outputs and throughput, top-1 and top-5 where the data has
//! labels, and any metric (a built-in, or the user's command) given the FP32 outputs.

use std::time::Instant;

use amp_device::backend::Array;
use amp_device::metrics::{score, MetricKind, MetricSpec};
use anyhow::Result;
use serde::Serialize;

use crate::amp::evaluator::Prepared;
use crate::amp::metric::Metric;
use crate::data::Dataset;
use crate::progress;

#[derive(Clone, Debug, Serialize)]
pub struct EvalResult {
    pub samples: usize,
    /// Present when the data has labels.
    pub top1: Option<f64>,
    /// Present when the data has labels and the model at least 5 classes.
    pub top5: Option<f64>,
    pub samples_per_s: f64,
}

/// Runs `model` over `data` in batches, with a progress bar labelled `label`: one array per model output
/// (every sample), and what it measured.
pub fn evaluate(
    model: &mut Prepared,
    data: &Dataset,
    batch: usize,
    label: &str,
) -> Result<(EvalResult, Vec<Array>)> {
    let n = data.len();
    let bar = progress::bar(n as u64, label);
    let start = Instant::now();
    let outs = model.run_batched(&data.inputs, batch, |k| bar.inc(k as u64))?;
    let secs = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let top = |kind: MetricKind| -> Result<Option<f64>> {
        let Some(labels) = data.labels.as_deref() else {
            return Ok(None);
        };
        let spec = MetricSpec { kind, output: None };
        score(spec, &outs, None, Some(labels))
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{}: {e}", data.path))
    };
    let classes = outs.first().map_or(0, |o| o.sample_len());
    let r = EvalResult {
        samples: n,
        top1: top(MetricKind::Top1)?,
        top5: if classes >= 5 {
            top(MetricKind::Top5)?
        } else {
            None
        },
        samples_per_s: n as f64 / secs.max(1e-9),
    };
    Ok((r, outs))
}

/// `outs` (of config `config`) scored by `metric`, `fp32` giving the FP32 outputs of the same data when the
/// metric needs them.
pub fn score_by(
    metric: &Metric,
    outs: &[Array],
    data: &Dataset,
    config: &str,
    fp32: impl FnOnce() -> Result<Vec<Array>>,
) -> Result<f64> {
    match metric {
        Metric::Builtin(spec) if spec.kind.needs_labels() => {
            score(*spec, outs, None, data.labels.as_deref())
                .map_err(|e| anyhow::anyhow!("{}: {e}", data.path))
        }
        Metric::Builtin(spec) => score(*spec, outs, Some(&fp32()?), None)
            .map_err(|e| anyhow::anyhow!("{}: {e}", data.path)),
        Metric::Command(c) => {
            let f = c.fp32_file("eval", fp32)?;
            c.score(outs, &f, config)
        }
    }
}
