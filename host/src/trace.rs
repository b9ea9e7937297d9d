//! Layer-by-layer comparison of the reference backend against QNN on one config: the QNN graph is built
//! with every tensor QNN materialises also marked as a graph output, both backends run the same samples,
//! and each tensor is compared in LSB of its own encoding, twice: as both backends computed the whole graph
//! (what reaches the tensor from upstream included), and locally, the reference running only the op that
//! produces the tensor on QNN's own values of its inputs (what that op adds). The first tensor that
//! differs by more than 1 LSB is where the device starts to depart from the simulation.
//!
//! Marking a tensor as an output keeps it in memory; an HTP optimisation that would have fused across it
//! cannot, so the traced graph's final outputs can differ slightly from the untraced graph's.

use std::sync::Arc;

use amp_device::backend::qnn::{QnnModel, QnnRuntime};
use amp_device::backend::reference::Reference;
use amp_device::backend::{Array, Inputs};
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
    /// Largest difference, in LSB, between QNN's tensor and the reference's op run on QNN's own inputs.
    pub local_max_lsb: f64,
    /// Fraction of elements within 1 LSB of that.
    pub local_within_1lsb: f64,
}

/// (largest difference, mean difference, fraction within 1 LSB) of `a` against `b`, in LSB of `scale`.
fn lsb_apart(a: &Array, b: &Array, scale: f32) -> (f64, f64, f64) {
    let lsb: Vec<f64> = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| ((x - y) as f64 / scale as f64).abs())
        .collect();
    let len = lsb.len().max(1) as f64;
    (
        lsb.iter().cloned().fold(0.0, f64::max),
        lsb.iter().sum::<f64>() / len,
        lsb.iter().filter(|&&d| d <= WITHIN_1_LSB).count() as f64 / len,
    )
}

/// Compares every tensor of `graph` that has its own encoding under `plan`, in node order, on the samples
/// of `x` (all in one QNN batch).
pub fn trace(
    rt: &QnnRuntime,
    graph: &Arc<Graph>,
    plan: &QuantPlan,
    x: &Inputs,
) -> Result<Vec<TensorDiff>> {
    let own = |t: usize| plan.roles[t] == Role::Own && plan.encodings[t].is_some();
    let traced: Vec<usize> = graph
        .nodes
        .iter()
        .map(|n| n.output)
        .filter(|&t| own(t))
        .collect();
    // aliases (Reshape, MaxPool outputs) too: the ops that read them are run on QNN's values of them
    let materialised: Vec<usize> = graph
        .nodes
        .iter()
        .map(|n| n.output)
        .filter(|&t| own(t) || matches!(plan.roles[t], Role::Alias(_)))
        .collect();
    let mut g2 = (**graph).clone();
    g2.outputs = materialised.clone();
    let mut htp = QnnModel::build(rt, &g2, plan, x.batch())
        .context("building the traced QNN graph (every materialised tensor an output)")?;
    let values = htp.run(x).context("running the traced QNN graph")?;
    let mut device: Vec<Option<Array>> = vec![None; graph.tensors.len()];
    for (&t, v) in materialised.iter().zip(values) {
        device[t] = Some(v);
    }
    let mut reference: Vec<Option<Array>> = vec![None; graph.tensors.len()];
    let sim = Reference::new(graph.clone(), Some(plan.clone()))?;
    sim.run_observed(x, |t, a| {
        reference[t] = Some(a.clone());
    })?;
    // the graph inputs are quantized alike on both sides; booleans (not read back from QNN) are the
    // reference's, so a departure in one shows at the op reading it
    let feed = |t: usize| {
        if graph.inputs.contains(&t) || plan.roles[t] == Role::Int {
            reference[t].clone()
        } else {
            device[t].clone()
        }
    };
    let producer = graph.producers();
    let mut out = Vec::new();
    for &t in &traced {
        let (Some(want), Some(dev)) = (&reference[t], &device[t]) else {
            continue;
        };
        let e = plan.encodings[t].expect("traced tensors have encodings");
        let n = &graph.nodes[producer[t].expect("traced tensors are node outputs")];
        let (max_lsb, mean_lsb, within_1lsb) = lsb_apart(want, dev, e.scale);
        let local = sim.run_producer_of(t, &feed).with_context(|| {
            format!(
                "running the op that produces \"{}\" alone",
                graph.tensors[t].name
            )
        })?;
        let (local_max_lsb, _, local_within_1lsb) = lsb_apart(&local, dev, e.scale);
        out.push(TensorDiff {
            node: n.name.clone(),
            op: n.op.name(),
            tensor: graph.tensors[t].name.clone(),
            bits: e.bits,
            max_lsb,
            mean_lsb,
            within_1lsb,
            local_max_lsb,
            local_within_1lsb,
        });
    }
    Ok(out)
}
