//! Calibration: one batched FP32 pass records each activation's min/max; encodings for every bitwidth derive
//! from these statistics, once, and are reused by every precision config. Saved as JSON keyed by the model's
//! and the calibration data's hashes, so a rerun skips the pass.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use amp_device::backend::reference::Reference;
use amp_device::backend::Inputs;
use amp_device::ir::{Graph, Op, TensorId};
use amp_device::quant::Stats;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::progress;

/// The saved calibration of one model on one calibration set.
#[derive(Serialize, Deserialize)]
pub struct CalibrationFile {
    pub model_hash: String,
    pub data_hash: String,
    pub samples: usize,
    pub stats: Stats,
}

/// The smallest and largest of `v` as `f32::min` and `f32::max` fold them (NaN skipped), lane by lane with
/// plain comparisons (false for NaN), which compile to vector min/max: `f32::min` one element at a time was
/// scalar, and half of a large model's calibration.
fn min_max(v: &[f32]) -> (f32, f32) {
    const LANES: usize = 16;
    let (mut lo, mut hi) = ([f32::INFINITY; LANES], [f32::NEG_INFINITY; LANES]);
    let chunks = v.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..LANES {
            lo[k] = if c[k] < lo[k] { c[k] } else { lo[k] };
            hi[k] = if c[k] > hi[k] { c[k] } else { hi[k] };
        }
    }
    let lo = rest.iter().chain(&lo).fold(f32::INFINITY, |m, &x| m.min(x));
    let hi = rest
        .iter()
        .chain(&hi)
        .fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    (lo, hi)
}

/// Records min/max of every activation of `graph` over `inputs` (FP32, batches of `batch` or of
/// [`Reference::batch_cap`] when that is smaller), with the ranges
/// of an attention mask's fill set as [`mask_fills`] says.
pub fn calibrate(graph: Arc<Graph>, inputs: &Inputs, batch: usize) -> Result<Stats> {
    let r = Reference::new(graph.clone(), None)?;
    let fills = mask_fills(&graph);
    // values at or below this are a fill's (or a fill plus a score)
    let fill_below = fills.iter().map(|f| f.value / 2.0).reduce(f32::max);
    let mut mins = vec![f32::INFINITY; graph.tensors.len()];
    let mut maxs = vec![f32::NEG_INFINITY; graph.tensors.len()];
    // the smallest value that is not a fill's
    let mut lows = vec![f32::INFINITY; graph.tensors.len()];
    let n = inputs.batch();
    let batch = batch.clamp(1, r.batch_cap());
    let bar = progress::bar(n as u64, "calibrating");
    for start in (0..n).step_by(batch) {
        let end = (start + batch).min(n);
        r.run_observed(&inputs.slice_batch(start, end), |t, a| {
            let (lo, hi) = min_max(&a.data);
            mins[t] = mins[t].min(lo);
            maxs[t] = maxs[t].max(hi);
            if let Some(below) = fill_below {
                let low = a.data.iter().filter(|&&v| v > below);
                lows[t] = low.fold(lows[t], |m, &v| m.min(v));
            }
        })?;
        bar.inc((end - start) as u64);
    }
    bar.finish_and_clear();
    for t in 0..graph.tensors.len() {
        if fill_below.is_some_and(|b| mins[t] <= b) {
            // a fill reached it: its range ends a margin below what is not a fill, where fills saturate
            mins[t] = lows[t].min(0.0) - MASKED_MARGIN;
        }
    }
    for f in &fills {
        let span = (f.scores.iter())
            .map(|&s| maxs[s] - mins[s])
            .fold(0f32, f32::max);
        if span.is_finite() && maxs[f.at] >= mins[f.at] {
            // a masked score saturates below every score that is not masked
            mins[f.at] = lows[f.at].min(0.0) - span - MASKED_MARGIN;
        }
    }
    note_fills(&graph, &fills);
    let mut stats = Stats::default();
    for (t, tensor) in graph.tensors.iter().enumerate() {
        if !tensor.is_const() && mins[t] <= maxs[t] {
            stats.ranges.insert(tensor.name.clone(), [mins[t], maxs[t]]);
        }
    }
    Ok(stats)
}

/// How far below the scores a masked score ends once quantized: its weight after a Softmax is then at most
/// e⁻³⁰ (1e-13) of an unmasked one's.
pub const MASKED_MARGIN: f32 = 30.0;

/// The magnitude from which a constant is a mask's fill, not a value: transformers' `finfo(float32).min`,
/// BERT's −10000.
pub const FILL_MAGNITUDE: f32 = 1e4;

