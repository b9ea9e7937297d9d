//! Execution backends. The reference backend (pure Rust, no unsafe) runs FP32 and quantized graphs on the
//! CPU; it is also the host's FP32 engine for calibration and the oracle the QNN backend is checked against.

pub mod qnn;
pub mod reference;

use std::sync::Arc;

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

/// Errors of graph execution.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("input has shape {found:?}, the model expects {expected:?} (batch first)")]
    InputShape {
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{op} \"{node}\": {msg}")]
    Node {
        node: String,
        op: &'static str,
        msg: String,
    },
    #[error("the model has {0} inputs; amp handles single-input models")]
    Inputs(usize),
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
    pub fn run(&mut self, x: &Array) -> anyhow::Result<Vec<Array>> {
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
) -> anyhow::Result<Prepared> {
    Ok(match (backend, plan) {
        (EvalBackend::Htp(rt), Some(plan)) => {
            Prepared::Htp(Box::new(QnnModel::build(rt, graph, &plan, batch)?))
        }
        (_, plan) => Prepared::Ref(Reference::new(graph.clone(), plan)?),
    })
}
