//! Conformance: the reference backend against Qualcomm's HTP (x86_64 emulation of libQnnHtp.so, arch v73)
//! on every example at each uniform precision and on a mixed config, per output element in LSB and in
//! top-1. Fails, not skips, when the library is missing (`scripts/fetch-qnn-runtime.sh`).

use std::sync::Arc;

use amp_device::backend::qnn::{QnnModel, QnnRuntime};
use amp_device::backend::reference::Reference;
use amp_device::backend::{Array, Inputs};
use amp_device::quant::{BitPlan, Precision, QuantPlan};
use amp_host::amp::groups::Groups;

mod common;
use common::{fixture, root, runtime, top1_agreement};

/// (fraction of elements within 1 LSB, max LSB, top-1 agreement)
fn compare(a: &Array, b: &Array, scale: f32) -> (f64, f64, f64) {
    let lsb: Vec<f64> = a
        .data
        .iter()
        .zip(&b.data)
        // whole codes: both are on the output grid up to f32 rounding
        .map(|(x, y)| {
            ((*x as f64 / scale as f64).round() - (*y as f64 / scale as f64).round()).abs()
        })
        .collect();
    let within = lsb.iter().filter(|&&d| d <= 1.0).count() as f64 / lsb.len() as f64;
    let agree = top1_agreement(a, b);
    (within, lsb.iter().cloned().fold(0.0, f64::max), agree)
}

fn check(
    rt: &QnnRuntime,
    name: &str,
    label: &str,
    g: &Arc<amp_device::Graph>,
    inputs: &Inputs,
    plan: QuantPlan,
) -> (f64, f64, f64) {
    let scale = plan.encodings[g.outputs[0]].unwrap().scale;
    let reference = Reference::new(g.clone(), Some(plan.clone()))
        .unwrap()
        .run(inputs)
        .unwrap()
        .remove(0);
    let mut m = QnnModel::build(rt, g, &plan, 16).unwrap_or_else(|e| panic!("{name} {label}: {e}"));
    let htp = m.run(inputs).unwrap().remove(0);
    let (within, max, agree) = compare(&reference, &htp, scale);
    println!(
        "{name} {label}: {:.2}% of outputs within 1 LSB, max {max:.0} LSB, top-1 agreement {:.1}%",
        within * 100.0,
        agree * 100.0
    );
    (within, max, agree)
}

/// Every example at each uniform precision and a mixed config, on the real HTP library. HTP's 8-bit
/// Conv/FC requantization is itself off by 1 LSB on 1–3% of elements (the exact value lies within 0.06 LSB
/// of a rounding boundary in every such case: see the one-op suite), and a model amplifies that wherever a
/// tensor feeds one with a much finer encoding (textori's HardSwish: Conv → Add 3 → Clip(0, 6)). So what is
/// asserted is what holds today, as bounds that catch a regression: top-1 agreement everywhere, and the
/// largest output difference per example and config. The figures are printed for the notes.
/// `digits_outlier`, whose per-channel weight scales span 300×, is run and printed but not bounded: there
/// HTP's second conv departs locally (tracked in the QNN issue).
#[test]
fn reference_agrees_with_htp_on_every_example() {
    let rt = runtime();
    println!("{}", rt.describe());
    for name in [
        "digits",
        "digits_outlier",
        "mnist_mbv",
        "textori",
        "digits_seg",
    ] {
        let (g, arrays, stats) = fixture(name);
        let inputs = common::fixture_inputs(&g, &arrays);
        let mut rows = Vec::new();
        for p in [Precision::A8W8, Precision::A16W8, Precision::A16W16] {
            let plan = QuantPlan::new(&g, &stats, &BitPlan::uniform(&g, p)).unwrap();
            rows.push((
                p.to_string(),
                check(&rt, name, &p.to_string(), &g, &inputs, plan),
            ));
        }
        // mixed: alternate groups between a16w8 and a8w8, so Convert ops appear at every boundary
        let groups = Groups::new(&g);
        let cfg: Vec<Precision> = (0..groups.len())
            .map(|i| {
                if i % 2 == 0 {
                    Precision::A16W8
                } else {
                    Precision::A8W8
                }
            })
            .collect();
        let plan = QuantPlan::new(&g, &stats, &groups.bit_plan(&g, &cfg, true)).unwrap();
        rows.push(("mixed".into(), check(&rt, name, "mixed", &g, &inputs, plan)));
        if name == "digits_outlier" {
            continue;
        }
        for (label, (_, max, agree)) in &rows {
            let (bar, bound) = expected(name, label);
            assert!(
                *agree >= bar - 1e-9,
                "{name} {label}: top-1 agreement {agree} < {bar}"
            );
            assert!(*max <= bound, "{name} {label}: max {max} LSB > {bound}");
        }
    }
}