/// An attention mask's fill: a Where (transformers' `masked_fill`) or Mul (`(1 − mask) · min`) with a constant
/// operand of one value at or below −[`FILL_MAGNITUDE`] (−∞ too), whose output is added (through ops that only
/// move values) to the scores a Softmax reads, in each layer that reads it; a Where that fills the scores
/// themselves where masked (`scores.masked_fill(~mask, -inf)`), read by a Softmax; or a constant mask holding
/// such fills (a decoder's causal mask, folded at import) added to the scores a Softmax reads.
///
/// Calibrated as it is, the fill would take the whole range of the mask and of the sum, and every score would
/// round to one code. So the ranges of the tensors the fill reaches end [`MASKED_MARGIN`] below what they
/// hold besides fills (the codes there saturate, exactly as QNN's quantize clamps), and the mask's own range
/// ends the span of the scores further down: a masked score then saturates below every calibrated score by
/// the margin. The model is unchanged: the encodings say it, so QNN's converter and onnxruntime build the same.
#[derive(Clone, Debug, PartialEq)]
pub struct MaskFill {
    /// The Where/Mul output: the mask, 0 or the fill (or the scores, filled: by a Where, or by the Add of a
    /// constant mask).
    pub at: TensorId,
    /// The scores the mask is added to, one per layer that reads it (none: the Where fills the scores).
    pub scores: Vec<TensorId>,
    /// The fill value.
    pub value: f32,
}

/// Every attention mask's fill in `g` ([`MaskFill`]).
pub fn mask_fills(g: &Graph) -> Vec<MaskFill> {
    let consumers = g.consumers();
    // the readers of t past ops that only move values: (node, the tensor it reads)
    let readers = |t: TensorId| -> Vec<(usize, TensorId)> {
        let (mut out, mut todo) = (Vec::new(), vec![t]);
        while let Some(t) = todo.pop() {
            for &c in &consumers[t] {
                match g.nodes[c].op.def().passthrough() {
                    true => todo.push(g.nodes[c].output),
                    false => out.push((c, t)),
                }
            }
        }
        out
    };
    let is_softmax = |c: usize| matches!(g.nodes[c].op, Op::Softmax(_));
    let mut out = Vec::new();
    for n in &g.nodes {
        if let Some(value) = constant_mask(g, n) {
            let read = readers(n.output);
            if !read.is_empty() && read.iter().all(|&(c, _)| is_softmax(c)) {
                out.push(MaskFill {
                    at: n.output,
                    scores: Vec::new(),
                    value,
                });
            }
            continue;
        }
        if !matches!(n.op, Op::Where(_) | Op::Mul(_)) {
            continue;
        }
        let fill = n.inputs.iter().find_map(|&t| {
            let d = g.const_data(t)?;
            let v = *d.first()?;
            (v <= -FILL_MAGNITUDE && d.iter().all(|&x| x == v)).then_some(v)
        });
        let Some(value) = fill else { continue };
        let read = readers(n.output);
        if matches!(n.op, Op::Where(_))
            && !read.is_empty()
            && read.iter().all(|&(c, _)| is_softmax(c))
        {
            // the scores filled where masked (`scores.masked_fill(~mask, -inf)`): no mask to add
            out.push(MaskFill {
                at: n.output,
                scores: Vec::new(),
                value,
            });
            continue;
        }
        // every reader an Add of scores whose every reader is a Softmax
        let scores: Option<Vec<TensorId>> = read
            .into_iter()
            .map(|(add, mask)| {
                let a = &g.nodes[add];
                let scores = *a.inputs.iter().find(|&&t| t != mask)?;
                let to_softmax = readers(a.output);
                let ok = matches!(a.op, Op::Add(_))
                    && !g.tensors[scores].is_const()
                    && !to_softmax.is_empty()
                    && to_softmax.iter().all(|&(c, _)| is_softmax(c));
                ok.then_some(scores)
            })
            .collect();
        if let Some(scores) = scores.filter(|s| !s.is_empty()) {
            out.push(MaskFill {
                at: n.output,
                scores,
                value,
            });
        }
    }
    out
}

/// The lowest value of a constant mask holding fills (values at or below −[`FILL_MAGNITUDE`]) that `n` adds
/// to an activation.
fn constant_mask(g: &Graph, n: &amp_device::ir::Node) -> Option<f32> {
    if !matches!(n.op, Op::Add(_)) || n.inputs.iter().all(|&t| g.tensors[t].is_const()) {
        return None;
    }
    n.inputs.iter().find_map(|&t| {
        let low = g.const_data(t)?.iter().copied().fold(0f32, f32::min);
        (low <= -FILL_MAGNITUDE).then_some(low)
    })
}

/// Says how each mask fill is calibrated (on a fresh calibration and on a cached one alike).
fn note_fills(graph: &Graph, fills: &[MaskFill]) {
    for f in fills {
        let name = &graph.tensors[f.at].name;
        progress::note(&format!(
            "attention mask \"{name}\" fills with {:e}: quantized, its masked scores saturate {MASKED_MARGIN} below the lowest calibrated score",
            f.value
        ));
    }
}

