//! Helpers shared by the end-to-end tests: paths, running the binaries, the examples and their fixtures,
//! QNN's runtime, comparisons of outputs, the journal.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use amp_device::backend::qnn::QnnRuntime;
use amp_device::backend::reference::Reference;
use amp_device::backend::{Array, Inputs};
use amp_device::quant::{BitPlan, Precision, QuantPlan, Stats};
use amp_device::Graph;
use amp_host::import::{import_file, ImportOptions};
use ndarray::ArrayD;
use ndarray_npy::NpzReader;

/// The repository's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A binary of the workspace beside amp-host (amp-agent, amp-adbd-standin); built by scripts/test.sh.
pub fn bin(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_BIN_EXE_amp-host")).with_file_name(name);
    assert!(
        p.is_file(),
        "{} missing: build the workspace first (scripts/test.sh does)",
        p.display()
    );
    p
}

/// `amp-host` with the workspace's agent.
pub fn amp_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_amp-host"));
    c.env("AMP_AGENT", bin("amp-agent"));
    c
}

/// Runs amp-host, which must succeed; its JSON output (Null when it printed none).
pub fn amp(args: &[&str]) -> serde_json::Value {
    amp_in(amp_cmd().args(args))
}

/// Runs a prepared amp-host command, which must succeed; its JSON output (Null when it printed none).
pub fn amp_in(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?} failed: {err}");
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// Runs amp-host in `cwd`, which must not panic; (exit code, stderr).
pub fn amp_status(args: &[&str], cwd: &Path) -> (i32, String) {
    let out = amp_cmd().args(args).current_dir(cwd).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "amp-host panicked: {err}");
    (out.status.code().unwrap_or(-1), err)
}

/// examples/NAME, made by `script` (too large to commit), once `file` exists in it.
pub fn made_example(name: &str, file: &str, script: &str) -> PathBuf {
    let d = root().join("examples").join(name);
    assert!(
        d.join(file).exists(),
        "{} is missing: run {script}",
        d.display()
    );
    d
}

/// The Python with numpy that scripts/python-env.sh makes (scripts/test.sh runs it first), for metric
/// commands as users write them.
pub fn python() -> String {
    let p = root().join(".venv/bin/python");
    assert!(
        p.is_file(),
        "{} missing: run scripts/python-env.sh (scripts/test.sh does)",
        p.display()
    );
    p.display().to_string()
}

/// `examples/metrics/top1.py` (or a copy at `script`) as a metric command on an example's labels.
pub fn top1_cmd(script: &Path, example_name: &str) -> String {
    let (_, data) = example(example_name);
    format!("{} '{}' --labels '{}'", python(), script.display(), data)
}

/// An example's model and data paths.
pub fn example(name: &str) -> (String, String) {
    let d = root().join("examples").join(name);
    (
        d.join("model.onnx").display().to_string(),
        d.join("val.npz").display().to_string(),
    )
}

/// The arguments of `amp-host tune` on an example into `results` (no --json), to extend.
pub fn tune_args(name: &str, results: &Path) -> Vec<String> {
    let (model, data) = example(name);
    let results = results.display().to_string();
    [
        "tune",
        "--model",
        &model,
        "--data",
        &data,
        "--results",
        &results,
    ]
    .map(String::from)
    .to_vec()
}

/// `amp-host tune --json` on an example, writing to `results`, with `extra` flags.
pub fn tune(name: &str, results: &Path, extra: &[&str]) -> serde_json::Value {
    amp_in(&mut tune_cmd(name, results, extra))
}

/// The command of [`tune`], to run another way (in the background, with other environment).
pub fn tune_cmd(name: &str, results: &Path, extra: &[&str]) -> Command {
    let (model, data) = example(name);
    let mut c = amp_cmd();
    c.args(["tune", "--model", &model, "--data", &data, "--results"])
        .arg(results)
        .arg("--json")
        .args(extra);
    c
}

/// The whole curve of an example (brute force, no target) on `devices` (one, or a pool).
pub fn full_curve(name: &str, results: &Path, devices: &[&str]) -> Command {
    let mut c = tune_cmd(
        name,
        results,
        &["--allowed-drop", "none", "--search", "bruteforce"],
    );
    for d in devices {
        c.args(["--device", d]);
    }
    c
}

