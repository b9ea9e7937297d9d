//! Bad input through the real `amp-host` binary: every case exits non-zero with a message naming what is at
//! fault, and never panics.

use std::path::{Path, PathBuf};

use amp_host::import::proto;
use ndarray::{Array1, Array4};
use ndarray_npy::NpzWriter;
use prost::Message;

mod common;
use common::{amp_cmd, amp_in, amp_status as amp, root};

fn digits() -> (PathBuf, PathBuf) {
    (
        root().join("examples/digits/model.onnx"),
        root().join("examples/digits/val.npz"),
    )
}

/// Asserts exit code 4 (an error of the model or data) and that the message names each of `needles`.
fn expect_failure((code, err): (i32, String), needles: &[&str]) {
    assert_eq!(code, 4, "{err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in: {err}");
    }
}

fn eval(model: &Path, data: &Path, dir: &Path) -> (i32, String) {
    amp(
        &[
            "eval",
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--precision",
            "a8w8",
        ],
        dir,
    )
}

fn write_npz(path: &Path, inputs: Array4<f32>, labels: Array1<i64>) {
    let mut w = NpzWriter::new(std::fs::File::create(path).unwrap());
    w.add_array("inputs", &inputs).unwrap();
    w.add_array("labels", &labels).unwrap();
    w.finish().unwrap();
}

fn one_node_model(op: &str, opset: i64) -> Vec<u8> {
    node_model(op, opset, vec![], &["y"])
}

/// A model of one node of `op` with attributes `attrs`, reading `x` [1, 4] and writing `outputs` [1, 4].
fn node_model(
    op: &str,
    opset: i64,
    attrs: Vec<proto::AttributeProto>,
    outputs: &[&str],
) -> Vec<u8> {
    let vi = |name: &str| proto::ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(proto::TypeProto {
            value: Some(proto::type_proto::Value::TensorType(
                proto::type_proto::Tensor {
                    elem_type: Some(1),
                    shape: Some(proto::TensorShapeProto {
                        dim: [1, 4]
                            .iter()
                            .map(|&d| proto::tensor_shape_proto::Dimension {
                                value: Some(proto::tensor_shape_proto::dimension::Value::DimValue(
                                    d,
                                )),
                                ..Default::default()
                            })
                            .collect(),
                    }),
                },
            )),
            ..Default::default()
        }),
        ..Default::default()
    };
    let m = proto::ModelProto {
        ir_version: Some(8),
        opset_import: vec![proto::OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opset),
        }],
        graph: Some(proto::GraphProto {
            name: Some("g".into()),
            node: vec![proto::NodeProto {
                name: Some("the_node".into()),
                op_type: Some(op.into()),
                input: vec!["x".into()],
                output: outputs.iter().map(|o| o.to_string()).collect(),
                attribute: attrs,
                ..Default::default()
            }],
            input: vec![vi("x")],
            output: outputs.iter().map(|o| vi(o)).collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    m.encode_to_vec()
}

#[test]
fn truncated_and_garbage_models_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (model, data) = digits();
    let bytes = std::fs::read(&model).unwrap();
    let trunc = dir.path().join("trunc.onnx");
    std::fs::write(&trunc, &bytes[..bytes.len() / 2]).unwrap();
    expect_failure(eval(&trunc, &data, dir.path()), &["trunc.onnx"]);
    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(
        &garbage,
        (0..4000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    expect_failure(eval(&garbage, &data, dir.path()), &["garbage.onnx"]);
    expect_failure(
        eval(&dir.path().join("missing.onnx"), &data, dir.path()),
        &["missing.onnx"],
    );
}

#[test]
fn unsupported_op_names_node_op_and_supported_list() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("celu.onnx");
    std::fs::write(&m, one_node_model("Celu", 13)).unwrap();
    expect_failure(
        amp(&["info", "--model", m.to_str().unwrap()], dir.path()),
        &[
            "Celu \"the_node\": unsupported op",
            "Supported ops: Abs, Add",
        ],
    );
}

/// Slices that would drop samples or cover nothing, splits that do not cover their axis and a pixel shuffle
/// of an unknown mode name the node and what is wrong with them.
#[test]
fn bad_data_movement_attributes_name_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let ints = |name: &str, v: &[i64]| proto::AttributeProto {
        name: Some(name.into()),
        ints: v.to_vec(),
        r#type: Some(7),
        ..Default::default()
    };
    let int = |name: &str, v: i64| proto::AttributeProto {
        name: Some(name.into()),
        i: Some(v),
        r#type: Some(2),
        ..Default::default()
    };
    let cases = [
        (
            "Slice",
            vec![ints("starts", &[0]), ints("ends", &[1]), ints("axes", &[0])],
            &["y"][..],
            "slices the batch axis (starts 0, ends 1)",
        ),
        (
            "Slice",
            vec![ints("starts", &[3]), ints("ends", &[1]), ints("axes", &[1])],
            &["y"][..],
            "axis 1: starts 3 ends 1 steps 1 select nothing of 4",
        ),
        (
            "Split",
            vec![ints("split", &[1, 2]), int("axis", 1)],
            &["a", "b"][..],
            "split sizes [1, 2] for 2 outputs do not cover axis 1 of 4",
        ),
        (
            "DepthToSpace",
            vec![
                int("blocksize", 2),
                proto::AttributeProto {
                    name: Some("mode".into()),
                    s: Some(b"RDC".to_vec().into()),
                    r#type: Some(3),
                    ..Default::default()
                },
            ],
            &["y"][..],
            "mode \"RDC\" is not supported (DCR, CRD)",
        ),
    ];
    for (i, (op, attrs, outs, want)) in cases.into_iter().enumerate() {
        let m = dir.path().join(format!("{i}.onnx"));
        std::fs::write(&m, node_model(op, 9, attrs, outs)).unwrap();
        expect_failure(
            amp(&["info", "--model", m.to_str().unwrap()], dir.path()),
            &[&format!("{op} \"the_node\""), want],
        );
    }
}