/// Loads the cached calibration for (model, data) from `dir`, or runs it and saves it there.
pub fn calibrate_cached(
    graph: Arc<Graph>,
    inputs: &Inputs,
    data_hash: &str,
    dir: &Path,
) -> Result<(Stats, PathBuf, bool)> {
    let model_hash = graph.hash();
    let path = dir.join(format!("calibration-{model_hash}-{data_hash}.json"));
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Ok(f) = serde_json::from_str::<CalibrationFile>(&text) {
            if f.model_hash == model_hash && f.data_hash == data_hash {
                note_fills(&graph, &mask_fills(&graph));
                return Ok((f.stats, path, true));
            }
        }
    }
    let stats = calibrate(graph, inputs, 32)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = CalibrationFile {
        model_hash,
        data_hash: data_hash.to_string(),
        samples: inputs.batch(),
        stats,
    };
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&file)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok((file.stats, path, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use amp_device::ir::{Add, Mul, Node, Relu, Softmax};

    fn node(g: &mut Graph, op: Op, inputs: Vec<TensorId>, shape: &[usize]) -> TensorId {
        let out = g.add_tensor(format!("t{}", g.tensors.len()), shape.to_vec(), None);
        g.nodes.push(Node {
            name: format!("n{}", g.nodes.len()),
            op,
            inputs,
            output: out,
        });
        out
    }

    /// The lane-wise fold is the sequential one: every length around the lane count, the extremes anywhere
    /// (in a lane, in the remainder), NaN skipped, empty giving (∞, −∞).
    #[test]
    fn min_max_is_the_fold() {
        let fold = |v: &[f32]| {
            v.iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| {
                    (lo.min(x), hi.max(x))
                })
        };
        for n in [0, 1, 15, 16, 17, 31, 33, 100] {
            for at in 0..n {
                let mut v: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
                v[at] = -7.5;
                v[n - 1 - at] = 9.25;
                if n > 2 {
                    v[(at + 1) % n] = f32::NAN;
                }
                assert_eq!(min_max(&v), fold(&v), "n {n}, extremes at {at}");
            }
        }
        assert_eq!(min_max(&[]), (f32::INFINITY, f32::NEG_INFINITY));
    }

    /// One mask added to the scores of two layers is one fill with both layers' scores; a huge constant whose
    /// product reaches no Softmax through an Add is not a fill, nor is a moderate one.
    #[test]
    fn a_fill_is_a_huge_constant_added_to_scores_a_softmax_reads() {
        let mut g = Graph::default();
        let (x, pad) = (
            g.add_tensor("x", vec![1, 4], None),
            g.add_tensor("pad", vec![1, 4], None),
        );
        g.inputs = vec![x, pad];
        let min = g.add_tensor("min", vec![], Some(vec![f32::MIN]));
        let mask = node(&mut g, Mul.into(), vec![pad, min], &[1, 4]);
        let softmax: Op = Softmax {
            axis: 1,
            log: false,
        }
        .into();
        let mut outs = Vec::new();
        let mut scores = Vec::new();
        for _ in 0..2 {
            let s = node(&mut g, Relu.into(), vec![x], &[1, 4]);
            let a = node(&mut g, Add.into(), vec![s, mask], &[1, 4]);
            outs.push(node(&mut g, softmax.clone(), vec![a], &[1, 4]));
            scores.push(s);
        }
        // not fills: a huge constant ending in a Relu, a moderate one before a Softmax
        let big = g.add_tensor("big", vec![], Some(vec![-1e6]));
        let m2 = node(&mut g, Mul.into(), vec![pad, big], &[1, 4]);
        let a2 = node(&mut g, Add.into(), vec![x, m2], &[1, 4]);
        outs.push(node(&mut g, Relu.into(), vec![a2], &[1, 4]));
        let small = g.add_tensor("small", vec![], Some(vec![-30.0]));
        let m3 = node(&mut g, Mul.into(), vec![pad, small], &[1, 4]);
        let a3 = node(&mut g, Add.into(), vec![x, m3], &[1, 4]);
        outs.push(node(&mut g, softmax, vec![a3], &[1, 4]));
        g.outputs = outs;
        let fills = mask_fills(&g);
        assert_eq!(
            fills,
            vec![MaskFill {
                at: mask,
                scores,
                value: f32::MIN
            }]
        );
    }

    /// A constant mask holding fills (a causal mask folded at import) added to the scores a Softmax reads is a
    /// fill of the sum itself; added to anything else, it is not.
    #[test]
    fn a_constant_mask_added_to_scores_is_a_fill_of_the_sum() {
        let mut g = Graph::default();
        let x = g.add_tensor("x", vec![2, 2], None);
        g.inputs = vec![x];
        let causal = vec![0.0, f32::MIN, 0.0, 0.0];
        let mask = g.add_tensor("causal", vec![2, 2], Some(causal));
        let s = node(&mut g, Add.into(), vec![x, mask], &[2, 2]);
        let softmax = Softmax {
            axis: 1,
            log: false,
        };
        let y = node(&mut g, softmax.into(), vec![s], &[2, 2]);
        let s2 = node(&mut g, Add.into(), vec![mask, x], &[2, 2]);
        let r = node(&mut g, Relu.into(), vec![s2], &[2, 2]);
        g.outputs = vec![y, r];
        assert_eq!(
            mask_fills(&g),
            vec![MaskFill {
                at: s,
                scores: Vec::new(),
                value: f32::MIN
            }]
        );
    }
}
