//! Evaluation of a prepared graph on labelled data: top-1, top-5, throughput.

use std::time::Instant;

use crate::amp::evaluator::Prepared;
use amp_device::backend::Array;
use anyhow::Result;
use serde::Serialize;

use crate::data::Dataset;
use crate::progress;

#[derive(Clone, Debug, Serialize)]
pub struct EvalResult {
    pub samples: usize,
    pub top1: f64,
    /// Present when the model has at least 5 classes.
    pub top5: Option<f64>,
    pub samples_per_s: f64,
}

/// Ranks of the label among the scores of each sample.
fn hits(out: &Array, labels: &[i64]) -> (usize, usize) {
    let classes = *out.shape.last().unwrap_or(&1);
    let (mut t1, mut t5) = (0, 0);
    for (row, &l) in out.data.chunks(classes).zip(labels) {
        let target = row[l as usize];
        let better = row
            .iter()
            .enumerate()
            .filter(|&(j, &v)| v > target || (v == target && j < l as usize))
            .count();
        t1 += (better == 0) as usize;
        t5 += (better < 5) as usize;
    }
    (t1, t5)
}

/// Runs `model` over `data` in batches; the model's first output holds the class scores.
pub fn evaluate(
    model: &mut Prepared,
    data: &Dataset,
    batch: usize,
    label: &str,
) -> Result<(EvalResult, Vec<Array>)> {
    let n = data.len();
    let bar = progress::bar(n as u64, label);
    let (mut t1, mut t5) = (0, 0);
    let mut classes = 0;
    let mut outs = Vec::new();
    let start = Instant::now();
    for s in (0..n).step_by(batch.max(1)) {
        let e = (s + batch).min(n);
        let out = model.run(&data.inputs.slice_batch(s, e))?;
        let first = &out[0];
        classes = *first.shape.last().unwrap_or(&1);
        data.check_labels(classes)?;
        let (a, b) = hits(first, &data.labels[s..e]);
        t1 += a;
        t5 += b;
        outs.push(out.into_iter().next().expect("one output"));
        bar.inc((e - s) as u64);
    }
    let secs = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let r = EvalResult {
        samples: n,
        top1: t1 as f64 / n as f64,
        top5: (classes >= 5).then(|| t5 as f64 / n as f64),
        samples_per_s: n as f64 / secs.max(1e-9),
    };
    Ok((r, outs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top1_and_top5_count_ties_in_favour_of_lower_index() {
        let out = Array::new(
            vec![2, 6],
            vec![0.1, 0.9, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.5, 0.4, 0.3, 0.2],
        );
        // sample 0: label 1 is top-1; sample 1: label 1 ties with 0 (lower index wins) -> rank 1
        assert_eq!(hits(&out, &[1, 1]), (1, 2));
        // label 5 of sample 1 has 5 better scores -> not in top-5
        assert_eq!(hits(&out, &[1, 5]), (1, 1));
    }
}
