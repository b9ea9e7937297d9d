//! The reference backend against onnxruntime on one-op models (`scripts/make_op_fixtures.py`): FP32 outputs,
//! and the outputs of QDQ models built with the same calibration statistics and encoding rules, at every
//! uniform precision.

use amp_device::backend::reference::Reference;
use amp_device::quant::{BitPlan, Precision, QuantPlan};

mod common;
use common::{fixture_in, lsb_apart, op_fixtures};

#[test]
fn every_op_fixture_matches_onnxruntime() {
    let cases = op_fixtures();
    assert!(
        !cases.is_empty(),
        "no fixtures: run scripts/make_op_fixtures.py"
    );
    let mut failures = Vec::new();
    for (name, dir) in cases {
        let (g, arrays, stats) = fixture_in(&dir, &dir.join("model.onnx"));
        let x = &arrays["inputs"];
        let fp32 = Reference::new(g.clone(), None)
            .unwrap()
            .run(x)
            .unwrap()
            .remove(0);
        let want = &arrays["fp32"];
        let range = want.data.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        let diff = fp32
            .data
            .iter()
            .zip(&want.data)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        println!("{name} fp32: max |diff| {:.2e} of the range", diff / range);
        if diff > 1e-4 * range {
            failures.push(format!("{name} fp32: max |diff| {diff} of range {range}"));
        }
        for p in Precision::ALL {
            let plan = QuantPlan::new(&g, &stats, &BitPlan::uniform(&g, p)).unwrap();
            let scale = plan.encodings[g.outputs[0]].unwrap().scale;
            let out = Reference::new(g.clone(), Some(plan))
                .unwrap()
                .run(x)
                .unwrap()
                .remove(0);
            let (max, within) = lsb_apart(&out, &arrays[&format!("qdq_{p}")], scale);
            println!(
                "{name} {p}: max {max} LSB, {:.2}% within 1 LSB",
                within * 100.0
            );
            if max > 1.0 {
                failures.push(format!("{name} {p}: max {max} LSB"));
            }
        }
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