/// A ConvTranspose attribute amp does not handle names the node, the attribute and its value.
#[test]
fn bad_conv_transpose_attributes_name_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let base =
        std::fs::read(root().join("tests/fixtures/ops/conv_transpose_up_relu/model.onnx")).unwrap();
    let attr = |name: &str, i: Option<i64>, s: Option<&str>| proto::AttributeProto {
        name: Some(name.into()),
        i,
        s: s.map(|s| s.as_bytes().to_vec().into()),
        r#type: Some(if i.is_some() { 2 } else { 3 }),
        ..Default::default()
    };
    let cases = [
        (
            attr("group", Some(3), None),
            "group 3: the weight's 8 input channels must split into that many groups",
        ),
        (
            attr("auto_pad", None, Some("SAME_MIDDLE")),
            "auto_pad \"SAME_MIDDLE\" is not supported",
        ),
    ];
    for (i, (a, want)) in cases.into_iter().enumerate() {
        let mut m = proto::ModelProto::decode(&base[..]).unwrap();
        let g = m.graph.as_mut().unwrap();
        let node = g
            .node
            .iter_mut()
            .find(|n| n.op_type.as_deref() == Some("ConvTranspose"))
            .unwrap();
        node.attribute.push(a);
        let path = dir.path().join(format!("{i}.onnx"));
        std::fs::write(&path, m.encode_to_vec()).unwrap();
        expect_failure(
            amp(&["info", "--model", path.to_str().unwrap()], dir.path()),
            &["ConvTranspose \"up\"", want],
        );
    }
}

/// An edit of a model's nodes.
type Edit = fn(&mut Vec<proto::NodeProto>);

