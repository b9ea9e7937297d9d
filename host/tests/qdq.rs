//! The QDQ export as users deploy it: `amp-host export --format qdq`, then onnxruntime on the CPU and with
//! the QNN execution provider on HTP (onnxruntime-qnn's libQnnHtp.so, x86_64 emulation; CPU fallback
//! disabled, so every node runs on HTP), against amp's own reference and HTP measurements of the same
//! config. Needs scripts/fetch-qnn-runtime.sh and scripts/python-env.sh (scripts/test.sh runs both).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use amp_device::backend::qnn::QnnModel;
use amp_device::backend::reference::Reference;
use amp_device::backend::{Array, Inputs};
use amp_device::ir::Graph;
use amp_device::quant::{BitPlan, Precision, QuantPlan};
use amp_host::amp::qdq::{to_qdq, QDQ16_OPSET};

mod common;
use common::{amp_cmd, amp_in, example, python, root, tune};

/// Runs `model` on `data` in onnxruntime on `ep` (cpu or qnn); the script's report and the outputs file.
fn ort(model: &Path, data: &Path, ep: &str, out: &Path) -> serde_json::Value {
    try_ort(model, data, ep, out).unwrap_or_else(|err| panic!("{} on {ep}: {err}", model.display()))
}

/// [`ort`], with the script's standard error when it fails.
fn try_ort(model: &Path, data: &Path, ep: &str, out: &Path) -> Result<serde_json::Value, String> {
    let o = Command::new(python())
        .arg(root().join("scripts/run_qdq.py"))
        .args([model, data, out])
        .args(["--ep", ep])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() {
        let tail: Vec<&str> = err.lines().rev().take(3).collect();
        return Err(tail.into_iter().rev().collect::<Vec<_>>().join(" | "));
    }
    let text = String::from_utf8_lossy(&o.stdout);
    Ok(serde_json::from_str(text.lines().last().unwrap_or("")).unwrap())
}

fn export_uniform(name: &str, p: Precision, out: &Path) {
    let (model, data) = example(name);
    let mut c = amp_cmd();
    c.args([
        "--quiet", "export", "--format", "qdq", "--model", &model, "--data", &data,
    ])
    .args(["--precision", &p.to_string(), "--out"])
    .arg(out);
    amp_in(&mut c);
}

/// `arrays` written, each under its name, to an `.npz` at `path`.
fn named_npz(path: &Path, arrays: &[(&str, &Array)]) -> PathBuf {
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(path).unwrap());
    for (name, a) in arrays {
        let arr = ndarray::ArrayD::from_shape_vec(a.shape.clone(), a.data.clone()).unwrap();
        npz.add_array(*name, &arr).unwrap();
    }
    npz.finish().unwrap();
    path.to_path_buf()
}

fn score(v: &serde_json::Value) -> f64 {
    v["score"].as_f64().unwrap()
}

