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

/// Starts `amp-agent serve --listen 127.0.0.1:0` with `extra` flags; the agent and its port.
fn agent(work: &std::path::Path, extra: &[&str]) -> (std::process::Child, u16) {
    common::spawn_listening(
        std::process::Command::new(common::bin("amp-agent"))
            .args(["serve", "--listen", "127.0.0.1:0", "--work"])
            .arg(work)
            .args(extra),
    )
}

/// Sends `signal` (STOP, CONT) to a process.
fn signal(child: &std::process::Child, signal: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} {}", child.id());
}

/// The defect this guards: an agent stopped with SIGSTOP (a frozen phone) made the host wait forever.
#[test]
fn a_stalled_device_is_given_up_after_its_deadline() {
    let works: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (mut a, pa) = agent(works[0].path(), &[]);
    let (mut b, pb) = agent(works[1].path(), &[]);
    let (da, db) = (format!("tcp:127.0.0.1:{pa}"), format!("tcp:127.0.0.1:{pb}"));
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("r");
    // a metric command that sleeps keeps the run going long enough to stall a device in the middle
    let mut cmd = common::full_curve("digits_outlier", &results, &[&da, &db]);
    cmd.args([
        "--metric-cmd",
        "sleep 0.1; echo 0.5; :",
        "--verify-on",
        "none",
        "--device-timeout",
        "3",
    ]);
    let run = spawn(&mut cmd);
    let journal = results.join("journal.jsonl");
    let start = std::time::Instant::now();
    while std::fs::read_to_string(&journal)
        .unwrap_or_default()
        .lines()
        .count()
        < 4
    {
        assert!(start.elapsed() < Duration::from_secs(120), "no evaluations");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&a, "STOP");
    let out = run.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("device {da} lost"))
            && err.contains("no answer within 3 s (--device-timeout")
            && err.contains("dropped"),
        "{err}"
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let served = r["served"].as_array().unwrap();
    let total: u64 = served.iter().map(|s| s[1].as_u64().unwrap()).sum();
    assert_eq!(total, r["evaluations"].as_u64().unwrap(), "{r}");

    // alone, the stalled device ends the run with exit 3 (a device lost), naming it, within its deadline
    let t = std::time::Instant::now();
    let args = common::tune_args("digits_outlier", &dir.path().join("r2"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, err) = amp_status(
        &[&args[..], &["--device", &da, "--device-timeout", "2"]].concat(),
        dir.path(),
    );
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(&da) && err.contains("--device-timeout"),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    signal(&a, "CONT");
    for c in [&mut a, &mut b] {
        c.kill().unwrap();
        c.wait().unwrap();
    }
}

/// The defect this guards: the agent served one session at a time, so a client that sent half a frame
/// blocked every other client (forever, when it never closed).
#[test]
fn a_client_holding_half_a_frame_blocks_nobody_and_is_let_go() {
    use std::io::{Read, Write};
    let work = tempfile::tempdir().unwrap();
    let (mut agent, port) = agent(work.path(), &["--sessions", "2", "--idle-timeout", "5"]);
    let device = format!("tcp:127.0.0.1:{port}");
    let half = || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(&[200, 0]).unwrap();
        s
    };
    let dir = tempfile::tempdir().unwrap();
    let tune = |name: &str| {
        let args = common::tune_args("digits_outlier", &dir.path().join(name));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        amp_status(
            &[&args[..], &["--device", &device, "--verify-on", "none"]].concat(),
            dir.path(),
        )
    };
    // beside one such client, a tune runs as usual
    let first = half();
    let (code, err) = tune("a");
    assert_eq!(code, 0, "{err}");
    drop(first);
    std::thread::sleep(Duration::from_millis(300));
    // with every session taken, a client is told so at once
    let mut held = [half(), half()];
    std::thread::sleep(Duration::from_millis(200));
    let t = std::time::Instant::now();
    let (code, err) = tune("b");
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("busy") && err.contains("--sessions"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    // after --idle-timeout the silent clients are let go: their connections close and the sessions free up
    for s in &mut held {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = [0u8; 64];
        assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    }
    let (code, err) = tune("c");
    assert_eq!(code, 0, "{err}");
    agent.kill().unwrap();
    agent.wait().unwrap();
}
