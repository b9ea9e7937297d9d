//! `amp-host tune` end to end through the binary: the exported encodings hold the accuracy target, a rerun
//! evaluates nothing, and a run killed in phase 1 resumes without repeating work and ends where an
//! uninterrupted run ends.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{amp, amp_cmd, eval_encodings, example, export, journal_keys, tune};

#[test]
fn exported_encodings_meet_the_target_on_every_example() {
    for name in ["digits", "digits_outlier", "mnist_mbv"] {
        let dir = tempfile::tempdir().unwrap();
        let r = tune(
            name,
            dir.path(),
            &["--allowed-drop", "0.01", "--phase1-samples", "128"],
        );
        let fp32 = r["fp32"].as_f64().unwrap();
        for fmt in ["1.0.0", "0.6.1"] {
            let enc = dir.path().join(format!("encodings-{fmt}.json"));
            export(dir.path(), &enc, &["--format", fmt]);
            let e = eval_encodings(name, &enc, &[]);
            let acc = e["top1"].as_f64().unwrap();
            assert!(
                acc >= fp32 - 0.01,
                "{name} {fmt}: exported encodings give {acc}, FP32 {fp32}"
            );
            assert_eq!(
                acc,
                r["chosen"]["score"].as_f64().unwrap(),
                "{name} {fmt}: eval of the file differs from the tune"
            );
            // quantizer_args describes the config: its narrowest widths, per-channel weights
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&enc).unwrap()).unwrap();
            let chosen: Vec<String> = r["chosen"]["config"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
                .collect();
            let narrowest = |prefix: &str| {
                let widths = chosen.iter().map(|c| {
                    let p: amp_device::quant::Precision = c.parse().unwrap();
                    if prefix == "a" {
                        p.act
                    } else {
                        p.weight
                    }
                });
                widths.min().unwrap() as u64
            };
            let args = &v["quantizer_args"];
            assert_eq!(args["activation_bitwidth"], narrowest("a"), "{name} {fmt}");
            assert_eq!(args["param_bitwidth"], narrowest("w"), "{name} {fmt}");
            assert_eq!(args["per_channel_quantization"], true);
        }
        for f in [
            "pareto.json",
            "pareto.csv",
            "pareto.svg",
            "pareto.html",
            "sensitivity.json",
            "config.json",
            "report.md",
        ] {
            assert!(dir.path().join(f).is_file(), "{name}: {f} missing");
        }
    }
}

#[test]
fn outlier_model_needs_a_mix_and_every_search_finds_a_passing_one() {
    let dir = tempfile::tempdir().unwrap();
    for search in ["binary", "bruteforce", "interpolation", "knapsack"] {
        let r = tune("digits_outlier", dir.path(), &["--search", search]);
        let uniform = &r["uniform"];
        let fp32 = r["fp32"].as_f64().unwrap();
        assert!(
            fp32 - uniform["a8w8"].as_f64().unwrap() > 0.02,
            "a8w8 should lose more than 2%: {r}"
        );
        let at16 = r["chosen"]["groups_at_16_bits"].as_u64().unwrap();
        assert!(
            at16 >= 1 && at16 < r["chosen"]["groups"].as_u64().unwrap(),
            "{search}: {r}"
        );
        assert!(
            r["chosen"]["score"].as_f64().unwrap() >= fp32 - 0.01,
            "{search}: {r}"
        );
        assert!(
            r["chosen"]["relative_bitops"].as_f64().unwrap() < 1.0,
            "{search}: {r}"
        );
    }
}

#[test]
fn rerun_evaluates_nothing_and_fresh_evaluates_again() {
    let dir = tempfile::tempdir().unwrap();
    let first = tune(
        "digits_outlier",
        dir.path(),
        &["--allowed-drop", "none", "--search", "bruteforce"],
    );
    assert!(first["evaluations"].as_u64().unwrap() > 0);
    // a first run reuses its own evaluations (phase 2 meets phase 0's configs) but none comes from a
    // journal
    assert_eq!(first["from_journal"], 0, "{first}");
    let again = tune(
        "digits_outlier",
        dir.path(),
        &["--allowed-drop", "none", "--search", "bruteforce"],
    );
    assert_eq!(again["evaluations"], 0, "{again}");
    assert!(again["from_journal"].as_u64().unwrap() > 0, "{again}");
    assert_eq!(again["chosen"], first["chosen"]);
    let report = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(
        report.contains("0 evaluations performed in this run"),
        "{report}"
    );
    // a different drop reuses everything phase 0 and 1 measured
    let other = tune("digits_outlier", dir.path(), &["--allowed-drop", "0.02"]);
    assert_eq!(other["phases"][1]["evaluations"], 0, "{other}");
    let fresh = tune(
        "digits_outlier",
        dir.path(),
        &[
            "--allowed-drop",
            "none",
            "--search",
            "bruteforce",
            "--fresh",
        ],
    );
    assert_eq!(fresh["evaluations"], first["evaluations"]);
    assert_eq!(fresh["from_journal"], 0, "{fresh}");
}