/// Each edit of the model `base`, written to `dir`, is refused by `info` with every text of its `want`.
fn expect_edits_refused(base: &[u8], dir: &Path, cases: &[(Edit, &[&str])]) {
    for (i, (edit, want)) in cases.iter().enumerate() {
        let mut m = proto::ModelProto::decode(base).unwrap();
        edit(&mut m.graph.as_mut().unwrap().node);
        let path = dir.join(format!("{i}.onnx"));
        std::fs::write(&path, m.encode_to_vec()).unwrap();
        expect_failure(amp(&["info", "--model", path.to_str().unwrap()], dir), want);
    }
}

/// Each edit of the op fixture `name`'s model is refused as [`expect_edits_refused`] checks; the folder the
/// edits were written to, for more cases.
fn expect_fixture_edits_refused(
    name: &str,
    cases: &[(Edit, &[&str])],
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let fixture = root().join("tests/fixtures/ops").join(name);
    let base = std::fs::read(fixture.join("model.onnx")).unwrap();
    expect_edits_refused(&base, dir.path(), cases);
    (dir, fixture)
}

/// An integer input is read only as Gather indices, and Gather only looks up rows of a constant table: every
/// other use names the node and says what amp takes; float data for an integer input says so.
#[test]
fn integer_inputs_and_gathers_amp_does_not_take_name_the_node() {
    let cases: [(Edit, &[&str]); 3] = [
        (
            |nodes| nodes[1].input[0] = "ids".into(),
            &[
                "Add \"add_pos\"",
                "integer input \"ids\"",
                "only as Gather indices",
            ],
        ),
        (
            |nodes| nodes[0].input[0] = "pos".into(),
            &["Gather \"embed\"", "input 0 (\"pos\") must be a constant"],
        ),
        (
            |nodes| nodes[0].input[1] = "pos".into(),
            &["Gather \"embed\"", "\"pos\" are not an integer model input"],
        ),
    ];
    let (dir, fixture) = expect_fixture_edits_refused("embedding_gather", &cases);
    let floats = dir.path().join("floats.npz");
    let mut w = NpzWriter::new(std::fs::File::create(&floats).unwrap());
    w.add_array("ids", &ndarray::Array2::<f32>::zeros((4, 6)))
        .unwrap();
    w.add_array("pos", &ndarray::Array3::<f32>::zeros((4, 6, 16)))
        .unwrap();
    w.finish().unwrap();
    expect_failure(
        eval(&fixture.join("model.onnx"), &floats, dir.path()),
        &["`ids` holds float32 but the model's input \"ids\" takes integers"],
    );
}

/// An integer input cast to float or bool (an attention mask) is taken only when such Casts (or Equals) are
/// its only use, past reshapes: read also by another op, the first reader is named and the message says what
/// amp takes; the mask cast to bool and then read by arithmetic names that reader; a Cast of an activation to
/// anything but float or bool names the type; a boolean graph output is named; float data for the mask,
/// which the model declares int64, says so.
#[test]
fn masks_and_casts_amp_does_not_take_name_the_node() {
    let unsqueeze: &[&str] = &[
        "Unsqueeze \"mask/unsqueeze\"",
        "integer input \"mask\"",
        "through a Cast to float32 or bool",
    ];
    let bool_in_sub: &[&str] = &["Sub \"mask/pad\"", "reads the boolean tensor \"mf\""];
    let cases: [(Edit, &[&str]); 2] = [
        (|nodes| nodes[2].input[1] = "mask".into(), unsqueeze),
        (|nodes| nodes[1].attribute[0].i = Some(9), bool_in_sub),
    ];
    let (dir, fixture) = expect_fixture_edits_refused("attention_mask_cast", &cases);
    let to = |code: i64| proto::AttributeProto {
        name: Some("to".into()),
        i: Some(code),
        r#type: Some(2),
        ..Default::default()
    };
    let path = dir.path().join("to_int.onnx");
    std::fs::write(&path, node_model("Cast", 13, vec![to(6)], &["y"])).unwrap();
    expect_failure(
        amp(&["info", "--model", path.to_str().unwrap()], dir.path()),
        &["Cast \"the_node\"", "casts an activation to int32"],
    );
    let path = dir.path().join("to_bool.onnx");
    std::fs::write(&path, node_model("Cast", 13, vec![to(9)], &["y"])).unwrap();
    expect_failure(
        amp(&["info", "--model", path.to_str().unwrap()], dir.path()),
        &["output \"y\" holds booleans"],
    );
    let floats = dir.path().join("floats.npz");
    let mut w = NpzWriter::new(std::fs::File::create(&floats).unwrap());
    w.add_array("x", &ndarray::Array3::<f32>::zeros((4, 2, 8)))
        .unwrap();
    w.add_array("mask", &ndarray::Array2::<f32>::ones((4, 8)))
        .unwrap();
    w.finish().unwrap();
    expect_failure(
        eval(&fixture.join("model.onnx"), &floats, dir.path()),
        &["`mask` holds float32 but the model's input \"mask\" takes integers"],
    );
}

