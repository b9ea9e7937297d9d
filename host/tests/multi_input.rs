//! A model of several inputs, end to end on the real binary: `info` lists each input, `tune` over a local
//! agent (the data blob carries one array per input) verifies its choice on the HTP emulator, a rerun takes
//! everything from the journal, and the chosen config exports as a QDQ model onnxruntime runs.

mod common;
use common::{amp, root};

use ndarray::ArrayD;
use ndarray_npy::{NpzReader, NpzWriter};

const FIXTURE: &str = "tests/fixtures/ops/two_inputs_conv_add";

/// The fixture's samples and calibration samples of each input, as data named after the model's inputs.
fn data(path: &std::path::Path) {
    let mut r =
        NpzReader::new(std::fs::File::open(root().join(FIXTURE).join("fixture.npz")).unwrap())
            .unwrap();
    let mut w = NpzWriter::new(std::fs::File::create(path).unwrap());
    for name in ["image", "skip"] {
        let a: ArrayD<f32> = r.by_name(name).unwrap();
        let c: ArrayD<f32> = r.by_name(&format!("calib_{name}")).unwrap();
        let both = ndarray::concatenate(ndarray::Axis(0), &[a.view(), c.view()]).unwrap();
        w.add_array(name, &both).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn a_model_of_two_inputs_tunes_verifies_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let model = root().join(FIXTURE).join("model.onnx");
    let model = model.to_str().unwrap();
    let npz = dir.path().join("val.npz");
    data(&npz);

    let info = amp(&["info", "--model", model, "--json"]);
    let inputs: Vec<(&str, Vec<u64>)> = info["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let shape = i["shape"].as_array().unwrap().iter();
            (
                i["name"].as_str().unwrap(),
                shape.map(|d| d.as_u64().unwrap()).collect(),
            )
        })
        .collect();
    assert_eq!(
        inputs,
        [("image", vec![1, 3, 6, 6]), ("skip", vec![1, 4, 6, 6])]
    );

    let results = dir.path().join("results");
    let tune = || {
        amp(&[
            "--quiet",
            "tune",
            "--model",
            model,
            "--data",
            npz.to_str().unwrap(),
            "--device",
            "local",
            "--allowed-drop",
            "3",
            "--results",
            results.to_str().unwrap(),
            "--json",
        ])
    };
    let first = tune();
    println!("{first}");
    let uniform = &first["uniform"];
    let (a8, a16) = (
        uniform["a8w8"].as_f64().unwrap(),
        uniform["a16w16"].as_f64().unwrap(),
    );
    assert!(a16 > a8 + 20.0, "a8w8 {a8} dB, a16w16 {a16} dB of SQNR");
    assert_eq!(first["metric"]["name"], "sqnr");
    assert!(first["pushed_bytes"].as_u64().unwrap() > 0);
    let v = &first["verification"];
    assert_eq!(v["meets_target"], true, "{v}");
    assert!(v["on"].as_str().unwrap().starts_with("htp-"), "{v}");

    let again = tune();
    assert_eq!(again["evaluations"], 0, "{again}");
    assert!(again["from_journal"].as_u64().unwrap() >= first["evaluations"].as_u64().unwrap());
    assert_eq!(again["chosen"], first["chosen"]);

    let qdq = dir.path().join("model.qdq.onnx");
    amp(&[
        "--quiet",
        "export",
        "--results",
        results.to_str().unwrap(),
        "--format",
        "qdq",
        "--out",
        qdq.to_str().unwrap(),
    ]);
    let out = dir.path().join("out.npz");
    let status = std::process::Command::new(common::python())
        .arg(root().join("scripts/run_qdq.py"))
        .args([&qdq, &npz, &out])
        .status()
        .unwrap();
    assert!(status.success(), "onnxruntime could not run the export");
    let mut r = NpzReader::new(std::fs::File::open(&out).unwrap()).unwrap();
    let y: ArrayD<f32> = r.by_name("y").unwrap();
    assert_eq!(y.shape(), [64, 4, 6, 6]);
}