/// Every example at every uniform precision: onnxruntime's CPU gives amp's reference top-1 and the QNN
/// execution provider amp's HTP top-1, within half a point, except where measured otherwise below.
#[test]
fn uniform_qdq_models_score_as_amp_measured_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for name in ["digits", "digits_outlier", "mnist_mbv", "textori"] {
        let (_, data) = example(name);
        for p in Precision::ALL {
            let file = dir.path().join(format!("{name}.{p}.qdq.onnx"));
            export_uniform(name, p, &file);
            let outs = dir.path().join("out.npz");
            let data_p = PathBuf::from(&data);
            let cpu = ort(&file, &data_p, "cpu", &outs)["top1"].as_f64().unwrap();
            let eval = |backend: &str| {
                let p = p.to_string();
                score(&common::eval(
                    name,
                    &["--quiet", "--precision", &p, "--backend", backend],
                ))
            };
            let reference = eval("ref");
            println!("{name:<15} {p:<7} amp ref {reference:.4}  onnxruntime CPU {cpu:.4}");
            if (cpu - reference).abs() > 0.005 {
                failures.push(format!("{name} {p}: CPU {cpu} vs reference {reference}"));
            }
            // 53 emulated 16 × 16-bit convolutions per sample: 13 minutes of CPU for textori's 120 samples
            // through the QNN EP, too long for CI (measured once: see the README)
            if name == "textori" && p == Precision::A16W16 {
                continue;
            }
            let qnn = ort(&file, &data_p, "qnn", &outs);
            assert_eq!(qnn["provider"], "QNNExecutionProvider");
            let qnn = qnn["top1"].as_f64().unwrap();
            let htp = eval("htp");
            println!("{name:<15} {p:<7} amp HTP {htp:.4}  QNN EP {qnn:.4}");
            // Measured: textori at a8w8 gives 0.9833 through the QNN EP and 0.9583 through amp's own QNN
            // graph, on the same libQnnHtp.so: the EP lowers its ops differently (three of 120 samples near
            // the decision boundary of an 8-bit model that already loses 3 points). Every other case agrees.
            let bound = if name == "textori" && p == Precision::A8W8 {
                0.03
            } else {
                0.005
            };
            if (qnn - htp).abs() > bound {
                failures.push(format!("{name} {p}: QNN EP {qnn} vs amp's HTP {htp}"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A tuned mixed config: the QDQ export carries the width changes (a Q/DQ pair at the other width where a
/// tensor is read wider than it is written) and scores as amp's reference and HTP score that config.
#[test]
fn a_tuned_mixed_config_exports_with_its_conversions() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let name = "digits_outlier";
    let r = tune(
        name,
        &results,
        &["--allowed-drop", "0.01", "--verify-on", "none"],
    );
    let chosen = r["chosen"]["config"].as_array().unwrap().clone();
    let mixed = chosen.iter().any(|c| c != &chosen[0]);
    assert!(mixed, "expected a mixed choice, got {chosen:?}");
    let qdq = dir.path().join("chosen.qdq.onnx");
    let enc = dir.path().join("chosen.encodings");
    common::export(&results, &qdq, &["--format", "qdq"]);
    common::export(&results, &enc, &[]);
    let (_, data) = example(name);
    let outs = dir.path().join("out.npz");
    let cpu = ort(&qdq, Path::new(&data), "cpu", &outs)["top1"]
        .as_f64()
        .unwrap();
    let qnn = ort(&qdq, Path::new(&data), "qnn", &outs)["top1"]
        .as_f64()
        .unwrap();
    let reference = score(&common::eval_encodings(name, &enc, &["--quiet"]));
    let htp = score(&common::eval_encodings(
        name,
        &enc,
        &["--quiet", "--backend", "htp"],
    ));
    println!("{name} chosen {chosen:?}: ref {reference} CPU {cpu}; HTP {htp} QNN EP {qnn}");
    assert!(
        (cpu - reference).abs() <= 0.005,
        "CPU {cpu} vs reference {reference}"
    );
    assert!(
        (qnn - htp).abs() <= 0.005,
        "QNN EP {qnn} vs amp's HTP {htp}"
    );
    // the conversions: some tensor is re-quantized at another width for its reader or writer
    let text = String::from_utf8_lossy(&std::fs::read(&qdq).unwrap()).into_owned();
    assert!(
        text.contains("/as16") || text.contains("/at16"),
        "no width change in the mixed export"
    );
}

/// A Conv whose bias overflows int32 at a16w16 exports the raised weight scales and its int32 bias, and
/// onnxruntime (CPU and QNN EP) computes what amp's reference computes.
#[test]
fn a_conv_whose_bias_overflows_int32_exports_and_runs_in_onnxruntime() {
    let (g, xs, stats) = common::overflowing_bias_conv();
    let (batch, y) = (xs.shape[0], g.outputs[0]);
    let plan = QuantPlan::new(&g, &stats, &BitPlan::uniform(&g, Precision::A16W16)).unwrap();
    assert!(plan.bias_raise.channels >= 4, "{:?}", plan.bias_raise);
    let reference = Reference::new(g.clone(), Some(plan.clone()))
        .unwrap()
        .run(std::slice::from_ref(&xs))
        .unwrap()
        .remove(0);
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("conv.qdq.onnx");
    std::fs::write(&model, to_qdq(&g, &plan, QDQ16_OPSET, batch).unwrap()).unwrap();
    let inputs = dir.path().join("inputs.npz");
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(&inputs).unwrap());
    let arr = ndarray::ArrayD::from_shape_vec(xs.shape.clone(), xs.data.clone()).unwrap();
    npz.add_array("inputs", &arr).unwrap();
    npz.finish().unwrap();
    let scale = plan.encodings[y].unwrap().scale;
    for ep in ["cpu", "qnn"] {
        let out = dir.path().join(format!("{ep}.npz"));
        ort(&model, &inputs, ep, &out);
        let mut r = ndarray_npy::NpzReader::new(std::fs::File::open(&out).unwrap()).unwrap();
        let got: ndarray::ArrayD<f32> = r.by_name("y").unwrap();
        let got = Array::new(got.shape().to_vec(), got.iter().copied().collect());
        let (max, within) = common::lsb_apart(&reference, &got, scale);
        println!("{ep}: max {max} LSB of 16 bits from the reference, {within:.4} within 1");
        // HTP's 16-bit Conv requantization departs by up to 2 LSB (qnn_ops)
        assert!(max <= 2.0, "{ep}: {max} LSB from the reference");
    }
}

/// The segmenter by its own metric (mIoU, examples/metrics/miou.py on the outputs): onnxruntime's CPU
/// gives amp's reference mIoU and the QNN EP amp's HTP mIoU, within 0.005.
#[test]
fn the_segmenter_qdq_model_scores_its_miou_as_amp_measured() {
    let dir = tempfile::tempdir().unwrap();
    let name = "digits_seg";
    let (_, data) = example(name);
    let masks = root().join("examples/digits_seg/masks.npz");
    let script = root().join("examples/metrics/miou.py");
    let miou_cmd = format!(
        "{} {} --masks {}",
        python(),
        script.display(),
        masks.display()
    );
    let miou = |outputs: &Path| {
        let o = Command::new(python())
            .arg(&script)
            .arg("--masks")
            .arg(&masks)
            .arg(outputs)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        text.lines().last().unwrap().trim().parse::<f64>().unwrap()
    };
    for p in [Precision::A8W8, Precision::A16W16] {
        let file = dir.path().join(format!("{p}.qdq.onnx"));
        export_uniform(name, p, &file);
        let (cpu_out, qnn_out) = (dir.path().join("cpu.npz"), dir.path().join("qnn.npz"));
        ort(&file, Path::new(&data), "cpu", &cpu_out);
        ort(&file, Path::new(&data), "qnn", &qnn_out);
        let (cpu, qnn) = (miou(&cpu_out), miou(&qnn_out));
        let eval = |backend: &str| {
            let p = p.to_string();
            let args = ["--quiet", "--precision", &p, "--backend", backend];
            score(&common::eval(
                name,
                &[&args[..], &["--metric-cmd", &miou_cmd]].concat(),
            ))
        };
        let (reference, htp) = (eval("ref"), eval("htp"));
        println!("{name} {p}: mIoU amp ref {reference:.4} CPU {cpu:.4}; amp HTP {htp:.4} QNN EP {qnn:.4}");
        assert!(
            (cpu - reference).abs() <= 0.005,
            "{p}: CPU {cpu} vs {reference}"
        );
        assert!((qnn - htp).abs() <= 0.005, "{p}: QNN EP {qnn} vs {htp}");
    }
}

/// Every one-op fixture (tests/fixtures/ops) exports at every uniform precision, and onnxruntime's CPU runs
/// the QDQ model within 1 LSB of amp's reference for the same plan: each op's ONNX form is the op amp ran.
#[test]
fn every_op_fixture_exports_a_qdq_model_onnxruntime_runs_as_amp_does() {
    let mut failures = Vec::new();
    each_fixture_export(|c| {
        let reference = Reference::new(c.g.clone(), Some(c.plan.clone()))
            .unwrap()
            .run(c.xs)
            .unwrap()
            .remove(0);
        let out = c.dir.join(format!("{}_{}.out.npz", c.name, c.p));
        ort(c.model, c.inputs, "cpu", &out);
        let (max, within) = c.lsb_apart(&reference, &out);
        println!(
            "{} {}: max {max} LSB, {:.2}% within 1",
            c.name,
            c.p,
            within * 100.0
        );
        if max > 1.0 {
            failures.push(format!("{} {}: max {max} LSB", c.name, c.p));
        }
    });
    assert!(failures.is_empty(), "{failures:#?}");
}

/// One op fixture at one uniform precision, its plan and its QDQ export.
struct FixtureExport<'a> {
    name: &'a str,
    dir: &'a Path,
    g: &'a Arc<Graph>,
    xs: &'a Inputs,
    inputs: &'a Path,
    p: Precision,
    plan: &'a QuantPlan,
    model: &'a Path,
}

impl FixtureExport<'_> {
    /// How far the output onnxruntime wrote to `out` lies from `want`: max LSB and the share within 1.
    fn lsb_apart(&self, want: &Array, out: &Path) -> (f64, f64) {
        let y = self.g.outputs[0];
        let mut r = ndarray_npy::NpzReader::new(std::fs::File::open(out).unwrap()).unwrap();
        let got: ndarray::ArrayD<f32> = r.by_name(&self.g.tensors[y].name).unwrap();
        let got = Array::new(got.shape().to_vec(), got.iter().copied().collect());
        common::lsb_apart(want, &got, self.plan.encodings[y].unwrap().scale)
    }
}

/// `f` on every one-op fixture (tests/fixtures/ops) at every uniform precision, its QDQ export written.
fn each_fixture_export(mut f: impl FnMut(FixtureExport)) {
    let dir = tempfile::tempdir().unwrap();
    let cases = common::op_fixtures();
    assert!(cases.len() >= 10, "{} op fixtures", cases.len());
    for (name, fx) in cases {
        let (g, arrays, stats) = common::fixture_in(&fx, &fx.join("model.onnx"));
        let xs = &common::fixture_inputs(&g, &arrays);
        let named: Vec<(&str, &Array)> = (g.inputs.iter().zip(xs.iter()))
            .map(|(&t, a)| (g.tensors[t].name.as_str(), a))
            .collect();
        let inputs = named_npz(&dir.path().join(format!("{name}.npz")), &named);
        for p in Precision::ALL {
            let plan = QuantPlan::new(&g, &stats, &BitPlan::uniform(&g, p)).unwrap();
            let model = dir.path().join(format!("{name}_{p}.qdq.onnx"));
            std::fs::write(&model, to_qdq(&g, &plan, QDQ16_OPSET, xs.batch()).unwrap()).unwrap();
            f(FixtureExport {
                name: &name,
                dir: dir.path(),
                g: &g,
                xs,
                inputs: &inputs,
                p,
                plan: &plan,
                model: &model,
            });
        }
    }
}

/// The largest difference between the QNN EP running amp's QDQ export and amp's own HTP graph of the same
/// plan, in LSB of the output: 1, except where measured otherwise here. Both run on the same emulator; the
/// QNN EP builds its own graph from the QDQ model (its own lowering of element-wise ops with constants,
/// LayerNorm, Sqrt/Exp), and HTP's arithmetic is not exact, so two lowerings of one function differ by the
/// LSB their intermediate roundings differ by. The larger ones are open questions (issue notes):
/// LayerNorm and Sqrt/Exp at 16 bits, and a 16-bit product of two activations.
fn qnn_ep_departure(name: &str, p: Precision) -> f64 {
    let eight = p == Precision::A8W8;
    match name {
        "attention_rank4" if eight => 2.0,
        "attention_rank4" => 246.0,
        "neg_abs_sqrt_exp" if eight => 6.0,
        "neg_abs_sqrt_exp" => 39.0,
        "layer_norm" if !eight => 13.0,
        "layer_norm_decomposed" if !eight => 16.0,
        "gelu" | "gelu_erf" | "relu_min_per_channel" | "softmax_middle_axis" if eight => 3.0,
        "expand_tile"
        | "reduce_max_min"
        | "rms_norm"
        | "two_inputs_conv_add"
        | "embedding_gather"
        | "bool_moves_and_or"
            if eight =>
        {
            2.0
        }
        // the QNN EP's 16-bit Gather returns a wrong value for the table's last row (id 39 of 40) once a batch
        // holds 48 or more indices (8 samples of 6; right at batches of 1 and 2), 2 rows of 96 here; amp's own
        // HTP graph gathers it right (qnn_ops), and onnxruntime's CPU runs the same export within 1 LSB
        "embedding_gather" => 12899.0,
        // the EP's probabilities differ by up to 8/256 on 1.2% of the elements, all at unmasked keys, where
        // amp's HTP graph is within 1 LSB of the reference: the masked scores span [-33, 3], so at 8 bits
        // one LSB of them is 0.14 in a logit, which moves a probability by that much
        "attention_mask_cast" if eight => 8.0,
        // the same on a causal mask folded to a constant (scores over [-33, 3] too): 0.35% of the elements;
        // and on a constant boolean causal mask filling the scores (7 LSB on 0.52%)
        "causal_mask" | "causal_where" if eight => 8.0,
        // a comparison's boolean flipped on one element of 2304: x = 0.5057 against the threshold 0.5, its
        // 8-bit code a quarter LSB below it, so amp's HTP graph, the reference and onnxruntime's CPU all say
        // not greater, and the EP greater (1.0 in the output)
        "comparisons" if eight => 57.0,
        // the EP's Relu requantizes 1 LSB off on 1.1% of elements, where amp's HTP graph is exact; the Where
        // and the Add after it carry that to 2 LSB on 0.5% of the outputs (the booleans agree everywhere)
        "equal_not_where" if eight => 2.0,
        "max_of_two_branches"
        | "max_per_channel_floor"
        | "min_scalar"
        | "conv_transpose_groups" => 2.0,
        "gelu" | "conv_transpose_up_relu" if !eight => 2.0,
        // the Erf form fused to a Gelu, at its own calibration: 8 LSB on 0.04% of the elements
        "gelu_erf" if !eight => 8.0,
        _ => 1.0,
    }
}

/// Where the QNN EP cannot build the export on HTP though amp's own graph runs: onnxruntime's graph of the
/// 16-bit RMSNorm fails to finalize (QNN_COMMON_ERROR_MEM_ALLOC), and so does its graph of any QDQ
/// InstanceNormalization, at every width (measured down to one 8-bit op at batch 1, with float or quantized
/// scale and bias, on arch v68, v73 and v75), where amp's HTP graph builds the same QNN InstanceNorm.
fn qnn_ep_refuses(name: &str, p: Precision) -> bool {
    (name == "rms_norm" && p != Precision::A8W8) || name == "instance_norm"
}

/// Every one-op fixture's QDQ export, run as users deploy it (onnxruntime's QNN EP on HTP, no CPU fallback),
/// computes what amp's own HTP graph of the same plan computes, at every uniform precision; an op amp's HTP
/// lowering refuses is refused by the QNN EP too (it cannot run on HTP without a CPU fallback).
#[test]
fn every_op_fixture_runs_on_the_qnn_ep_as_on_amps_htp() {
    let rt = common::runtime();
    let mut failures = Vec::new();
    each_fixture_export(|c| {
        let (name, p) = (c.name, c.p);
        let out = c.dir.join(format!("{name}_{p}.qnn.npz"));
        let ep = try_ort(c.model, c.inputs, "qnn", &out);
        let htp = QnnModel::build(&rt, c.g, c.plan, c.xs.batch()).and_then(|mut m| m.run(c.xs));
        let htp = match (htp, ep) {
            (Ok(mut h), Ok(_)) => h.remove(0),
            (Err(e), Err(_)) => return println!("{name} {p}: refused by both (amp: {e})"),
            (Err(e), Ok(_)) => {
                return failures.push(format!(
                    "{name} {p}: amp's HTP refuses ({e}), the QNN EP runs it"
                ))
            }
            (Ok(_), Err(e)) => {
                println!("{name} {p}: the QNN EP refuses: {e}");
                if !qnn_ep_refuses(name, p) {
                    failures.push(format!("{name} {p}: the QNN EP refuses: {e}"));
                }
                return;
            }
        };
        let (max, within) = c.lsb_apart(&htp, &out);
        println!(
            "{name} {p}: QNN EP vs amp's HTP max {max} LSB, {:.2}% within 1",
            within * 100.0
        );
        let bound = qnn_ep_departure(name, p);
        if max > bound {
            failures.push(format!("{name} {p}: max {max} LSB > {bound}"));
        }
    });
    assert!(failures.is_empty(), "{failures:#?}");
}