/// Booleans are read only as Where's condition, by Not or through a Cast, and a Where's condition is a
/// boolean: a float condition and a boolean read by arithmetic each name the node and what amp takes.
#[test]
fn booleans_where_amp_does_not_take_them_name_the_node() {
    let float_condition: &[&str] = &[
        "Where \"mask/fill\"",
        "\"pad\" as a boolean, but it holds floats",
    ];
    let bool_in_arithmetic: &[&str] = &["Add \"masked\"", "reads the boolean tensor \"padb\""];
    let cases: [(Edit, &[&str]); 2] = [
        (|nodes| nodes[4].input[0] = "pad".into(), float_condition),
        (
            |nodes| nodes[5].input[1] = "padb".into(),
            bool_in_arithmetic,
        ),
    ];
    expect_fixture_edits_refused("attention_mask_where", &cases);
}

#[test]
fn unsupported_opset_says_found_and_supported() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("old.onnx");
    std::fs::write(&m, one_node_model("Relu", 5)).unwrap();
    expect_failure(
        amp(&["info", "--model", m.to_str().unwrap()], dir.path()),
        &["opset 5", "7..=21"],
    );
}

#[test]
fn data_that_does_not_fit_the_model_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = digits();
    let mnist = root().join("examples/mnist_mbv/val.npz");
    expect_failure(
        eval(&model, &mnist, dir.path()),
        &["dim 2 is 8 in the model but the data has 28"],
    );
}

/// A model of several inputs takes one array per input, named as the model names them: data whose arrays
/// are named otherwise lists both sets, and arrays of different sample counts name both arrays.
#[test]
fn data_whose_arrays_do_not_match_the_inputs_lists_both() {
    let dir = tempfile::tempdir().unwrap();
    let model = root().join("tests/fixtures/ops/two_inputs_conv_add/model.onnx");
    let write = |file: &str, arrays: &[(&str, usize, usize)]| {
        let path = dir.path().join(file);
        let mut w = NpzWriter::new(std::fs::File::create(&path).unwrap());
        for &(name, n, c) in arrays {
            w.add_array(name, &Array4::<f32>::zeros((n, c, 6, 6)))
                .unwrap();
        }
        w.finish().unwrap();
        path
    };
    let other = write("other.npz", &[("image", 4, 3), ("mask", 4, 4)]);
    expect_failure(
        eval(&model, &other, dir.path()),
        &["other.npz", "(image, mask)", "model's inputs (image, skip)"],
    );
    let one = write("one.npz", &[("inputs", 4, 3)]);
    expect_failure(
        eval(&model, &one, dir.path()),
        &["(inputs)", "(image, skip)"],
    );
    let counts = write("counts.npz", &[("image", 4, 3), ("skip", 3, 4)]);
    expect_failure(
        eval(&model, &counts, dir.path()),
        &["`skip` has 3 samples, `image` has 4"],
    );
}

