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

/// The patterns exporters decompose one op into import as that one op, as QNN's converter fuses them: the
/// LayerNorm (ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add; gamma and beta included) and the
/// exact Gelu (Div √2, Erf, Add 1, Mul x, Mul ½: HTP has Gelu but no Erf, so a transformer's feed-forward
/// runs there).
#[test]
fn decomposed_layer_norm_and_gelu_import_as_one_op() {
    use amp_device::ir::{Gelu, Op};
    type IsFused = fn(&Op) -> bool;
    let fused: [(&str, IsFused); 2] = [
        (
            "layer_norm_decomposed",
            |op| matches!(op, Op::LayerNorm(l) if l.axis == 2 && l.epsilon == 1e-5),
        ),
        ("gelu_erf", |op| *op == Op::Gelu(Gelu { tanh: false })),
    ];
    for (name, is_fused) in fused {
        let dir = common::root().join("tests/fixtures/ops").join(name);
        let (g, _, _) = fixture_in(&dir, &dir.join("model.onnx"));
        let ops: Vec<&Op> = g.nodes.iter().map(|n| &n.op).collect();
        assert!(ops.len() == 1 && is_fused(ops[0]), "{name}: {ops:?}");
    }
}
