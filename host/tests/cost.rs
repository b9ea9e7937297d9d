//! The cost model and phase 3 through the binary: Convert prices estimated on the reference backend and
//! measured on Qualcomm's HTP emulator, kept in convert_costs.json and reused until the device changes; the
//! α table with measured accuracy and latency; the marked config exports and evaluates as reported.

use std::path::Path;

mod common;
use common::{eval_encodings, export};

fn tune(results: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--allowed-drop", "0.01", "--phase3"];
    args.extend_from_slice(extra);
    common::tune("digits_outlier", results, &args)
}

/// Checks the α table: six rows, each measured, the marked one meeting the target no slower than phase 2's.
fn check_phase3(r: &serde_json::Value, dir: &Path) -> f64 {
    let p3 = &r["phase3"];
    let pts = p3["points"].as_array().unwrap();
    let alphas: Vec<f64> = pts.iter().map(|p| p["alpha"].as_f64().unwrap()).collect();
    assert_eq!(alphas, vec![1.0, 0.8, 0.6, 0.4, 0.2, 0.0], "{r}");
    for p in pts {
        assert!(p["score"].as_f64().is_some(), "{p}");
        assert!(p["latency_us"].as_f64().unwrap() > 0.0, "{p}");
    }
    // α = 1 is the phase-2 solution; Convert overhead never grows as α falls and α = 0 has none
    assert_eq!(pts[0]["groups_raised"], 0);
    let conv: Vec<f64> = pts
        .iter()
        .map(|p| p["convert_us"].as_f64().unwrap())
        .collect();
    assert!(conv.windows(2).all(|w| w[1] <= w[0] + 1e-9), "{conv:?}");
    assert_eq!(pts[5]["converts"], 0, "{r}");
    // raising groups never costs accuracy below the target here
    let fp32 = r["fp32"].as_f64().unwrap();
    let m = p3["marked"].as_u64().expect("a marked point") as usize;
    assert!(pts[m]["score"].as_f64().unwrap() >= fp32 - 0.01, "{r}");
    assert!(
        pts[m]["latency_us"].as_f64().unwrap() <= pts[0]["latency_us"].as_f64().unwrap(),
        "{r}"
    );
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("phase3.json")).unwrap()).unwrap();
    assert_eq!(file["marked"].as_u64(), Some(m as u64));
    assert_eq!(file["points"].as_array().unwrap().len(), 6);
    pts[m]["score"].as_f64().unwrap()
}

#[test]
fn reference_phase3_reuses_prices_and_prices_again_on_another_device() {
    let dir = tempfile::tempdir().unwrap();
    let r = tune(
        dir.path(),
        &["--device", "inprocess", "--cost", "bitops+convert"],
    );
    let cm = &r["cost_model"];
    assert_eq!(cm["convert_prices"], "estimated, not measured", "{r}");
    let priced = cm["pricing"]["measured"].as_u64().unwrap();
    assert!(priced > 0, "{r}");
    assert_eq!(cm["pricing"]["reused"], 0);
    let marked_acc = check_phase3(&r, dir.path());

    // cost = bit-ops + Convert µs / b, relative to the baseline's bit-ops
    let fit = &cm["fit"];
    let b = fit["b"].as_f64().unwrap();
    assert!(b > 0.0, "{fit}");
    let baseline = r["baseline"].as_str().unwrap();
    let base_bitops = fit["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p[0] == baseline)
        .unwrap()[1]
        .as_f64()
        .unwrap();
    let c = &r["chosen_cost"];
    let want = r["chosen"]["relative_bitops"].as_f64().unwrap()
        + c["convert_us"].as_f64().unwrap() / b / base_bitops;
    assert!(
        (c["relative_cost"].as_f64().unwrap() - want).abs() < 1e-9,
        "{r}"
    );
    for f in ["convert_costs.json", "phase3.json", "pareto_cost.svg"] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    let svg = std::fs::read_to_string(dir.path().join("pareto_cost.svg")).unwrap();
    assert!(
        svg.contains("estimated, not measured"),
        "the estimate is labelled"
    );
    // latency per pareto point is measured with --cost latency only
    assert!(!dir.path().join("pareto_latency.svg").exists());
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(
        md.matches("estimated, not measured").count() == 1 && md.contains("Phase 3"),
        "said once: {md}"
    );

    // a rerun prices nothing and measures no latency again
    let again = tune(
        dir.path(),
        &["--device", "inprocess", "--cost", "bitops+convert"],
    );
    assert_eq!(again["cost_model"]["pricing"]["measured"], 0, "{again}");
    assert_eq!(
        again["cost_model"]["pricing"]["reused"].as_u64(),
        Some(priced)
    );
    assert_eq!(again["latency_measurements"], 0, "{again}");
    assert_eq!(again["evaluations"], 0, "{again}");

    // prices from another device are set aside and measured again
    let path = dir.path().join("convert_costs.json");
    let mut table: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    table["provenance"]["device"] = "another-phone".into();
    std::fs::write(&path, table.to_string()).unwrap();
    let moved = tune(
        dir.path(),
        &["--device", "inprocess", "--cost", "bitops+convert"],
    );
    let p = &moved["cost_model"]["pricing"];
    assert_eq!(p["measured"].as_u64(), Some(priced), "{moved}");
    assert!(
        p["invalidated"]
            .as_str()
            .unwrap()
            .contains("device changed"),
        "{moved}"
    );

    // the marked config exports and evaluates to the accuracy the table reports
    let enc = dir.path().join("phase3-encodings.json");
    export(dir.path(), &enc, &["--phase3"]);
    let e = eval_encodings("digits_outlier", &enc, &[]);
    assert_eq!(e["top1"].as_f64().unwrap(), marked_acc, "{e}");
}

#[test]
fn htp_phase3_measures_converts_and_latency_on_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--device",
        "local",
        "--backend",
        "htp",
        "--cost",
        "latency",
        "--latency-iterations",
        "10",
    ];
    let r = tune(dir.path(), &args);
    let cm = &r["cost_model"];
    assert_eq!(cm["convert_prices"], "measured", "{r}");
    assert!(
        cm["method"].as_str().unwrap().contains("QNN execute time"),
        "{r}"
    );
    assert!(
        cm["provenance"]["backend"]
            .as_str()
            .unwrap()
            .starts_with("htp-v73"),
        "{r}"
    );
    assert_eq!(cm["fit"]["points"].as_array().unwrap().len(), 3, "{r}");
    // --cost latency: the chosen point carries its measured latency
    assert!(
        r["chosen_cost"]["latency_us"].as_f64().unwrap() > 0.0,
        "{r}"
    );
    assert!(
        r["chosen"]["score"].as_f64().unwrap() >= r["fp32"].as_f64().unwrap() - 0.01,
        "{r}"
    );
    check_phase3(&r, dir.path());
    for f in ["pareto_cost.svg", "pareto_latency.svg"] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    let again = tune(dir.path(), &args);
    assert_eq!(again["cost_model"]["pricing"]["measured"], 0, "{again}");
    assert_eq!(again["latency_measurements"], 0, "{again}");
}