/// Waits for a command started with piped output, which must succeed; its JSON output.
pub fn finish(child: std::process::Child) -> serde_json::Value {
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Starts a command with its output piped.
pub fn spawn(cmd: &mut Command) -> std::process::Child {
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Starts `cmd` (a server that prints `… listening on HOST:PORT` as its first line of stderr, then keeps
/// logging there) and returns it with that port; the rest of its log is drained.
pub fn spawn_listening(cmd: &mut Command) -> (std::process::Child, u16) {
    use std::io::{BufRead, BufReader};
    let mut child = cmd
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    err.read_line(&mut line).unwrap();
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("no port in {line:?}"));
    (child, port)
}

/// QNN's HTP emulator at arch v73 (fails, not skips, when the library is missing).
pub fn runtime() -> QnnRuntime {
    runtime_at(73)
}

/// QNN's HTP emulator at `arch`.
pub fn runtime_at(arch: u32) -> QnnRuntime {
    let lib = qnn_sys::locate_htp(Some(&root().join("qnn-runtime/lib")))
        .expect("run scripts/fetch-qnn-runtime.sh");
    QnnRuntime::load(&lib, arch).unwrap()
}

/// An example's model, its fixture arrays (`inputs`, `fp32`, `qdq_*`, …) and calibration statistics.
pub fn fixture(name: &str) -> (Arc<Graph>, BTreeMap<String, Array>, Stats) {
    fixture_in(&root().join("tests/fixtures").join(name), &{
        root().join("examples").join(name).join("model.onnx")
    })
}

/// A fixture folder's arrays and statistics, and the model they were made from.
pub fn fixture_in(dir: &Path, model: &Path) -> (Arc<Graph>, BTreeMap<String, Array>, Stats) {
    let mut npz = NpzReader::new(File::open(dir.join("fixture.npz")).unwrap()).unwrap();
    let mut arrays = BTreeMap::new();
    for n in npz.names().unwrap() {
        if n.starts_with("labels") {
            continue;
        }
        // integer arrays (token ids) as exact floats, as amp's data loader keeps them
        let a = match npz.by_name::<ndarray::OwnedRepr<f32>, ndarray::IxDyn>(&n) {
            Ok(a) => Array::new(a.shape().to_vec(), a.iter().copied().collect()),
            Err(_) => {
                let a: ArrayD<i64> = npz.by_name(&n).unwrap();
                Array::new(a.shape().to_vec(), a.iter().map(|&v| v as f32).collect())
            }
        };
        arrays.insert(n.trim_end_matches(".npy").to_string(), a);
    }
    let ranges: BTreeMap<String, [f32; 2]> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("stats.json")).unwrap()).unwrap();
    let shapes = arrays
        .iter()
        .map(|(n, a)| (n.clone(), a.shape[1..].to_vec()))
        .collect();
    let opts = ImportOptions {
        input_shape: arrays.get("inputs").map(|a| a.shape[1..].to_vec()),
        shapes,
    };
    let g = import_file(model, &opts).unwrap();
    (Arc::new(g), arrays, Stats { ranges })
}

/// A fixture's arrays for `g`'s inputs: the one named as each input, else `inputs` (a single-input model).
pub fn fixture_inputs(g: &Graph, arrays: &BTreeMap<String, Array>) -> Inputs {
    Inputs(
        (g.inputs.iter())
            .map(|&t| {
                let name = &g.tensors[t].name;
                arrays
                    .get(name)
                    .unwrap_or_else(|| &arrays["inputs"])
                    .clone()
            })
            .collect(),
    )
}

