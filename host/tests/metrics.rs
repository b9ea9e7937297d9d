//! Metrics other than top-1 on the real binary: a label-free metric against FP32 on data without labels,
//! the user's own evaluation command (the same choice as the built-in metric it reimplements, journal
//! identity by the command's files, every way a command fails), over `--device local`.

use std::fs::File;
use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use ndarray_npy::{NpzReader, NpzWriter};

mod common;
use common::{amp_status, example, root, tune};

fn top1_cmd(script: &Path) -> String {
    common::top1_cmd(script, "digits")
}

fn top1_script() -> PathBuf {
    root().join("examples/metrics/top1.py")
}

/// The SQNR drop from the best uniform candidate that makes digits_seg mix widths (on HTP over its first 96
/// images a16w16 is 75 dB from FP32, a16w8 37, a8w8 34).
const SEG_SQNR_DROP: &str = "20";

const QUICK: &[&str] = &["--verify-on", "none"];

fn with<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    QUICK.iter().chain(extra).copied().collect()
}

/// `amp-host tune --json` of an example's model on other data (`data`), which must succeed.
fn tune_on(example_name: &str, data: &Path, results: &Path, extra: &[&str]) -> serde_json::Value {
    let (model, _) = example(example_name);
    common::amp_in(
        common::amp_cmd()
            .args(["tune", "--model", &model, "--data"])
            .arg(data)
            .arg("--results")
            .arg(results)
            .arg("--json")
            .args(extra),
    )
}

/// The first `n` inputs of an example's data (no labels), written in `dir` as `name`.
fn inputs_only(example_name: &str, n: usize, dir: &Path, name: &str) -> PathBuf {
    let (_, data) = example(example_name);
    let mut npz = NpzReader::new(File::open(data).unwrap()).unwrap();
    let inputs: ArrayD<f32> = npz.by_name("inputs").unwrap();
    let n = n.min(inputs.shape()[0]);
    let path = dir.join(name);
    let mut w = NpzWriter::new(File::create(&path).unwrap());
    w.add_array(
        "inputs",
        &inputs.slice_axis(ndarray::Axis(0), (0..n).into()),
    )
    .unwrap();
    w.finish().unwrap();
    path
}

#[test]
fn sqnr_tunes_a_classifier_without_labels() {
    let dir = tempfile::tempdir().unwrap();
    let data = inputs_only("digits", usize::MAX, dir.path(), "unlabelled.npz");
    let (model, _) = example("digits");
    let results = dir.path().join("results");
    // a16w16 is ~93 dB from FP32 and a8w8 ~43: 40 dB below the former needs some groups at 16 bits
    let out = tune_on(
        "digits",
        &data,
        &results,
        &["--allowed-drop", "40", "--verify-on", "none"],
    );
    // without labels the default metric is SQNR against FP32, and the drop is counted from the best uniform
    // candidate
    assert_eq!(out["metric"]["name"], "sqnr", "{out}");
    assert_eq!(out["metric"]["unit"], "dB of SQNR", "{out}");
    assert!(
        out["reference_of"]
            .as_str()
            .unwrap()
            .contains("best uniform candidate"),
        "{out}"
    );
    let reference = out["reference"].as_f64().unwrap();
    let chosen = out["chosen"]["score"].as_f64().unwrap();
    assert!(
        reference > 10.0 && chosen >= reference - 40.0 && chosen < 200.0,
        "{out}"
    );
    assert_eq!(out["target"].as_f64().unwrap(), reference - 40.0);
    // some groups at 16 bits, not all
    let at16 = out["chosen"]["groups_at_16_bits"].as_u64().unwrap();
    assert!(at16 > 0 && at16 < 4, "{out}");
    let report = std::fs::read_to_string(results.join("report.md")).unwrap();
    assert!(report.contains("SQNR") && report.contains("dB"), "{report}");
    let pareto: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(results.join("pareto.json")).unwrap())
            .unwrap();
    assert_eq!(pareto["metric"]["name"], "sqnr");
    let csv = std::fs::read_to_string(results.join("pareto.csv")).unwrap();
    assert!(csv.lines().next().unwrap().contains("SQNR"), "{csv}");

    // top-1 needs labels: a usage error that names the metrics that work without them
    let eval = |metric: &str| -> Vec<String> {
        ["eval", "--model", &model, "--data", data.to_str().unwrap()]
            .iter()
            .map(|s| s.to_string())
            .chain(["--metric".to_string(), metric.to_string()])
            .collect()
    };
    let args = eval("top1");
    let (code, err) = amp_status(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        dir.path(),
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("needs labels") && err.contains("sqnr") && err.contains("cosine"),
        "{err}"
    );
    // eval by a label-free metric works on the same data
    let mut args = eval("cosine");
    args.extend(["--precision", "a8w8", "--json"].map(String::from));
    let e = common::amp(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let cos = e["score"].as_f64().unwrap();
    assert!(cos > 0.9 && cos <= 1.0, "{e}");
}

