//! The detector example (ddddocr's YOLOX-style character detector, 3.2 GMACs per 416×416 image): made by
//! `scripts/make_detector.py` into examples/ddddocr_det (20 MB, not committed), so these tests are ignored
//! until it has run; then `cargo test -p amp-host --test detector -- --ignored`.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;

use amp_device::backend::reference::Reference;
use amp_device::backend::Array;
use amp_device::quant::{BitPlan, Precision, QuantPlan};
use ndarray::ArrayD;
use ndarray_npy::NpzReader;

mod common;
use common::{amp, eval, example, fixture_failures, fixture_in, lsb_apart, python, root};

fn dir() -> PathBuf {
    common::made_example("ddddocr_det", "fixture.npz", "scripts/make_detector.py")
}

/// It imports (Focus Slices, SiLU, SPP, Resize, three heads) and runs at FP32 as onnxruntime does. Quantized,
/// each op given onnxruntime's QDQ values of its inputs lands within 1 LSB of onnxruntime's output on at
/// least 99.9% of the elements of every op, at every uniform precision. (The whole network's output is judged
/// by its mAP below, not per element: through 83 convs and 80 sigmoids a rounding tie early on moves hundreds
/// of elements downstream, and the output is 67–74% within 1 LSB of onnxruntime's.)
#[test]
#[ignore = "needs scripts/make_detector.py"]
fn the_detector_matches_onnxruntime() {
    let d = dir();
    // FP32 within 1e-4 of the range; the whole quantized output is printed, not bounded (0.0)
    let failures = fixture_failures("ddddocr_det", &d, &d.join("model.onnx"), 0.0);
    assert!(failures.is_empty(), "{failures:#?}");
    let (g, _, stats) = fixture_in(&d, &d.join("model.onnx"));
    let mut worst = Vec::new();
    for p in Precision::ALL {
        let mut values = npz(&d.join(format!("tensors_{p}.npz")));
        let input = g.inputs[0];
        let dq = values[&format!("{}__dq", g.tensors[input].name)].clone();
        values.insert(g.tensors[input].name.clone(), dq);
        let from_ort: Vec<String> = values.keys().cloned().collect();
        let plan = QuantPlan::new(&g, &stats, &BitPlan::uniform(&g, p)).unwrap();
        let encodings = plan.encodings.clone();
        let r = Reference::new(g.clone(), Some(plan)).unwrap();
        // the tensors onnxruntime's QDQ model does not materialise (a Slice's, a Reshape's: values moved, not
        // computed) take amp's values from onnxruntime's inputs, in graph order
        for n in &g.nodes {
            let name = &g.tensors[n.output].name;
            if !values.contains_key(name) {
                let v = r
                    .run_producer_of(n.output, &|t| values.get(&g.tensors[t].name).cloned())
                    .unwrap();
                values.insert(name.clone(), v);
            }
        }
        let (mut ops, mut lowest) = (0, (1.0f64, String::new()));
        for n in &g.nodes {
            let (t, name) = (n.output, &g.tensors[n.output].name);
            let Some(e) = encodings[t] else { continue };
            if !from_ort.contains(name) {
                continue;
            }
            let got = r
                .run_producer_of(t, &|t| values.get(&g.tensors[t].name).cloned())
                .unwrap();
            let (_, within) = lsb_apart(&got, &values[name], e.scale);
            ops += 1;
            if within < lowest.0 {
                lowest = (within, format!("{} {name}", n.op.name()));
            }
        }
        println!(
            "{p}: {ops} ops fed onnxruntime's inputs; the lowest share within 1 LSB is {:.4}% ({})",
            lowest.0 * 100.0,
            lowest.1
        );
        // every Conv, Sigmoid, Mul, Add, Concat and Resize: all but the ops that only move values
        assert!(ops >= 260, "{p}: only {ops} ops compared");
        worst.push((p, lowest));
    }
    for (p, (within, name)) in worst {
        assert!(
            within >= 0.999,
            "{p}: tensor {name} only {:.3}% within 1 LSB",
            within * 100.0
        );
    }
}

/// Every array of an .npz, by name.
fn npz(path: &std::path::Path) -> BTreeMap<String, Array> {
    let mut z = NpzReader::new(File::open(path).unwrap()).unwrap();
    let mut out = BTreeMap::new();
    for n in z.names().unwrap() {
        let a: ArrayD<f32> = z.by_name(&n).unwrap();
        let v = Array::new(a.shape().to_vec(), a.iter().copied().collect());
        out.insert(n.trim_end_matches(".npy").to_string(), v);
    }
    out
}

fn map_cmd() -> String {
    format!(
        "{} {} --boxes {}",
        python(),
        root().join("examples/metrics/map50.py").display(),
        dir().join("boxes.npz").display()
    )
}

/// What users see: amp's reference gives, at every uniform precision, the mAP@0.5 onnxruntime's QDQ model
/// gives on the 64 annotated images (scripts/make_detector.py measured it), within 0.01.
#[test]
#[ignore = "needs scripts/make_detector.py"]
fn the_detector_scores_its_map_as_onnxruntime_does() {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("meta.json")).unwrap()).unwrap();
    for p in Precision::ALL {
        let p = p.to_string();
        let out = eval(
            "ddddocr_det",
            &["--quiet", "--precision", &p, "--metric-cmd", &map_cmd()],
        );
        let amp = out["score"].as_f64().unwrap();
        let ort = meta[format!("onnxruntime_qdq_{p}_map50")].as_f64().unwrap();
        println!("{p}: mAP@0.5 amp reference {amp:.4}, onnxruntime QDQ {ort:.4}");
        assert!(
            (amp - ort).abs() <= 0.01,
            "{p}: amp {amp} vs onnxruntime {ort}"
        );
    }
}

/// Tuned by the user's own mAP@0.5 command on the annotated boxes: the chosen config keeps mAP within the
/// allowed drop of FP32's on the reference and again on HTP (the emulator here: about half an hour).
#[test]
#[ignore = "needs scripts/make_detector.py"]
fn the_detector_is_tuned_by_its_map() {
    let results = tempfile::tempdir().unwrap();
    let (model, data) = example("ddddocr_det");
    let out = amp(&[
        "--quiet",
        "tune",
        "--json",
        "--model",
        &model,
        "--data",
        &data,
        "--device",
        "local",
        "--metric-cmd",
        &map_cmd(),
        "--phase1-metric",
        "sqnr",
        "--phase1-samples",
        "8",
        "--allowed-drop",
        "0.02",
        "--results",
        results.path().to_str().unwrap(),
    ]);
    println!("{out:#}");
    let fp32 = out["fp32"].as_f64().unwrap();
    let chosen = out["chosen"]["score"].as_f64().unwrap();
    assert!(fp32 > 0.95, "FP32 mAP@0.5 {fp32}");
    assert!(chosen >= fp32 - 0.02, "chosen {chosen} vs FP32 {fp32}");
}