/// The reference backend against onnxruntime's outputs in a fixture folder (`fixture.npz`, `stats.json`):
/// FP32 within 1e-4 of the output's range, and every uniform precision within 1 LSB of onnxruntime's QDQ
/// model on at least `within_1` of the elements (1.0: on every one). The misses, named; each comparison is
/// printed.
pub fn fixture_failures(name: &str, dir: &Path, model: &Path, within_1: f64) -> Vec<String> {
    let (g, arrays, stats) = fixture_in(dir, model);
    let x = &fixture_inputs(&g, &arrays);
    let mut failures = Vec::new();
    let fp32 = Reference::new(g.clone(), None)
        .unwrap()
        .run(x)
        .unwrap()
        .remove(0);
    let want = &arrays["fp32"];
    let range = want.data.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    let diff = fp32
        .data
        .iter()
        .zip(&want.data)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    println!("{name} fp32: max |diff| {:.2e} of the range", diff / range);
    if diff > 1e-4 * range {
        failures.push(format!("{name} fp32: max |diff| {diff} of range {range}"));
    }
    for p in Precision::ALL {
        let plan = QuantPlan::new(&g, &stats, &BitPlan::uniform(&g, p)).unwrap();
        let scale = plan.encodings[g.outputs[0]].unwrap().scale;
        let out = Reference::new(g.clone(), Some(plan))
            .unwrap()
            .run(x)
            .unwrap()
            .remove(0);
        let (max, within) = lsb_apart(&out, &arrays[&format!("qdq_{p}")], scale);
        println!(
            "{name} {p}: max {max} LSB, {:.2}% within 1 LSB",
            within * 100.0
        );
        if within < within_1 {
            failures.push(format!(
                "{name} {p}: max {max} LSB, {:.2}% within 1 LSB",
                within * 100.0
            ));
        }
    }
    failures
}

/// Index of the largest value (the first on ties).
pub fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |b, (i, &v)| if v > b.1 { (i, v) } else { b },
        )
        .0
}

/// The share of samples whose argmax over the last axis agrees (of pixels, over the class axis, for a
/// segmenter's 4-D scores).
pub fn top1_agreement(a: &Array, b: &Array) -> f64 {
    if a.shape.len() == 4 {
        // a segmenter's (N, C, H, W) scores: the class of every pixel
        let (c, hw) = (a.shape[1], a.shape[2] * a.shape[3]);
        let class = |x: &Array, n: usize, p: usize| {
            argmax(
                &(0..c)
                    .map(|k| x.data[(n * c + k) * hw + p])
                    .collect::<Vec<_>>(),
            )
        };
        let pixels = a.shape[0] * hw;
        let same = (0..pixels)
            .filter(|&i| class(a, i / hw, i % hw) == class(b, i / hw, i % hw))
            .count();
        return same as f64 / pixels as f64;
    }
    let c = *a.shape.last().unwrap();
    let same = a
        .data
        .chunks(c)
        .zip(b.data.chunks(c))
        .filter(|(x, y)| argmax(x) == argmax(y))
        .count();
    same as f64 / (a.data.len() / c) as f64
}

/// Deterministic uniform values in [lo, hi) (xorshift; a test must not depend on a seed's luck).
pub fn uniform(n: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}

/// The journal's keys, in order.
pub fn journal_keys(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["key"].as_str().unwrap().to_string())
        .collect()
}

