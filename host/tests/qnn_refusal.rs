//! A node HTP refuses reaches the search as Unsupported (it prunes the config and goes on), not as a failure
//! that stops it. HTP v68 refuses A16W16 Conv in `backendValidateOpConfig`. The HTP library keeps one
//! architecture per process (a v68 device made beside a v73 one changes validation for both), so these run
//! in a test binary of their own, apart from the v73 suites.

use std::sync::Arc;

use amp_device::backend::qnn::QnnModel;
use amp_device::backend::Array;
use amp_device::ir::{Conv, Graph, Node, Op};
use amp_device::quant::{BitPlan, Precision, QuantPlan};

mod common;
use common::{journal_keys, runtime_at, tune, uniform};

/// x [1, 8, 6, 6] → Conv 3×3 → y.
fn one_conv() -> Graph {
    let mut g = Graph::default();
    let x = g.add_tensor("x", vec![1, 8, 6, 6], None);
    let w = g.add_tensor("w", vec![8, 8, 3, 3], Some(uniform(576, -0.5, 0.5, 7)));
    let y = g.add_tensor("y", vec![1, 8, 6, 6], None);
    let conv = Conv {
        strides: [1, 1],
        pads: [1; 4],
        dilations: [1, 1],
        group: 1,
    };
    g.nodes.push(Node {
        name: "Conv 3x3".into(),
        op: Op::from(conv),
        inputs: vec![x, w],
        output: y,
    });
    g.inputs = vec![x];
    g.outputs = vec![y];
    g
}

#[test]
fn a_node_htp_refuses_is_unsupported() {
    use amp_device::error::{ErrorKind, EvalError};
    let rt = runtime_at(68);
    let g = Arc::new(one_conv());
    let x = Array::new(vec![4, 8, 6, 6], uniform(4 * 288, -4.0, 4.0, 1));
    let stats = amp_host::calib::calibrate(g.clone(), &x.into(), 4).unwrap();
    let plan = |p| QuantPlan::new(&g, &stats, &BitPlan::uniform(&g, p)).unwrap();
    let e = match QnnModel::build(&rt, &g, &plan(Precision::A16W16), 4) {
        Ok(_) => panic!("HTP v68 took an A16W16 Conv"),
        Err(e) => EvalError::from(e),
    };
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(e.message.contains("backendValidateOpConfig"), "{e}");
    assert!(
        e.message.contains("Conv 3x3"),
        "the message names the node: {e}"
    );
    assert!(
        e.message.len() < 1000,
        "the message carries QNN's errors, not its whole log: {e}"
    );
    // the same graph at a16w8 builds there
    assert!(QnnModel::build(&rt, &g, &plan(Precision::A16W8), 4).is_ok());
}

/// `tune` on HTP v68 with a16w16 among the candidates: the uniform a16w16 config is refused, journalled as
/// unsupported with QNN's reason, and the search goes on with the others.
#[test]
fn tune_prunes_a_config_htp_refuses_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let r = tune(
        "digits",
        dir.path(),
        &[
            "--backend",
            "htp",
            "--htp-arch",
            "68",
            "--device",
            "inprocess",
            "--phase1-samples",
            "64",
        ],
    );
    let uniform: Vec<&str> = r["uniform"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(!uniform.contains(&"a16w16"), "{r}");
    assert!(
        uniform.contains(&"a16w8") && uniform.contains(&"a8w8"),
        "{r}"
    );
    assert!(r["chosen"]["score"].as_f64().unwrap() > 0.9, "{r}");
    let journal = std::fs::read_to_string(dir.path().join("journal.jsonl")).unwrap();
    let refused: Vec<serde_json::Value> = journal
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["unsupported"].is_string())
        .collect();
    assert!(
        !refused.is_empty(),
        "nothing was journalled as unsupported: {journal}"
    );
    for e in &refused {
        let why = e["unsupported"].as_str().unwrap();
        assert!(why.contains("backendValidateOpConfig"), "{why}");
        assert!(e["config"].as_str().unwrap().contains("a16w16"), "{e}");
    }
    assert_eq!(
        journal_keys(&dir.path().join("journal.jsonl")).len() as u64,
        r["evaluations"].as_u64().unwrap()
    );
}

/// A chosen config that cannot run on the verifying HTP (A16W16 at v68, after a search on the reference)
/// misses its target there: `tune` says so and exits 1, or 0 with `--allow-miss`, and the results record it.
#[test]
fn a_chosen_config_that_misses_on_htp_fails_the_tune_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--candidates",
        "a16w16",
        "--htp-arch",
        "68",
        "--phase1-samples",
        "64",
    ];
    let out = common::tune_cmd("digits", dir.path(), &args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("target missed") && err.contains("htp-v68"),
        "{err}"
    );
    let mut allowed = args.to_vec();
    allowed.push("--allow-miss");
    let r = tune("digits", dir.path(), &allowed);
    let v = &r["verification"];
    assert_eq!(v["meets_target"], false, "{r}");
    assert!(v["score"].is_null(), "it cannot run there: {r}");
    assert!(
        r["missed"].as_str().unwrap().contains("cannot run there"),
        "{r}"
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["verified"]["meets_target"], false);
    let report = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(report.contains("misses the target"), "{report}");
}
