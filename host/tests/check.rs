//! `amp-host check`, the CI gate, on the real binary: a tuned config passes on its device, a worse one
//! fails with exit 1 and a JUnit report naming the device and threshold, a device that cannot be reached
//! gives exit 3 with the others still reported, a latency regression against a baseline fails, and
//! thresholds that cannot apply are usage errors.

use std::path::Path;

mod common;
use common::{amp_cmd, example, tune};

/// Every group of digits_outlier at a8w8.
const ALL8: [&str; 2] = ["--config", "a8w8,a8w8,a8w8,a8w8"];

/// `amp-host check` on digits_outlier in `dir` with `extra` flags: (exit code, stdout, stderr).
fn check(dir: &Path, extra: &[&str]) -> (i32, String, String) {
    let (model, data) = example("digits_outlier");
    let out = amp_cmd()
        .args(["check", "--model", &model, "--data", &data])
        .args(extra)
        .current_dir(dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        err,
    )
}

/// The test cases of a JUnit file, read by an XML parser: (suite, case, failure or error message).
fn junit_cases(path: &Path) -> Vec<(String, String, Option<String>)> {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    doc.descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|c| {
            let suite = c.parent_element().unwrap().attribute("name").unwrap();
            let msg = c
                .children()
                .find(|n| n.has_tag_name("failure") || n.has_tag_name("error"))
                .and_then(|n| n.attribute("message"))
                .map(str::to_string);
            (
                suite.to_string(),
                c.attribute("name").unwrap().to_string(),
                msg,
            )
        })
        .collect()
}

#[test]
fn a_tuned_config_passes_and_a_worse_one_fails_with_a_junit_report() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let results = d.join("results");
    let tuned = tune(
        "digits_outlier",
        &results,
        &["--allowed-drop", "0.01", "--verify-on", "none"],
    );
    let r = results.to_str().unwrap();
    let (code, out, err) = check(
        d,
        &[
            "--results",
            r,
            "--max-drop",
            "0.01",
            "--min-metric",
            "0.95",
            "--json",
            "--junit",
            "ok.xml",
            "--summary",
            "ok.md",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["passed"], true, "{v}");
    let dev = &v["devices"][0];
    assert_eq!(dev["device"], "local");
    // the same config scores on the device what the tune measured
    assert_eq!(dev["score"], tuned["chosen"]["score"], "{v}\n{tuned}");
    assert!(dev["latency_us"]["median"].as_f64().unwrap() > 0.0, "{v}");
    let cases = junit_cases(&d.join("ok.xml"));
    assert_eq!(cases.len(), 2, "{cases:?}");
    assert!(
        cases.iter().all(|c| c.0 == "local" && c.2.is_none()),
        "{cases:?}"
    );
    let md = std::fs::read_to_string(d.join("ok.md")).unwrap();
    assert!(md.contains("| local | pass |"), "{md}");

    // all-int8 loses 36 points of top-1 on this example
    let bad = [
        "--max-drop",
        "0.01",
        "--junit",
        "bad.xml",
        "--summary",
        "bad.md",
    ];
    let (code, _, err) = check(d, &[&ALL8[..], &bad].concat());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("local max-drop"), "{err}");
    let cases = junit_cases(&d.join("bad.xml"));
    let failed = cases
        .iter()
        .find(|c| c.1 == "max-drop")
        .unwrap_or_else(|| panic!("{cases:?}"));
    let msg = failed.2.as_deref().unwrap();
    assert!(msg.contains("local") && msg.contains("limit 0.01"), "{msg}");
    let md = std::fs::read_to_string(d.join("bad.md")).unwrap();
    assert!(md.contains("**FAIL**") && md.contains("max-drop"), "{md}");
}

#[test]
fn an_unreachable_device_exits_3_and_the_others_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // a port nobody listens on
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gone = format!("tcp:127.0.0.1:{port}");
    let (code, out, err) = check(
        d,
        &[
            "--config",
            "a16w8,a16w8,a16w8,a16w8",
            "--device",
            "local",
            "--device",
            &gone,
            "--min-metric",
            "0.9",
            "--json",
            "--junit",
            "j.xml",
        ],
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains(&gone), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let devices = v["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2, "{v}");
    assert!(devices[0]["score"].as_f64().unwrap() > 0.9, "{v}");
    assert!(devices[1]["error"].as_str().unwrap().contains(&gone), "{v}");
    let cases = junit_cases(&d.join("j.xml"));
    assert!(
        cases
            .iter()
            .any(|c| c.0 == gone && c.1 == "reachable" && c.2.is_some()),
        "{cases:?}"
    );
    assert!(
        cases
            .iter()
            .any(|c| c.0 == "local" && c.1 == "min-metric" && c.2.is_none()),
        "{cases:?}"
    );
}

#[test]
fn latency_is_checked_against_a_baseline_and_a_limit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = ["--config", "a16w8,a16w8,a16w8,a16w8"];
    let (code, out, err) = check(d, &[&cfg[..], &["--json"]].concat());
    assert_eq!(code, 0, "{err}");
    let mut base: serde_json::Value = serde_json::from_str(&out).unwrap();
    // the same run as its own baseline passes a generous regression limit
    std::fs::write(d.join("base.json"), base.to_string()).unwrap();
    let (code, _, err) = check(
        d,
        &[
            &cfg[..],
            &["--baseline", "base.json", "--max-latency-regression", "100"],
        ]
        .concat(),
    );
    assert_eq!(code, 0, "{err}");
    // a baseline a thousand times faster than this machine: a regression
    let median = base["devices"][0]["latency_us"]["median"].as_f64().unwrap();
    base["devices"][0]["latency_us"]["median"] = (median / 1000.0).into();
    std::fs::write(d.join("fast.json"), base.to_string()).unwrap();
    let (code, out, err) = check(d, &[&cfg[..], &["--baseline", "fast.json"]].concat());
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("FAIL max-latency-regression"), "{out}");
    // and an absolute limit no machine meets
    let (code, out, _) = check(d, &[&cfg[..], &["--max-latency-us", "0.001"]].concat());
    assert_eq!(code, 1);
    assert!(out.contains("FAIL max-latency-us"), "{out}");
}

#[test]
fn thresholds_that_cannot_apply_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // SQNR is measured against FP32: a drop from FP32 means nothing
    let (code, _, err) = check(
        d,
        &[&ALL8[..], &["--metric", "sqnr", "--max-drop", "1"]].concat(),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--min-metric"), "{err}");
    let (code, _, err) = check(d, &["--config", "a8w8,a8w8"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("2 precisions") && err.contains("4 groups"),
        "{err}"
    );
    let (code, _, err) = check(d, &["--min-metric", "0.9"]);
    assert_eq!(code, 2, "{err}");
}