/// (least top-1 agreement, largest output difference in LSB of the output encoding) measured on the
/// fixtures with HTP v73 emulation.
fn expected(name: &str, label: &str) -> (f64, f64) {
    match (name, label) {
        ("digits", "a8w8" | "mixed") => (1.0, 1.0),
        ("digits", _) => (1.0, 2.0),
        ("mnist_mbv", "a8w8") => (1.0, 2.0),
        ("mnist_mbv", "a16w8") => (1.0, 14.0),
        ("mnist_mbv", "a16w16") => (1.0, 11.0),
        ("mnist_mbv", _) => (1.0, 677.0),
        // two of the 48 samples sit on the decision boundary at 8 bits
        ("textori", "a8w8") => (46.0 / 48.0, 85.0),
        ("textori", "a16w8") => (1.0, 169.0),
        ("textori", "a16w16") => (1.0, 446.0),
        ("textori", _) => (47.0 / 48.0, 13721.0),
        // agreement of every pixel's class. Mixed: an 8-bit tensor 1 LSB off (HTP's requantization step)
        // feeding a 16-bit conv moves its output by up to ~256 of the finer LSB; `amp-host trace` shows every
        // op alone within 3 LSB of HTP on its inputs
        ("digits_seg", "a8w8") => (0.995, 2.0),
        ("digits_seg", "a16w8") => (0.998, 7.0),
        ("digits_seg", "a16w16") => (0.998, 4.0),
        ("digits_seg", _) => (0.995, 350.0),
        _ => (0.995, 1.0),
    }
}

/// `amp-host trace`: every tensor QNN materialises is compared in node order. On digits at a8w8 each one
/// is within 1 LSB, as the outputs are. On digits_outlier (per-channel weight scales spanning 300×) the
/// trace puts the departure at the second conv, whose input still agrees within 1 LSB.
#[test]
fn trace_finds_where_htp_departs() {
    let rt = runtime();
    for (name, first_off) in [("digits", None), ("digits_outlier", Some(1))] {
        let (g, arrays, stats) = fixture(name);
        let inputs = common::fixture_inputs(&g, &arrays);
        let plan = QuantPlan::new(&g, &stats, &BitPlan::uniform(&g, Precision::A8W8)).unwrap();
        let x = inputs.slice_batch(0, 8);
        let diffs = amp_host::trace::trace(&rt, &g, &plan, &x).unwrap();
        let own = g
            .nodes
            .iter()
            .filter(|n| plan.roles[n.output] == amp_device::quant::Role::Own)
            .count();
        assert_eq!(
            diffs.len(),
            own,
            "{name}: one entry per materialised tensor"
        );
        for d in &diffs {
            println!(
                "{name}: {} {} max {:.2} LSB, {:.1}% within 1",
                d.node,
                d.op,
                d.max_lsb,
                d.within_1lsb * 100.0
            );
            assert!(!d.node.is_empty() && d.bits == 8);
        }
        let first = diffs
            .iter()
            .position(|d| d.max_lsb > amp_host::trace::WITHIN_1_LSB);
        assert_eq!(first, first_off, "{name}: first tensor over 1 LSB");
        if let Some(i) = first {
            assert!(diffs[..i]
                .iter()
                .all(|d| d.max_lsb <= amp_host::trace::WITHIN_1_LSB));
        }
        // the traced graph's last tensor is the model output
        assert_eq!(diffs.last().unwrap().tensor, g.tensors[g.outputs[0]].name);
    }
}

/// The `trace` command end to end: JSON with one entry per materialised tensor; FP32 is refused with a
/// clear error.
#[test]
fn trace_command_reports_every_tensor() {
    let cache = tempfile::tempdir().unwrap();
    let run = |precision: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_amp-host"))
            .args(["trace", "--model"])
            .arg(root().join("examples/digits/model.onnx"))
            .arg("--data")
            .arg(root().join("examples/digits/val.npz"))
            .args(["--precision", precision, "--json", "--qnn-lib"])
            .arg(root().join("qnn-runtime/lib"))
            .arg("--cache")
            .arg(cache.path())
            .output()
            .unwrap()
    };
    let out = run("a8w8");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tensors"].as_array().unwrap().len(), 3);
    assert_eq!(v["samples"], 8);
    assert!(v["tensors"][0]["max_lsb"].as_f64().unwrap() <= 1.01);
    let bad = run("fp32");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("quantized"), "{err}");
}
