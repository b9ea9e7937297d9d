//! The reference backend against onnxruntime on one-op models (`scripts/make_op_fixtures.py`): FP32 outputs,
//! and the outputs of QDQ models built with the same calibration statistics and encoding rules, at every
//! uniform precision.

mod common;
use common::{fixture_failures, fixture_in, op_fixtures};

#[test]
fn every_op_fixture_matches_onnxruntime() {
    let cases = op_fixtures();
    assert!(
        !cases.is_empty(),
        "no fixtures: run scripts/make_op_fixtures.py"
    );
    let mut failures = Vec::new();
    for (name, dir) in cases {
        failures.extend(fixture_failures(&name, &dir, &dir.join("model.onnx"), 1.0));
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The LayerNorm exporters decompose (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add) imports as
/// one LayerNorm, gamma and beta included, as QNN's converter fuses it.
#[test]
fn a_decomposed_layer_norm_imports_as_one_op() {
    let dir = common::root().join("tests/fixtures/ops/layer_norm_decomposed");
    let (g, _, _) = fixture_in(&dir, &dir.join("model.onnx"));
    let ops: Vec<&str> = g.nodes.iter().map(|n| n.op.name()).collect();
    assert_eq!(ops, ["LayerNorm"], "{ops:?}");
    assert!(
        matches!(&g.nodes[0].op, amp_device::ir::Op::LayerNorm(l) if l.axis == 2 && l.epsilon == 1e-5),
        "{:?}",
        g.nodes[0].op
    );
}

/// The exact Gelu exporters decompose (Div √2, Erf, Add 1, Mul x, Mul ½) imports as one Gelu, as QNN's
/// converter fuses it: HTP has Gelu but no Erf, so a transformer's feed-forward runs there.
#[test]
fn a_decomposed_gelu_imports_as_one_op() {
    let dir = common::root().join("tests/fixtures/ops/gelu_erf");
    let (g, _, _) = fixture_in(&dir, &dir.join("model.onnx"));
    let ops: Vec<&str> = g.nodes.iter().map(|n| n.op.name()).collect();
    assert_eq!(ops, ["Gelu"], "{ops:?}");
    assert_eq!(
        g.nodes[0].op,
        amp_device::ir::Op::Gelu(amp_device::ir::Gelu { tanh: false })
    );
}