#[test]
fn nan_empty_and_bad_labels_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = digits();
    let nan = dir.path().join("nan.npz");
    let mut x = Array4::<f32>::zeros((4, 1, 8, 8));
    x[[2, 0, 3, 3]] = f32::NAN;
    write_npz(&nan, x, Array1::from(vec![0, 1, 2, 3]));
    expect_failure(
        eval(&model, &nan, dir.path()),
        &["sample 2 of `inputs` contains a NaN"],
    );

    let empty = dir.path().join("empty.npz");
    write_npz(
        &empty,
        Array4::<f32>::zeros((0, 1, 8, 8)),
        Array1::from(vec![]),
    );
    expect_failure(eval(&model, &empty, dir.path()), &["empty"]);

    let labels = dir.path().join("labels.npz");
    write_npz(
        &labels,
        Array4::<f32>::zeros((3, 1, 8, 8)),
        Array1::from(vec![0, 12, 1]),
    );
    expect_failure(
        eval(&model, &labels, dir.path()),
        &["label 12 of sample 1 is outside the model's 10 classes"],
    );

    let count = dir.path().join("count.npz");
    write_npz(
        &count,
        Array4::<f32>::zeros((3, 1, 8, 8)),
        Array1::from(vec![0, 1]),
    );
    expect_failure(eval(&model, &count, dir.path()), &["3 inputs but 2 labels"]);
}

#[test]
fn eval_json_reports_accuracy_of_every_precision() {
    let dir = tempfile::tempdir().unwrap();
    let (model, data) = digits();
    for p in ["fp32", "a8w8", "a16w8", "a16w16"] {
        let v = amp_in(
            amp_cmd()
                .args(["eval", "--model", model.to_str().unwrap()])
                .args(["--data", data.to_str().unwrap(), "--precision", p, "--json"])
                .current_dir(dir.path()),
        );
        assert_eq!(v["precision"], p);
        assert_eq!(v["samples"], 360);
        // onnxruntime gives 0.9889 at FP32 and on the QDQ models (examples/digits/meta.json)
        assert!(v["top1"].as_f64().unwrap() > 0.98, "{p}: {v}");
    }
    // calibration was cached once and reused
    let cached: Vec<_> = std::fs::read_dir(dir.path().join(".amp-cache"))
        .unwrap()
        .collect();
    assert_eq!(cached.len(), 1);
}

/// Bad flag values are usage errors, exit code 2 as clap's own are, naming the flag and what it takes.
#[test]
fn bad_flag_values_are_usage_errors() {
    let (model, data) = (
        root().join("examples/digits/model.onnx"),
        root().join("examples/digits/val.npz"),
    );
    let dir = tempfile::tempdir().unwrap();
    let (m, d) = (model.to_str().unwrap(), data.to_str().unwrap());
    for (args, needle) in [
        (
            vec!["eval", "--model", m, "--data", d, "--precision", "a4w8"],
            "--precision",
        ),
        (
            vec!["tune", "--model", m, "--data", d, "--allowed-drop", "2"],
            "--allowed-drop",
        ),
        (
            vec!["tune", "--model", m, "--data", d, "--allowed-drop", "nan"],
            "--allowed-drop",
        ),
        (
            vec![
                "tune",
                "--model",
                m,
                "--data",
                d,
                "--candidates",
                "a16w8,w8a8",
            ],
            "--candidates",
        ),
        (
            vec![
                "tune",
                "--model",
                m,
                "--data",
                d,
                "--device",
                "inprocess",
                "--device",
                "local",
            ],
            "pool",
        ),
        (
            vec![
                "export",
                "--results",
                d,
                "--out",
                d,
                "--allowed-drop",
                "nan",
            ],
            "--allowed-drop",
        ),
    ] {
        let (code, err) = amp(&args, dir.path());
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: expected {needle:?} in {err}"
        );
    }
}

