//! `tune --device adb:SERIAL` through Debian's real `adb` client and server, against the adbd stand-in
//! (`amp-adbd-standin`): the agent is pushed, started, reached through `adb forward`, and cleaned up.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command};

mod common;
use common::{
    amp_in, assert_same_as_single, bin, finish, full_curve, root, spawn, wait_for_phase1,
};

/// The whole curve of digits_outlier on `device`, through the adb server at `adb_socket`.
fn tune(results: &Path, device: &str, adb_socket: &str) -> serde_json::Value {
    amp_in(full_curve("digits_outlier", results, &[device]).env("ADB_SERVER_SOCKET", adb_socket))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An adb server of our own on a free port, so the test never touches a user's server.
struct AdbServer(u16);

impl AdbServer {
    fn start() -> AdbServer {
        // two adb servers starting at once on a fresh machine race to create ~/.android, and the loser
        // exits ("Cannot mkdir ... File exists")
        if let Some(home) = std::env::var_os("HOME") {
            let _ = std::fs::create_dir_all(Path::new(&home).join(".android"));
        }
        let port = free_port();
        let s = AdbServer(port);
        let out = s
            .cmd()
            .arg("start-server")
            .output()
            .expect("adb is installed (apt-get install adb)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        s
    }
    fn cmd(&self) -> Command {
        let mut c = Command::new("adb");
        c.args(["-P", &self.0.to_string()]);
        c
    }
    /// `adb connect` to each serial, which must succeed.
    fn connect(&self, serials: &[String]) {
        for s in serials {
            let out = self.cmd().args(["connect", s]).output().unwrap();
            // `adb connect` exits 0 even when it fails: read what it says
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("connected to"),
                "{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
    fn socket(&self) -> String {
        format!("tcp:127.0.0.1:{}", self.0)
    }
}

impl Drop for AdbServer {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").output();
    }
}

fn standin(sandbox: &Path) -> (Child, u16) {
    standin_as(sandbox, &["--model", "amp_standin"])
}

/// A stand-in device with `flags` (`--model`, `--soc`, `--abi`).
fn standin_as(sandbox: &Path, flags: &[&str]) -> (Child, u16) {
    common::spawn_listening(
        Command::new(bin("amp-adbd-standin"))
            .args(["--port", "0", "--sandbox", sandbox.to_str().unwrap()])
            .args(flags),
    )
}

#[test]
fn tune_over_adb_matches_in_process_and_cleans_up() {
    let server = AdbServer::start();
    let (sandbox, mut device, serial) = one_standin(&server);
    let listed = String::from_utf8_lossy(
        &server
            .cmd()
            .args(["devices", "-l"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(
        listed.contains(&serial) && listed.contains("model:amp_standin"),
        "{listed}"
    );

    // --adb-port reaches our adb server without ADB_SERVER_SOCKET
    let out = Command::new(env!("CARGO_BIN_EXE_amp-host"))
        .args(["devices", "--json", "--adb-port", &server.0.to_string()])
        .env_remove("ADB_SERVER_SOCKET")
        .output()
        .unwrap();
    let devices: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let me = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device"] == format!("adb:{serial}"))
        .unwrap_or_else(|| panic!("{devices}"));
    assert_eq!(
        (me["state"].as_str(), me["model"].as_str()),
        (Some("device"), Some("amp_standin"))
    );

    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let over_adb = tune(a.path(), &format!("adb:{serial}"), &server.socket());
    let here = tune(b.path(), "inprocess", &server.socket());
    assert_eq!(over_adb["chosen"], here["chosen"]);
    let curve = |d: &Path| std::fs::read_to_string(d.join("pareto.csv")).unwrap();
    assert_eq!(curve(a.path()), curve(b.path()));
    assert!(over_adb["pushed_bytes"].as_u64().unwrap() > 0);
    assert!(
        sandbox.path().join("amp/amp-agent").is_file(),
        "the agent was not pushed into the device folder"
    );

    // again, with a fresh journal: every evaluation runs on the device, no blob is pushed
    let again = tune(a.path(), &format!("adb:{serial}"), &server.socket());
    assert_eq!(again["evaluations"], 0);
    let c = tempfile::tempdir().unwrap();
    let fresh = tune(c.path(), &serial, &server.socket());
    assert_eq!(fresh["pushed_bytes"].as_u64(), Some(0), "{fresh}");
    assert!(fresh["evaluations"].as_u64().unwrap() > 0);

    // no forward is left behind
    let fwd = String::from_utf8_lossy(
        &server
            .cmd()
            .args(["forward", "--list"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(fwd.trim().is_empty(), "forwards left: {fwd}");

    // a device that vanished is an error naming it
    device.kill().unwrap();
    device.wait().unwrap();
    let ex = root().join("examples/digits_outlier");
    let out = Command::new(env!("CARGO_BIN_EXE_amp-host"))
        .args([
            "tune",
            "--model",
            ex.join("model.onnx").to_str().unwrap(),
            "--data",
            ex.join("val.npz").to_str().unwrap(),
        ])
        .args([
            "--results",
            c.path().to_str().unwrap(),
            "--device",
            &format!("adb:{serial}"),
            "--fresh",
        ])
        .env("ADB_SERVER_SOCKET", server.socket())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(&serial) && !err.contains("panicked"),
        "{err}"
    );
}

/// A stand-in device in a sandbox of its own, connected to `server`: (sandbox, process, serial).
fn one_standin(server: &AdbServer) -> (tempfile::TempDir, Child, String) {
    let sandbox = tempfile::tempdir().unwrap();
    let (device, port) = standin(sandbox.path());
    let serial = format!("127.0.0.1:{port}");
    server.connect(std::slice::from_ref(&serial));
    (sandbox, device, serial)
}

/// Two stand-in devices, each in a sandbox of its own, connected to `server`: (sandboxes, processes,
/// serials).
fn two_standins(server: &AdbServer) -> (Vec<tempfile::TempDir>, [Child; 2], [String; 2]) {
    let sandboxes = vec![tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let (d1, p1) = standin(sandboxes[0].path());
    let (d2, p2) = standin(sandboxes[1].path());
    let serials = [format!("127.0.0.1:{p1}"), format!("127.0.0.1:{p2}")];
    server.connect(&serials);
    (sandboxes, [d1, d2], serials)
}

#[test]
fn a_pool_of_two_adb_devices_survives_one_vanishing_in_phase_1() {
    let server = AdbServer::start();
    let (_sandboxes, [mut d1, mut d2], serials) = two_standins(&server);
    let run = |dir: &Path, devices: &[&String]| {
        let devices: Vec<String> = devices.iter().map(|d| format!("adb:{d}")).collect();
        let devices: Vec<&str> = devices.iter().map(String::as_str).collect();
        spawn(full_curve("mnist_mbv", dir, &devices).env("ADB_SERVER_SOCKET", server.socket()))
    };
    // one device, uninterrupted
    let single_dir = tempfile::tempdir().unwrap();
    let single = finish(run(single_dir.path(), &[&serials[1]]));
    // both, with the first device vanishing once phase 1 has journalled a few evaluations
    let dir = tempfile::tempdir().unwrap();
    let mut child = run(dir.path(), &[&serials[0], &serials[1]]);
    wait_for_phase1(&mut child, &dir.path().join("journal.jsonl"), 4);
    d1.kill().unwrap();
    d1.wait().unwrap();
    let r = finish(child);
    assert_same_as_single(&r, dir.path(), &single, single_dir.path());
    d2.kill().unwrap();
    d2.wait().unwrap();
}

#[test]
fn a_metric_command_scores_on_the_host_what_an_adb_device_ran() {
    let server = AdbServer::start();
    let (_sandbox, mut device, serial) = one_standin(&server);
    let cmd = common::top1_cmd(&root().join("examples/metrics/top1.py"), "digits_outlier");
    let run = |dir: &Path, device: &str| {
        amp_in(
            common::tune_cmd(
                "digits_outlier",
                dir,
                &[
                    "--metric-cmd",
                    &cmd,
                    "--device",
                    device,
                    "--verify-on",
                    "none",
                ],
            )
            .env("ADB_SERVER_SOCKET", server.socket()),
        )
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let over_adb = run(a.path(), &format!("adb:{serial}"));
    let here = run(b.path(), "local");
    assert_eq!(over_adb["chosen"], here["chosen"], "{over_adb}\n{here}");
    assert_eq!(over_adb["uniform"], here["uniform"]);
    // every evaluated config's outputs came back through the forward: 10 classes of float32 per sample
    let evaluations = over_adb["evaluations"].as_u64().unwrap();
    let pulled = over_adb["outputs_bytes"].as_u64().unwrap();
    assert!(
        evaluations > 0 && pulled >= evaluations * 10 * 4,
        "{over_adb}"
    );
    device.kill().unwrap();
    device.wait().unwrap();
}

#[test]
fn check_over_two_adb_devices_reports_each_and_one_vanishing_exits_3() {
    let server = AdbServer::start();
    let (_sandboxes, [mut d1, mut d2], serials) = two_standins(&server);
    let work = tempfile::tempdir().unwrap();
    let ex = root().join("examples/digits_outlier");
    let run = |junit: &str| {
        let out = common::amp_cmd()
            .args(["check", "--model", ex.join("model.onnx").to_str().unwrap()])
            .args(["--data", ex.join("val.npz").to_str().unwrap()])
            .args(["--config", "a16w8,a16w8,a16w8,a16w8", "--max-drop", "0.02"])
            .args(["--device", &format!("adb:{}", serials[0])])
            .args(["--device", &format!("adb:{}", serials[1])])
            .args(["--json", "--junit", junit])
            .env("ADB_SERVER_SOCKET", server.socket())
            .current_dir(work.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!err.contains("panicked"), "{err}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        (out.status.code(), v, err)
    };
    let (code, v, err) = run("farm.xml");
    assert_eq!(code, Some(0), "{err}");
    let devices = v["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2, "{v}");
    // both devices run the same agent on the same data: the same score
    assert_eq!(devices[0]["score"], devices[1]["score"], "{v}");
    assert!(
        devices.iter().all(|d| d["checks"][0]["pass"] == true),
        "{v}"
    );

    d1.kill().unwrap();
    d1.wait().unwrap();
    let (code, v, err) = run("lost.xml");
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains(&serials[0]), "{err}");
    let devices = v["devices"].as_array().unwrap();
    assert!(devices[0]["error"].is_string(), "{v}");
    assert!(devices[1]["score"].is_number(), "{v}");
    let xml = std::fs::read_to_string(work.path().join("lost.xml")).unwrap();
    assert!(
        xml.contains("name=\"reachable\"") && xml.contains("<error"),
        "{xml}"
    );
    d2.kill().unwrap();
    d2.wait().unwrap();
}

/// The agent as it runs on an ARM phone or board: the aarch64 build (scripts/build-agent-arm64.sh) pushed
/// to an arm64 stand-in device, which runs it under qemu-aarch64. `amp-host devices` reads the device's
/// properties, and the tune gives the same curve, choice and encodings as in this process.
#[test]
fn an_aarch64_agent_under_emulation_gives_the_same_results() {
    let arm = std::env::var_os("AMP_AGENT_ARM64")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root().join("target/aarch64-unknown-linux-gnu/release/amp-agent"));
    assert!(
        arm.is_file(),
        "{} missing: run scripts/build-agent-arm64.sh --emulator (scripts/test.sh does)",
        arm.display()
    );
    let server = AdbServer::start();
    let sandbox = tempfile::tempdir().unwrap();
    let (mut device, port) = standin_as(
        sandbox.path(),
        &[
            "--model",
            "amp_arm",
            "--abi",
            "arm64-v8a",
            "--soc",
            "SM8550",
        ],
    );
    let serial = format!("127.0.0.1:{port}");
    server.connect(std::slice::from_ref(&serial));
    let facts = || {
        let out = Command::new(env!("CARGO_BIN_EXE_amp-host"))
            .args(["devices", "--json"])
            .env("ADB_SERVER_SOCKET", server.socket())
            .env("AMP_AGENT_DEVICE", &arm)
            .output()
            .unwrap();
        let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        all.as_array()
            .unwrap()
            .iter()
            .find(|d| d["device"] == format!("adb:{serial}"))
            .cloned()
            .unwrap_or_else(|| panic!("{all}"))
    };
    let before = facts();
    assert_eq!(
        (&before["soc"], &before["abi"], &before["agent"]),
        (
            &serde_json::json!("QTI SM8550"),
            &serde_json::json!("arm64-v8a"),
            &serde_json::json!("absent")
        ),
        "{before}"
    );

    let tune = |results: &Path, device: &str| {
        amp_in(
            common::tune_cmd("digits_outlier", results, &["--verify-on", "none"])
                .args(["--device", device])
                .env("ADB_SERVER_SOCKET", server.socket())
                .env("AMP_AGENT_DEVICE", &arm),
        )
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let on_arm = tune(a.path(), &format!("adb:{serial}"));
    let here = tune(b.path(), "inprocess");
    assert!(on_arm["evaluations"].as_u64().unwrap() > 0, "{on_arm}");
    assert_eq!(on_arm["chosen"], here["chosen"]);
    for f in ["pareto.csv", "config.json"] {
        let read = |d: &Path| std::fs::read_to_string(d.join(f)).unwrap();
        assert_eq!(read(a.path()), read(b.path()), "{f}");
    }
    let encodings = |d: &Path| {
        let out = d.join("e.json");
        amp_in(common::amp_cmd().args([
            "export",
            "--results",
            d.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]));
        std::fs::read_to_string(out).unwrap()
    };
    assert_eq!(encodings(a.path()), encodings(b.path()));
    // what ran on the device is the aarch64 program
    let pushed = ["amp/.amp-agent.aarch64", "amp/amp-agent"]
        .map(|p| sandbox.path().join(p))
        .into_iter()
        .find(|p| p.is_file() && std::fs::read(p).unwrap() == std::fs::read(&arm).unwrap());
    assert!(pushed.is_some(), "the aarch64 agent is not on the device");
    assert_eq!(facts()["agent"], "current");
    let fwd = server.cmd().args(["forward", "--list"]).output().unwrap();
    let fwd = String::from_utf8_lossy(&fwd.stdout);
    assert!(fwd.trim().is_empty(), "forwards left: {fwd}");
    device.kill().unwrap();
    device.wait().unwrap();
}

/// A farm as a lab runs one: three devices of two SoCs behind two adb servers. `devices` lists each with its
/// server and SoC; a pool that mixes SoCs is refused; `tune --per-soc` tunes each SoC on its own devices;
/// `check --device soc:NAME` checks the devices of one SoC, and a worse config fails there with exit 1 and a
/// JUnit file that names the device and the threshold.
#[test]
fn a_farm_behind_two_adb_servers_is_tuned_and_checked_per_soc() {
    let servers = [AdbServer::start(), AdbServer::start()];
    let boxes: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let socs = ["SM8550", "SM8650", "SM8550"];
    let mut devices = Vec::new();
    let mut targets = Vec::new();
    for (i, soc) in socs.iter().enumerate() {
        let (child, port) = standin_as(boxes[i].path(), &["--model", "amp_farm", "--soc", soc]);
        let server = &servers[usize::from(i == 2)];
        let serial = format!("127.0.0.1:{port}");
        server.connect(std::slice::from_ref(&serial));
        devices.push(child);
        targets.push(format!("adb:{serial}@127.0.0.1:{}", server.0));
    }
    let farm: Vec<String> = servers
        .iter()
        .flat_map(|s| ["--adb-server".to_string(), format!("127.0.0.1:{}", s.0)])
        .collect();
    let amp = |args: &[&str], dir: &Path| {
        let out = common::amp_cmd()
            .args(&farm)
            .args(args)
            .env_remove("ADB_SERVER_SOCKET")
            .current_dir(dir)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!err.contains("panicked"), "{err}");
        let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (out.status.code(), json, err)
    };
    let work = tempfile::tempdir().unwrap();

    let (code, listed, err) = amp(&["devices", "--json"], work.path());
    assert_eq!(code, Some(0), "{err}");
    for (t, soc) in targets.iter().zip(socs) {
        let d = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["device"] == *t)
            .unwrap_or_else(|| panic!("{t} not in {listed}"));
        assert_eq!(d["soc"], format!("QTI {soc}"), "{d}");
        assert_eq!(d["state"], "device", "{d}");
    }

    let (model, data) = common::example("digits_outlier");
    let results = work.path().join("r");
    let tune = |extra: &[&str]| {
        let mut args = common::tune_args("digits_outlier", &results);
        args.extend(["--device", "all", "--verify-on", "none", "--json"].map(String::from));
        args.extend(extra.iter().map(|e| e.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        amp(&args, work.path())
    };
    let (code, _, err) = tune(&[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("mixes SoCs") && err.contains("SM8550") && err.contains("SM8650"),
        "{err}"
    );
    let (code, per_soc, err) = tune(&["--per-soc"]);
    assert_eq!(code, Some(0), "{err}");
    let here = amp_in(&mut common::tune_cmd(
        "digits_outlier",
        &work.path().join("here"),
        &["--device", "inprocess", "--verify-on", "none"],
    ));
    let rows = per_soc["per_soc"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{per_soc}");
    for (row, (soc, n)) in rows.iter().zip([("QTI SM8550", 2), ("QTI SM8650", 1)]) {
        assert_eq!(row["soc"], soc, "{row}");
        assert_eq!(row["devices"].as_array().unwrap().len(), n, "{row}");
        assert_eq!(row["config"], here["chosen"]["config"], "{row}");
    }
    for folder in ["QTI-SM8550", "QTI-SM8650"] {
        assert!(
            results.join(folder).join("config.json").is_file(),
            "{folder}"
        );
    }
    assert!(results.join("per-soc.md").is_file());

    let check = |config: &str, junit: &str| {
        let r = results.join("QTI-SM8550");
        let base = [
            "check",
            "--model",
            &model,
            "--data",
            &data,
            "--device",
            "soc:SM8550",
            "--max-drop",
            "0.02",
            "--json",
            "--junit",
            junit,
        ];
        let how: Vec<&str> = match config {
            "" => vec!["--results", r.to_str().unwrap()],
            c => vec!["--config", c],
        };
        amp(&[&base[..], &how[..]].concat(), work.path())
    };
    let (code, v, err) = check("", "pass.xml");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(v["devices"].as_array().unwrap().len(), 2, "{v}");
    let (code, v, err) = check("a8w8,a8w8,a8w8,a8w8", "fail.xml");
    assert_eq!(code, Some(1), "{v} {err}");
    let parsed = Command::new(common::python())
        .args([
            "-c",
            "import sys, xml.etree.ElementTree as E\n\
             for c in E.parse(sys.argv[1]).iter('testcase'):\n\
             \tf = c.find('failure')\n\
             \tif f is not None: print(c.get('classname'), c.get('name'), f.get('message'))",
        ])
        .arg(work.path().join("fail.xml"))
        .output()
        .unwrap();
    let failures = String::from_utf8_lossy(&parsed.stdout);
    assert!(
        parsed.status.success(),
        "{}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    for t in [&targets[0], &targets[2]] {
        assert!(
            failures
                .lines()
                .any(|l| l.contains(t.as_str()) && l.contains("drop")),
            "{failures}"
        );
    }
    for mut d in devices {
        d.kill().unwrap();
        d.wait().unwrap();
    }
}