#[test]
fn a_metric_command_chooses_what_the_builtin_metric_does_and_is_journalled_by_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let builtin = tune(
        "digits",
        &dir.path().join("builtin"),
        &with(&["--metric", "top1", "--allowed-drop", "0.02"]),
    );
    let script = dir.path().join("my_eval.py");
    std::fs::copy(top1_script(), &script).unwrap();
    let cmd = top1_cmd(&script);
    let results = dir.path().join("command");
    let user = tune(
        "digits",
        &results,
        &with(&["--metric-cmd", &cmd, "--allowed-drop", "0.02"]),
    );
    assert_eq!(user["chosen"], builtin["chosen"], "{user}\n{builtin}");
    assert_eq!(user["fp32"], builtin["fp32"]);
    assert_eq!(user["uniform"], builtin["uniform"]);
    assert_eq!(user["metric"]["name"], format!("`{cmd}`"), "{user}");
    assert_eq!(user["reference_of"], "FP32", "{user}");
    assert!(user["outputs_bytes"].as_u64().unwrap() > 0, "{user}");
    let first = user["evaluations"].as_u64().unwrap();
    assert!(first > 0);

    // unchanged: nothing is evaluated again
    let again = tune(
        "digits",
        &results,
        &with(&["--metric-cmd", &cmd, "--allowed-drop", "0.02"]),
    );
    assert_eq!(again["evaluations"], 0, "{again}");
    assert_eq!(again["chosen"], user["chosen"]);

    // the script edited: every entry it scored is evaluated again
    let mut text = std::fs::read_to_string(&script).unwrap();
    text.push_str("# edited\n");
    std::fs::write(&script, text).unwrap();
    let edited = tune(
        "digits",
        &results,
        &with(&["--metric-cmd", &cmd, "--allowed-drop", "0.02"]),
    );
    assert_eq!(edited["evaluations"].as_u64(), Some(first), "{edited}");
}

/// `tune` on digits with `--metric-cmd cmd`, which must fail; its stderr.
fn failing(cmd: &str, extra: &[&str], cwd: &Path) -> String {
    let mut args = common::tune_args("digits", &cwd.join("results"));
    args.extend(
        ["--metric-cmd", cmd]
            .iter()
            .chain(extra)
            .chain(QUICK)
            .map(|s| s.to_string()),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, err) = amp_status(&args, cwd);
    assert_eq!(code, 4, "`{cmd}`: {err}");
    assert!(err.contains(cmd), "the message names the command: {err}");
    assert!(err.contains("fp32"), "the message names the config: {err}");
    err
}

#[test]
fn every_way_a_metric_command_fails_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let err = failing("no-such-metric-tool", &[], d);
    assert!(err.contains("not found"), "{err}");
    let err = failing("echo 'bad input shape' >&2; exit 3; :", &[], d);
    assert!(
        err.contains("exited with") && err.contains("bad input shape"),
        "{err}"
    );
    let err = failing("echo 'accuracy: high'; :", &[], d);
    assert!(
        err.contains("accuracy: high") && err.contains("number"),
        "{err}"
    );
    for v in ["nan", "inf"] {
        let err = failing(&format!("echo {v}; :"), &[], d);
        assert!(err.contains("finite"), "{err}");
    }
    let err = failing("sleep 30; :", &["--metric-timeout", "1"], d);
    assert!(
        err.contains("timed out") || err.contains("timeout"),
        "{err}"
    );
    // the journal holds nothing of these
    let journal = d.join("results/journal.jsonl");
    assert!(
        !journal.exists() || common::journal_keys(&journal).is_empty(),
        "{:?}",
        common::journal_keys(&journal)
    );
}