/// A model that lists no outputs (or has no input) is refused at import with a message, never a panic.
#[test]
fn a_model_without_outputs_or_inputs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = one_node_model("Relu", 13);
    for (file, strip, want) in [
        ("no_outputs.onnx", true, "no outputs"),
        ("no_inputs.onnx", false, "no inputs"),
    ] {
        let mut m = proto::ModelProto::decode(bytes.as_slice()).unwrap();
        let g = m.graph.as_mut().unwrap();
        if strip {
            g.output.clear();
        } else {
            g.input.clear();
        }
        let path = dir.path().join(file);
        std::fs::write(&path, m.encode_to_vec()).unwrap();
        expect_failure(
            amp(&["info", "--model", path.to_str().unwrap()], dir.path()),
            &[file, want],
        );
    }
}

/// A model with symbolic H and W: `info` without a shape says which dim and which flag gives it, and
/// with `--input-shape` it prints the shapes the data would fix.
#[test]
fn symbolic_dims_without_a_shape_name_the_flag_that_gives_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = root().join("examples/textori/model.onnx");
    let model = model.to_str().unwrap();
    expect_failure(
        amp(&["info", "--model", model], dir.path()),
        &[
            "input \"x\"",
            "dim 2 is symbolic",
            "--input-shape",
            "--data",
        ],
    );
    let info = common::amp(&[
        "info",
        "--model",
        model,
        "--input-shape",
        "3,48,192",
        "--json",
    ]);
    assert_eq!(info["input_shape"], serde_json::json!([1, 3, 48, 192]));
}

/// A resume budget that is not a whole number of megabytes is a usage error (exit 2) naming the variable, from
/// amp-host and from the agent, not a silent fall back to the default.
#[test]
fn a_malformed_resume_budget_is_refused_naming_it() {
    let (model, _) = digits();
    for bad in ["lots", "-5", "1.5"] {
        let out = amp_cmd()
            .env("AMP_RESUME_MB", bad)
            .args(["info", "--model", model.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(&format!("AMP_RESUME_MB=\"{bad}\"")), "{err}");
        let out = std::process::Command::new(common::bin("amp-agent"))
            .env("AMP_RESUME_MB", bad)
            .arg("info")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("AMP_RESUME_MB"), "{err}");
    }
    let out = amp_cmd()
        .env("AMP_RESUME_MB", "0")
        .args(["info", "--model", model.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// InstanceNormalization takes its scale and bias as constants, And, Or and Xor take booleans: an activation
/// in their place names the node (InstanceNormalization "in", And "both", Xor "either") and the tensor.
#[test]
fn norm_and_logic_operands_amp_does_not_take_name_the_node() {
    let norm: [(Edit, &[&str]); 2] = [
        (
            |n| n[0].input[1] = "x".into(),
            &["\"in\"", "input 1 (\"x\") must be a constant"],
        ),
        (
            |n| n[0].input[2] = "x".into(),
            &["\"in\"", "input 2 (\"x\") must be a constant"],
        ),
    ];
    expect_fixture_edits_refused("instance_norm", &norm);
    let logic: [(Edit, &[&str]); 1] = [(
        |n| n[4].input[1] = "x".into(),
        &["And \"both\"", "reads \"x\" as a boolean"],
    )];
    expect_fixture_edits_refused("bool_moves_and_or", &logic);
    let xor: [(Edit, &[&str]); 1] = [(
        |n| n[4].input[0] = "xf".into(),
        &["Xor \"either\"", "reads \"xf\" as a boolean"],
    )];
    expect_fixture_edits_refused("bool_flatten_xor", &xor);
}

/// Concat moves booleans only when every input is one: a boolean joined to scores names the Concat and the
/// boolean it reads.
#[test]
fn a_concat_of_a_boolean_and_scores_names_the_node() {
    let concat: [(Edit, &[&str]); 1] = [(
        |n| n[4].input[1] = "x".into(),
        &[
            "\"both\"",
            "reads the boolean tensor \"pt\"",
            "a Concat of booleans only",
        ],
    )];
    expect_fixture_edits_refused("bool_slice_tile_concat", &concat);
}