#[test]
fn killed_in_phase_1_resumes_without_repeating_work() {
    let (model, data) = example("mnist_mbv");
    let args = |dir: &Path| {
        vec![
            "tune".to_string(),
            "--model".into(),
            model.clone(),
            "--data".into(),
            data.clone(),
            "--results".into(),
            dir.display().to_string(),
            "--allowed-drop".into(),
            "none".into(),
            "--search".into(),
            "bruteforce".into(),
            "--json".into(),
        ]
    };
    // uninterrupted
    let clean = tempfile::tempdir().unwrap();
    let full = amp(&args(clean.path())
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    let total = full["evaluations"].as_u64().unwrap();

    // killed with SIGKILL once phase 1 has journalled a few evaluations
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_amp-host"))
        .args(args(dir.path()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(&journal).unwrap_or_default();
        if text
            .lines()
            .filter(|l| l.contains("\"phase\":\"1\""))
            .count()
            >= 3
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "phase 1 never started"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "tune finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done_before = journal_keys(&journal).len() as u64;
    assert!(done_before < total);

    let resumed = amp(&args(dir.path())
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert_eq!(
        resumed["evaluations"].as_u64().unwrap() + done_before,
        total,
        "{resumed}"
    );
    let keys = journal_keys(&journal);
    assert_eq!(keys.len() as u64, total);
    assert_eq!(
        keys.iter().collect::<HashSet<_>>().len(),
        keys.len(),
        "an evaluation was repeated"
    );
    assert_eq!(resumed["chosen"], full["chosen"]);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("pareto.json")).unwrap(),
        std::fs::read_to_string(clean.path().join("pareto.json")).unwrap()
    );
}

#[test]
fn tune_on_htp_and_the_exported_file_reproduces_on_htp() {
    let dir = tempfile::tempdir().unwrap();
    let r = tune("digits_outlier", dir.path(), &["--backend", "htp"]);
    let fp32 = r["fp32"].as_f64().unwrap();
    let chosen = r["chosen"]["score"].as_f64().unwrap();
    assert!(chosen >= fp32 - 0.01, "{r}");
    assert!(
        r["chosen"]["relative_bitops"].as_f64().unwrap() < 1.0,
        "{r}"
    );
    let enc = dir.path().join("enc.json");
    export(dir.path(), &enc, &[]);
    let e = eval_encodings("digits_outlier", &enc, &["--backend", "htp"]);
    assert_eq!(e["top1"].as_f64().unwrap(), chosen, "{e}");
    assert_eq!(e["backend"], "htp-v73");
    // phase 1 on the reference backend, phases 0 and 2 on HTP: the journal keeps the two apart
    let fast = tune(
        "digits_outlier",
        dir.path(),
        &["--backend", "htp", "--phase1-backend", "ref"],
    );
    assert_eq!(fast["phases"][0]["evaluations"], 0, "{fast}");
    assert!(
        fast["phases"][1]["evaluations"].as_u64().unwrap() > 0,
        "{fast}"
    );
    assert!(
        fast["chosen"]["score"].as_f64().unwrap() >= fp32 - 0.01,
        "{fast}"
    );
}

/// After a search on the reference backend, the chosen config is measured again on HTP (the default,
/// `--verify-on htp`): both numbers are reported, and they agree on the demo's example, where before the
/// dataflow at width changes followed HTP's they were 11 points apart (0.989 against 0.875).
#[test]
fn the_chosen_config_is_verified_on_htp() {
    let dir = tempfile::tempdir().unwrap();
    let r = tune("digits_outlier", dir.path(), &["--allowed-drop", "0.01"]);
    let v = &r["verification"];
    assert!(v["on"].as_str().unwrap().starts_with("htp-v73"), "{r}");
    let (there, here) = (
        v["score"].as_f64().unwrap(),
        r["chosen"]["score"].as_f64().unwrap(),
    );
    assert!(
        (there - here).abs() <= 0.005,
        "reference {here}, HTP {there}: {r}"
    );
    assert_eq!(v["meets_target"], true, "{r}");
    assert!(r["missed"].is_null(), "{r}");
    let report = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(report.contains("verified on htp-v73"), "{report}");
    // a rerun measures nothing again, on either backend
    let again = tune("digits_outlier", dir.path(), &["--allowed-drop", "0.01"]);
    assert_eq!(again["evaluations"], 0, "{again}");
    assert_eq!(again["verification"]["evaluations"], 0, "{again}");
    assert_eq!(again["verification"]["score"], v["score"]);
    // and --verify-on none says why it did not verify
    let none = tune(
        "digits_outlier",
        dir.path(),
        &["--allowed-drop", "0.01", "--verify-on", "none"],
    );
    assert!(none["verification"].is_null());
    assert!(
        none["verify_note"]
            .as_str()
            .unwrap()
            .contains("--verify-on none"),
        "{none}"
    );
}

/// Without a terminal (a CI log), progress is one line per step with counts and time (the verification on
/// HTP included), and `--quiet` silences it; the results folder of a `model.onnx` is named after its folder; a run without --phase3
/// leaves no earlier run's phase3.json behind.
#[test]
fn ci_logs_get_progress_lines_and_results_hold_only_this_runs_files() {
    let dir = tempfile::tempdir().unwrap();
    let (model, data) = example("digits_outlier");
    let run = |extra: &[&str]| {
        let out = amp_cmd()
            .args(["tune", "--model", &model, "--data", &data])
            .args(["--allowed-drop", "0.01"])
            .args(extra)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        err
    };
    let err = run(&["--phase3"]);
    assert!(
        err.contains("phase 0: ") && err.contains("done in") && err.contains("phase 3: "),
        "{err}"
    );
    assert!(
        err.contains("verify: the chosen point on htp")
            && err.contains("verify: the chosen point meets the target on htp"),
        "{err}"
    );
    let results = dir.path().join("amp-results/digits_outlier");
    assert!(results.join("phase3.json").is_file());
    let err = run(&["--quiet"]);
    assert!(
        !err.contains("done in") && !err.contains("verify:"),
        "{err}"
    );
    assert!(results.join("report.md").is_file());
    assert!(
        !results.join("phase3.json").exists(),
        "an earlier run's phase3.json was left"
    );
}

/// `info` names the model's inputs and outputs with their shapes and dtypes, in text and in JSON.
#[test]
fn info_lists_inputs_and_outputs() {
    let (model, _) = common::example("digits_seg");
    let j = common::amp(&["info", "--model", &model, "--json"]);
    let io = |k: &str| {
        j[k].as_array()
            .unwrap()
            .iter()
            .map(|v| {
                format!(
                    "{} {} {}",
                    v["name"].as_str().unwrap(),
                    v["shape"],
                    v["dtype"].as_str().unwrap()
                )
            })
            .collect::<Vec<_>>()
    };
    let (inputs, outputs) = (io("inputs"), io("outputs"));
    assert_eq!(inputs.len(), 1, "{j}");
    assert!(inputs[0].ends_with("[1,1,16,16] float32"), "{inputs:?}");
    assert_eq!(outputs.len(), 1, "{j}");
    assert!(outputs[0].ends_with("[1,11,16,16] float32"), "{outputs:?}");
    let text = common::amp_cmd()
        .args(["info", "--model", &model])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    let first = inputs[0].split(' ').next().unwrap();
    assert!(
        text.contains(&format!("input        {first} [1, 1, 16, 16] float32")),
        "{text}"
    );
}

/// `info` counts the parameters the model has: a grouped ConvTranspose's, stored block-diagonal, once (the
/// fixture's ONNX initializers hold 318 values: a 2-group and a 6-group ConvTranspose, and one bias).
#[test]
fn info_counts_a_grouped_conv_transposes_parameters_as_the_model_has_them() {
    let model = common::root().join("tests/fixtures/ops/conv_transpose_groups/model.onnx");
    let j = common::amp(&["info", "--model", model.to_str().unwrap(), "--json"]);
    assert_eq!(j["parameters"], 318, "{j}");
}

/// A model without MAC ops costs no bit-ops at any precision: the cheapest uniform candidate is then the
/// one of fewest bits, not the most accurate one (which an ample allowed drop would otherwise keep).
#[test]
fn without_mac_ops_the_cheapest_candidate_is_the_narrowest() {
    use ndarray::ArrayD;
    use ndarray_npy::{NpzReader, NpzWriter};
    let fixture = common::root().join("tests/fixtures/ops/layer_norm");
    let mut npz =
        NpzReader::new(std::fs::File::open(fixture.join("fixture.npz")).unwrap()).unwrap();
    let calib: ArrayD<f32> = npz.by_name("calib").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.npz");
    let mut w = NpzWriter::new(std::fs::File::create(&data).unwrap());
    w.add_array("inputs", &calib).unwrap();
    w.finish().unwrap();
    let (model, data) = (fixture.join("model.onnx"), data.display().to_string());
    let results = dir.path().join("results").display().to_string();
    let r = amp(&[
        "tune",
        "--model",
        model.to_str().unwrap(),
        "--data",
        &data,
        "--results",
        &results,
        "--metric",
        "sqnr",
        "--allowed-drop",
        "50",
        "--verify-on",
        "none",
        "--json",
    ]);
    let config = r["chosen"]["config"].as_array().expect("a chosen config");
    assert!(
        !config.is_empty() && config.iter().all(|c| c == "a8w8"),
        "{r}"
    );
}