#[test]
fn a_command_fixed_after_failing_mid_run_repeats_nothing_that_succeeded() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // succeeds three times, then fails until `fixed` exists (a file the command does not name, so fixing
    // it keeps the metric's identity); counts its calls in `calls`
    let script = d.join("metric.sh");
    std::fs::write(
        &script,
        format!(
            "n=$(cat '{d}/calls' 2>/dev/null | wc -l)\n\
             echo x >> '{d}/calls'\n\
             if [ \"$n\" -ge 3 ] && [ ! -e '{d}/fixed' ]; then echo \"out of licences on call $n\" >&2; exit 1; fi\n\
             exec {cmd} \"$1\"\n",
            d = d.display(),
            cmd = top1_cmd(&top1_script())
        ),
    )
    .unwrap();
    let cmd = format!("sh '{}'", script.display());
    let calls = || {
        std::fs::read_to_string(d.join("calls"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let (model, data) = example("digits");
    let results = d.join("results");
    let args = |results: &Path| -> Vec<String> {
        [
            "tune",
            "--model",
            &model,
            "--data",
            &data,
            "--allowed-drop",
            "0.02",
            "--json",
            "--metric-cmd",
            &cmd,
            "--verify-on",
            "none",
            "--results",
            results.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let a = args(&results);
    let (code, err) = amp_status(&a.iter().map(String::as_str).collect::<Vec<_>>(), d);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("out of licences on call 3"), "{err}");
    assert_eq!(calls(), 4);
    assert_eq!(
        common::journal_keys(&results.join("journal.jsonl")).len(),
        3
    );

    std::fs::write(d.join("fixed"), "").unwrap();
    let resumed = common::amp(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let resumed_calls = calls() - 4;
    assert!(resumed["from_journal"].as_u64().unwrap() >= 3, "{resumed}");

    // a clean run of the same search calls the command three times more
    let before = calls();
    let b = args(&d.join("clean"));
    let clean = common::amp(&b.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(calls() - before, resumed_calls + 3);
    assert_eq!(clean["chosen"], resumed["chosen"]);
}

/// The segmenter example (per-pixel classes) tuned by the user's mIoU command, on the reference backend,
/// then by SQNR with phases 0 and 2 on the HTP emulator; each chosen config meets its target.
#[test]
fn a_segmenter_tunes_by_a_miou_command_and_by_sqnr_on_htp() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = format!(
        "{} '{}' --masks '{}'",
        common::python(),
        root().join("examples/metrics/miou.py").display(),
        root().join("examples/digits_seg/masks.npz").display()
    );
    let out = tune(
        "digits_seg",
        &dir.path().join("miou"),
        &with(&["--metric-cmd", &cmd, "--allowed-drop", "0.005"]),
    );
    // examples/digits_seg/meta.json: onnxruntime's FP32 mIoU on the same data
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("examples/digits_seg/meta.json")).unwrap(),
    )
    .unwrap();
    let fp32 = out["fp32"].as_f64().unwrap();
    let want = meta["onnxruntime_fp32_miou"].as_f64().unwrap();
    assert!((fp32 - want).abs() < 1e-4, "{fp32} vs onnxruntime {want}");
    let chosen = out["chosen"]["score"].as_f64().unwrap();
    assert!(chosen >= fp32 - 0.005, "{out}");
    assert!(out["missed"].is_null(), "{out}");

    // on HTP's emulator (about 20 s per evaluation of all 360 images here), the first 96 images
    let data = inputs_only("digits_seg", 96, dir.path(), "first96.npz");
    let out = tune_on(
        "digits_seg",
        &data,
        &dir.path().join("sqnr"),
        &[
            "--metric",
            "sqnr",
            "--allowed-drop",
            SEG_SQNR_DROP,
            "--backend",
            "htp",
            "--phase1-backend",
            "ref",
        ],
    );
    assert!(
        out["evaluator"].as_str().unwrap().starts_with("htp"),
        "{out}"
    );
    let target = out["target"].as_f64().unwrap();
    assert!(out["chosen"]["score"].as_f64().unwrap() >= target, "{out}");
    // a mix: cheaper than the a16w16 baseline, not uniform
    let config: std::collections::BTreeSet<&str> = out["chosen"]["config"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        config.len() > 1 && out["chosen"]["relative_bitops"].as_f64().unwrap() < 1.0,
        "{out}"
    );
}
