//! Faults a user's bad day brings, on the real binary: a second run on the same results folder, a journal
//! damaged in the middle or edited by hand. Each is bounded in time.

use std::time::Duration;

mod common;
use common::{amp_status, spawn, tune, tune_cmd};

/// The whole curve of digits_outlier (brute force) into `results`.
fn curve(results: &std::path::Path) -> serde_json::Value {
    tune(
        "digits_outlier",
        results,
        &["--allowed-drop", "none", "--search", "bruteforce"],
    )
}

#[test]
fn a_second_run_on_the_same_results_refuses_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("r");
    // the first run, slowed down by a metric command that sleeps, holds the folder
    let mut first = spawn(&mut tune_cmd(
        "digits_outlier",
        &results,
        &[
            "--metric-cmd",
            "sleep 0.3; echo 0.5; :",
            "--verify-on",
            "none",
        ],
    ));
    let lock = results.join(".lock");
    let start = std::time::Instant::now();
    while !lock.exists() {
        assert!(start.elapsed() < Duration::from_secs(60), "no lock taken");
        std::thread::sleep(Duration::from_millis(50));
    }
    let args = common::tune_args("digits_outlier", &results);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, err) = amp_status(&args, dir.path());
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("in use by another run") && err.contains(&format!("PID {}", first.id())),
        "{err}"
    );
    first.kill().unwrap();
    first.wait().unwrap();
    // the first run was killed: its lock is stale and the next run takes it over
    let (code, err) = amp_status(
        &[
            &args[..],
            &["--metric-cmd", "echo 0.5; :", "--verify-on", "none"],
        ]
        .concat(),
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(!lock.exists(), "the lock outlived its run");
}

#[test]
fn a_damaged_journal_keeps_every_good_record_and_says_what_it_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("r");
    let clean = curve(&results);
    let journal = results.join("journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let n = lines.len();
    assert!(n > 10, "{n} records");
    // one line in the middle cut short, one score edited by hand (the chosen one would otherwise be
    // believed), one line of bytes that are not UTF-8
    let mid = n / 2;
    let half = lines[mid].len() / 2;
    lines[mid].truncate(half);
    let edited = lines
        .iter()
        .position(|l| l.contains("\"value\":0.9"))
        .unwrap();
    lines[edited] = lines[edited].replacen("\"value\":0.9", "\"value\":0.1", 1);
    let mut bytes = lines.join("\n").into_bytes();
    bytes.extend_from_slice(b"\n\xff\xfe{\n");
    std::fs::write(&journal, &bytes).unwrap();

    let again = curve(&results);
    // only the damaged records are evaluated again (the invalid line held none), and the curve is the same
    assert_eq!(again["evaluations"], 2, "{again}");
    assert_eq!(again["chosen"], clean["chosen"]);
    let skipped: Vec<&str> = again["journal_skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert!(
        skipped.iter().any(|s| s.contains("checksum"))
            && skipped.iter().any(|s| s.contains("UTF-8"))
            && skipped
                .iter()
                .any(|s| s.contains(&format!("line {}", mid + 1))),
        "{skipped:?}"
    );
    let report = std::fs::read_to_string(results.join("report.md")).unwrap();
    assert!(report.contains("Journal records skipped"), "{report}");
    // --fresh never reads the journal, whatever it holds
    std::fs::write(&journal, b"\xff\xff\xff\n").unwrap();
    let fresh = tune(
        "digits_outlier",
        &results,
        &[
            "--allowed-drop",
            "none",
            "--search",
            "bruteforce",
            "--fresh",
        ],
    );
    assert_eq!(fresh["chosen"], clean["chosen"]);

    // export needs only config.json for the chosen config, and names a pareto.json it cannot use
    let out = dir.path().join("e.json");
    let (o, r) = (out.to_str().unwrap(), results.to_str().unwrap());
    std::fs::remove_file(results.join("pareto.json")).unwrap();
    let (code, err) = amp_status(&["export", "--results", r, "--out", o], dir.path());
    assert_eq!(code, 0, "{err}");
    std::fs::write(results.join("pareto.json"), br#"{"points": 3}"#).unwrap();
    let (code, err) = amp_status(
        &[
            "export",
            "--results",
            r,
            "--out",
            o,
            "--allowed-drop",
            "0.01",
        ],
        dir.path(),
    );
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("pareto.json") && err.contains("no \"points\" list"),
        "{err}"
    );
}