/// Waits until the journal holds `n` phase-1 entries.
pub fn wait_for_phase1(child: &mut std::process::Child, journal: &Path, n: usize) {
    use std::io::Read;
    let start = std::time::Instant::now();
    let journalled = || {
        std::fs::read_to_string(journal)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(r#""phase":"1""#))
            .count()
    };
    while journalled() < n {
        let exited = child.try_wait().unwrap();
        let late = start.elapsed() > std::time::Duration::from_secs(180);
        if exited.is_some() || late {
            let _ = child.kill();
            let status = child.wait().unwrap();
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!(
                "phase 1 journalled {} of {n} evaluations before the tune {} ({status}):\n{err}",
                journalled(),
                if late {
                    "was stopped after 180 s"
                } else {
                    "exited"
                }
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// A pool run that lost a device must match an uninterrupted single-device run: same choice, same curve,
/// same number of evaluations, no evaluation repeated.
pub fn assert_same_as_single(
    pool: &serde_json::Value,
    pool_dir: &Path,
    single: &serde_json::Value,
    single_dir: &Path,
) {
    assert_eq!(pool["chosen"], single["chosen"]);
    assert_eq!(
        pool["evaluations"], single["evaluations"],
        "an evaluation was lost or repeated: {pool}"
    );
    let keys = journal_keys(&pool_dir.join("journal.jsonl"));
    assert_eq!(keys.len() as u64, pool["evaluations"].as_u64().unwrap());
    assert_eq!(
        keys.iter().collect::<std::collections::HashSet<_>>().len(),
        keys.len(),
        "an evaluation was repeated"
    );
    let curve = |d: &Path| std::fs::read_to_string(d.join("pareto.csv")).unwrap();
    assert_eq!(curve(pool_dir), curve(single_dir));
}

/// `amp-host export` of a results folder to `out`, with `extra` flags.
pub fn export(results: &Path, out: &Path, extra: &[&str]) {
    let mut c = amp_cmd();
    c.args(["export", "--results"])
        .arg(results)
        .arg("--out")
        .arg(out)
        .args(extra);
    amp_in(&mut c);
}

/// `amp-host eval --json` of an example at the encodings in `enc`, with `extra` flags.
pub fn eval_encodings(name: &str, enc: &Path, extra: &[&str]) -> serde_json::Value {
    let enc = enc.display().to_string();
    eval(name, &[&["--encodings", enc.as_str()], extra].concat())
}

/// `amp-host eval --json` of an example with `extra` flags.
pub fn eval(name: &str, extra: &[&str]) -> serde_json::Value {
    let (model, data) = example(name);
    let mut c = amp_cmd();
    c.args(["eval", "--model", &model, "--data", &data, "--json"])
        .args(extra);
    amp_in(&mut c)
}

/// How far `a` is from `b` in LSB of an encoding of `scale` (both on its grid up to f32 rounding): the
/// largest difference and the share of elements within 1 LSB.
pub fn lsb_apart(a: &Array, b: &Array, scale: f32) -> (f64, f64) {
    assert_eq!(a.shape, b.shape);
    let s = scale as f64;
    let lsb: Vec<f64> = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| ((*x as f64 / s).round() - (*y as f64 / s).round()).abs())
        .collect();
    let max = lsb.iter().cloned().fold(0.0, f64::max);
    let within = lsb.iter().filter(|&&d| d <= 1.0).count() as f64 / lsb.len().max(1) as f64;
    (max, within)
}

/// The one-op fixtures of `scripts/make_op_fixtures.py`, by case name.
pub fn op_fixtures() -> Vec<(String, PathBuf)> {
    let dir = root().join("tests/fixtures/ops");
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    v.sort();
    v
}

/// Random a8w8/a16w8 mixes (at least one group of each), deterministic.
pub fn mixes(groups: usize, n: usize, seed: u64) -> Vec<Vec<Precision>> {
    let mut s = seed;
    let mut out = Vec::new();
    while out.len() < n {
        let cfg: Vec<Precision> = (0..groups)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if (s >> 33) % 2 == 0 {
                    Precision::A16W8
                } else {
                    Precision::A8W8
                }
            })
            .collect();
        if cfg.contains(&Precision::A8W8) && cfg.contains(&Precision::A16W8) {
            out.push(cfg);
        }
    }
    out
}

/// A 3×3 Conv (8 → 8 channels) whose bias (±30 on six channels) overflows int32 at a16w16, where the bias
/// scale in_scale × w_scale is ≈ 2e-9, and a batch of 16 inputs in [−4, 4]; with its calibration.
pub fn overflowing_bias_conv() -> (Arc<Graph>, Array, Stats) {
    let mut g = Graph::default();
    let x = g.add_tensor("x", vec![1, 8, 6, 6], None);
    let w = g.add_tensor("w", vec![8, 8, 3, 3], Some(uniform(576, -0.5, 0.5, 7)));
    let big: Vec<f32> = uniform(8, -1.0, 1.0, 8)
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if i % 4 == 3 {
                b * 0.5
            } else {
                b.signum() * 20.0 + b * 10.0
            }
        })
        .collect();
    let b = g.add_tensor("b", vec![8], Some(big));
    let y = g.add_tensor("y", vec![1, 8, 6, 6], None);
    let conv = amp_device::ir::Conv {
        strides: [1, 1],
        pads: [1; 4],
        dilations: [1, 1],
        group: 1,
    };
    g.nodes.push(amp_device::ir::Node {
        name: "conv".into(),
        op: conv.into(),
        inputs: vec![x, w, b],
        output: y,
    });
    g.inputs = vec![x];
    g.outputs = vec![y];
    let g = Arc::new(g);
    let batch = 16;
    let xs = Array::new(vec![batch, 8, 6, 6], uniform(batch * 288, -4.0, 4.0, 1));
    let stats = amp_host::calib::calibrate(g.clone(), &xs.clone().into(), batch).unwrap();
    (g, xs, stats)
}
