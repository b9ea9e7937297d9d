//! Execution backends. The reference backend (pure Rust, no unsafe) runs FP32 and quantized graphs on the
//! CPU; it is also the host's FP32 engine for calibration and the oracle the QNN backend is checked against.

pub mod qnn;
pub mod reference;
pub mod resume;

use std::sync::Arc;

use crate::error::EvalError;
use crate::ir::Graph;
use crate::quant::QuantPlan;
use qnn::{QnnModel, QnnRuntime};
use reference::Reference;

use serde::{Deserialize, Serialize};

/// A dense row-major f32 array; dimension 0 is the batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Array {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Array {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Array { shape, data }
    }
    pub fn zeros(shape: Vec<usize>) -> Array {
        let n = shape.iter().product();
        Array {
            shape,
            data: vec![0.0; n],
        }
    }
    pub fn batch(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }
    /// Elements per sample.
    pub fn sample_len(&self) -> usize {
        self.shape[1..].iter().product()
    }
    /// Arrays of the same sample shape joined along the batch axis.
    pub fn concat(parts: &[Array]) -> Array {
        let Some(first) = parts.first() else {
            return Array::new(vec![0], Vec::new());
        };
        let mut shape = first.shape.clone();
        shape[0] = parts.iter().map(|p| p.batch()).sum();
        Array {
            shape,
            data: parts.iter().flat_map(|p| p.data.iter().copied()).collect(),
        }
    }

    /// Samples `[start, end)` along the batch axis.
    pub fn slice_batch(&self, start: usize, end: usize) -> Array {
        let per = self.sample_len();
        let mut shape = self.shape.clone();
        shape[0] = end - start;
        Array {
            shape,
            data: self.data[start * per..end * per].to_vec(),
        }
    }
}

/// One array per model input, in the graph's input order, all with the same batch size.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Inputs(pub Vec<Array>);

impl Inputs {
    /// Samples in the batch (0 without inputs).
    pub fn batch(&self) -> usize {
        self.0.first().map_or(0, Array::batch)
    }

    /// Samples `[start, end)` of every input.
    pub fn slice_batch(&self, start: usize, end: usize) -> Inputs {
        Inputs(self.0.iter().map(|a| a.slice_batch(start, end)).collect())
    }
}

impl From<Array> for Inputs {
    fn from(a: Array) -> Inputs {
        Inputs(vec![a])
    }
}

impl std::ops::Deref for Inputs {
    type Target = [Array];
    fn deref(&self) -> &[Array] {
        &self.0
    }
}

/// Errors of graph execution.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("input {name} has shape {found:?}, the model expects {expected:?} (batch first)")]
    InputShape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{op} \"{node}\": {msg}")]
    Node {
        node: String,
        op: &'static str,
        msg: String,
    },
    #[error("the model has {model} inputs but {given} arrays were given")]
    Inputs { model: usize, given: usize },
    #[error("input {name} has {found} samples, the first input {first}")]
    Batch {
        name: String,
        first: usize,
        found: usize,
    },
}

/// Checks `x` against the graph's inputs: one array per input, each of the input's per-sample shape, all
/// with the same batch.
pub fn check_inputs(g: &Graph, x: &[Array]) -> Result<(), ExecError> {
    if x.len() != g.inputs.len() {
        return Err(ExecError::Inputs {
            model: g.inputs.len(),
            given: x.len(),
        });
    }
    let first = x.first().map_or(0, Array::batch);
    for (&t, a) in g.inputs.iter().zip(x) {
        let (name, expected) = (&g.tensors[t].name, &g.tensors[t].shape);
        if a.shape.len() != expected.len() || a.shape[1..] != expected[1..] {
            return Err(ExecError::InputShape {
                name: name.clone(),
                expected: expected.clone(),
                found: a.shape.clone(),
            });
        }
        if a.batch() != first {
            return Err(ExecError::Batch {
                name: name.clone(),
                first,
                found: a.batch(),
            });
        }
    }
    Ok(())
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
    Ref(Box<Reference>),
    Htp(Box<QnnModel>),
}

impl Prepared {
    /// The backend's own execute time of the last batch run (QNN's profile), if it reports one.
    pub fn last_execute_us(&self) -> Option<f64> {
        match self {
            Prepared::Ref(_) => None,
            Prepared::Htp(m) => m.last_execute_us.map(|u| u as f64),
        }
    }

    pub fn run(&mut self, x: &[Array]) -> anyhow::Result<Vec<Array>> {
        Ok(match self {
            Prepared::Ref(r) => r.run(x)?,
            Prepared::Htp(m) => m.run(x).map_err(EvalError::from)?,
        })
    }

    /// The batch a run of many samples in batches of `batch` takes: on the reference backend no more samples
    /// than [`Reference::batch_cap`] keeps its largest activation small (the same outputs: samples are
    /// independent), on HTP the graph's batch.
    pub fn batch_for(&self, batch: usize) -> usize {
        match self {
            Prepared::Ref(r) => batch.clamp(1, r.batch_cap()),
            Prepared::Htp(_) => batch.max(1),
        }
    }

