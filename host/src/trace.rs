//! Layer-by-layer comparison of the reference backend against QNN on one config: the QNN graph is built
//! with every tensor QNN materialises also marked as a graph output, both backends run the same samples,
//! and each tensor is compared in LSB of its own encoding. The first tensor that differs by more than
//! 1 LSB is where the device starts to depart from the simulation.
//!
//! Marking a tensor as an output keeps it in memory; an HTP optimisation that would have fused across it
//! cannot, so the traced graph's final outputs can differ slightly from the untraced graph's.

use std::sync::Arc;

use amp_device::backend::qnn::{QnnModel, QnnRuntime};
use amp_device::backend::reference::Reference;
use amp_device::backend::Array;
use amp_device::quant::{QuantPlan, Role};
use amp_device::Graph;
use anyhow::{Context, Result};
use serde::Serialize;

/// "Within 1 LSB", allowing for the float error of comparing dequantized values (up to ~0.004 LSB on a
/// 16-bit range).
pub const WITHIN_1_LSB: f64 = 1.01;

/// One materialised tensor, reference against QNN.
#[derive(Clone, Debug, Serialize)]
pub struct TensorDiff {
    /// The node that produces the tensor.
    pub node: String,
    pub op: &'static str,
    pub tensor: String,
    pub bits: u8,
    /// Largest |reference − QNN| over the tensor, in LSB of its encoding.
    pub max_lsb: f64,
    /// Mean |reference − QNN| in LSB.
    pub mean_lsb: f64,
    /// Fraction of elements within 1 LSB.
    pub within_1lsb: f64,
}

/// Compares every tensor of `graph` that has its own encoding under `plan`, in node order, on the samples
/// of `x` (all in one QNN batch).
pub fn trace(
    rt: &QnnRuntime,
    graph: &Arc<Graph>,
    plan: &QuantPlan,
    x: &Array,
) -> Result<Vec<TensorDiff>> {
    let traced: Vec<usize> = graph
        .nodes
        .iter()
        .map(|n| n.output)
        .filter(|&t| plan.roles[t] == Role::Own && plan.encodings[t].is_some())
        .collect();
    let mut g2 = (**graph).clone();
    g2.outputs = traced.clone();
    let mut htp = QnnModel::build(rt, &g2, plan, x.batch())
        .context("building the traced QNN graph (every materialised tensor an output)")?;
    let device = htp.run(x).context("running the traced QNN graph")?;
    let mut reference: Vec<Option<Array>> = vec![None; graph.tensors.len()];
    Reference::new(graph.clone(), Some(plan.clone()))?.run_observed(x, |t, a| {
        reference[t] = Some(a.clone());
    })?;
    let producer = graph.producers();
    let mut out = Vec::new();
    for (&t, dev) in traced.iter().zip(&device) {
        let Some(want) = &reference[t] else {
            continue;
        };
        let e = plan.encodings[t].expect("traced tensors have encodings");
        let n = &graph.nodes[producer[t].expect("traced tensors are node outputs")];
        let lsb: Vec<f64> = want
            .data
            .iter()
            .zip(&dev.data)
            .map(|(a, b)| ((a - b) as f64 / e.scale as f64).abs())
            .collect();
        let len = lsb.len().max(1) as f64;
        out.push(TensorDiff {
            node: n.name.clone(),
            op: n.op.name(),
            tensor: graph.tensors[t].name.clone(),
            bits: e.bits,
            max_lsb: lsb.iter().cloned().fold(0.0, f64::max),
            mean_lsb: lsb.iter().sum::<f64>() / len,
            within_1lsb: lsb.iter().filter(|&&d| d <= WITHIN_1_LSB).count() as f64 / len,
        });
    }
    Ok(out)
}