    /// Runs all of `x` in batches of `batch` (as [`Prepared::batch_for`] takes it), calling `each(samples)`
    /// after each batch: one array per model output, every sample.
    pub fn run_batched(
        &mut self,
        x: &Inputs,
        batch: usize,
        each: impl FnMut(usize),
    ) -> anyhow::Result<Vec<Array>> {
        self.run_samples(x, 0..x.batch(), batch, each)
    }

    /// [`Prepared::run_batched`] on samples `samples` of `x`: only a batch at a time is copied out of it.
    pub fn run_samples(
        &mut self,
        x: &Inputs,
        samples: std::ops::Range<usize>,
        batch: usize,
        mut each: impl FnMut(usize),
    ) -> anyhow::Result<Vec<Array>> {
        let batch = self.batch_for(batch);
        let mut parts: Vec<Vec<Array>> = Vec::new();
        for s in samples.clone().step_by(batch) {
            let e = (s + batch).min(samples.end);
            let outs = self.run(&x.slice_batch(s, e))?;
            parts.resize_with(outs.len(), Vec::new);
            for (p, o) in parts.iter_mut().zip(outs) {
                p.push(o);
            }
            each(e - s);
        }
        Ok(parts.iter().map(|p| Array::concat(p)).collect())
    }
}

/// Prepares `graph` at `plan` (None: FP32, always on the reference backend) for `backend`.
pub fn prepare(
    backend: &EvalBackend,
    graph: &Arc<Graph>,
    plan: Option<QuantPlan>,
    batch: usize,
) -> anyhow::Result<Prepared> {
    Ok(match (backend, plan) {
        (EvalBackend::Htp(rt), Some(plan)) => Prepared::Htp(Box::new(
            QnnModel::build(rt, graph, &plan, batch).map_err(EvalError::from)?,
        )),
        (_, plan) => Prepared::Ref(Box::new(Reference::new(graph.clone(), plan)?)),
    })
}

/// Latency of one batch: order statistics in µs, and where the times come from.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Latency {
    pub min_us: f64,
    pub median_us: f64,
    pub p90_us: f64,
    pub max_us: f64,
    /// "qnn-profile" (the backend's execute time) or "wall-clock" (around the run call).
    pub source: String,
}

/// Runs `x` through `model` `iterations` times after `warmup` and reports the latency, from the backend's
/// profile where it has one, else from the wall clock.
pub fn measure_latency(
    model: &mut Prepared,
    x: &[Array],
    warmup: usize,
    iterations: usize,
) -> anyhow::Result<Latency> {
    let mut times = Vec::new();
    let mut source = "qnn-profile";
    for i in 0..warmup + iterations.max(1) {
        let t = std::time::Instant::now();
        model.run(x)?;
        let wall = t.elapsed().as_secs_f64() * 1e6;
        if i >= warmup {
            times.push(match model.last_execute_us() {
                Some(us) => us,
                None => {
                    source = "wall-clock";
                    wall
                }
            });
        }
    }
    times.sort_by(f64::total_cmp);
    let q = |f: f64| times[((times.len() - 1) as f64 * f).round() as usize];
    Ok(Latency {
        min_us: times[0],
        median_us: q(0.5),
        p90_us: q(0.9),
        max_us: times[times.len() - 1],
        source: source.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Node, Op, Relu};

    /// A model whose one activation is larger per sample than the reference takes in a batch runs one
    /// sample at a time whatever batch is asked, with the outputs of one run over them all.
    #[test]
    fn the_reference_runs_large_activations_in_small_batches() {
        let mut g = Graph::default();
        let side = 2400;
        let x = g.add_tensor("x", vec![1, 1, side, side], None);
        let y = g.add_tensor("y", vec![1, 1, side, side], None);
        g.nodes.push(Node {
            name: "relu".into(),
            op: Op::Relu(Relu),
            inputs: vec![x],
            output: y,
        });
        (g.inputs, g.outputs) = (vec![x], vec![y]);
        let g = Arc::new(g);
        let r = Reference::new(g.clone(), None).unwrap();
        assert_eq!(r.batch_cap(), 1);
        let n = 3;
        let data: Vec<f32> = (0..n * side * side).map(|i| (i % 7) as f32 - 3.0).collect();
        let xs = Inputs(vec![Array::new(vec![n, 1, side, side], data)]);
        let whole = r.run(&xs.0).unwrap();
        let mut model = Prepared::Ref(Box::new(r));
        assert_eq!(model.batch_for(32), 1);
        let mut sizes = Vec::new();
        let got = model.run_batched(&xs, 32, |s| sizes.push(s)).unwrap();
        assert_eq!(sizes, vec![1; n]);
        assert_eq!(got[0].shape, whole[0].shape);
        assert!(got[0].data == whole[0].data);
    }
}
