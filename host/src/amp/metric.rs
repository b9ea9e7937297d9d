//! What configs are scored by: a built-in metric, computed where the model runs (against labels, or
//! against the FP32 outputs of the same inputs), or the user's own command, run here on the outputs the
//! device sends back. Inside the search every score is oriented so that higher is better; reports and the
//! journal show the metric's own values.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amp_device::backend::Array;
use amp_device::error::EvalError;
use amp_device::metrics::{MetricKind, MetricSpec};
use anyhow::{Context, Result};

/// A metric of a tune, an evaluation or a check.
#[derive(Clone, Debug)]
pub enum Metric {
    Builtin(MetricSpec),
    Command(Arc<CommandMetric>),
}

impl PartialEq for Metric {
    fn eq(&self, other: &Metric) -> bool {
        self.key() == other.key()
    }
}

impl Metric {
    pub fn builtin(kind: MetricKind) -> Metric {
        Metric::Builtin(MetricSpec { kind, output: None })
    }

    /// Top-1 accuracy on the first output.
    pub fn top1() -> Metric {
        Metric::builtin(MetricKind::Top1)
    }

    /// The metric's part of a journal key. Top-1 keeps the name earlier journals used ("accuracy"), so
    /// their records stay valid; a command is its identity (the command and the content of its files).
    pub fn key(&self) -> String {
        match self {
            Metric::Builtin(MetricSpec { kind, output }) => {
                let name = match kind {
                    MetricKind::Top1 => "accuracy",
                    k => k.name(),
                };
                match output {
                    Some(o) => format!("{name}@output{o}"),
                    None => name.to_string(),
                }
            }
            Metric::Command(c) => format!("command:{}", c.identity),
        }
    }

    /// How reports name it: "top1", "sqnr of output boxes", "`python map.py`".
    pub fn name(&self, outputs: &[String]) -> String {
        match self {
            Metric::Builtin(MetricSpec { kind, output }) => match output {
                Some(o) => format!(
                    "{} of output {}",
                    kind.name(),
                    outputs.get(*o).map_or("?", String::as_str)
                ),
                None => kind.name().to_string(),
            },
            Metric::Command(c) => format!("`{}`", c.command),
        }
    }

    /// How an axis or a column names its values: "top-1 accuracy", "SQNR against FP32 (dB)".
    pub fn label(&self, outputs: &[String]) -> String {
        match self {
            Metric::Builtin(MetricSpec { kind, output: None }) => kind.label().to_string(),
            Metric::Builtin(MetricSpec {
                kind,
                output: Some(o),
            }) => format!(
                "{}, output {}",
                kind.label(),
                outputs.get(*o).map_or("?", String::as_str)
            ),
            Metric::Command(c) => format!("`{}`", c.command),
        }
    }

    /// What a drop is counted in: "dB of SQNR", "of top-1", "of the command's metric".
    pub fn unit(&self) -> &'static str {
        match self {
            Metric::Builtin(m) => m.kind.unit(),
            Metric::Command(_) => "of the command's metric",
        }
    }

    pub fn higher_is_better(&self) -> bool {
        match self {
            Metric::Builtin(m) => m.kind.higher_is_better(),
            Metric::Command(c) => c.higher_is_better,
        }
    }

    /// Scored against the FP32 outputs, which score perfectly against themselves: a drop then counts from
    /// the best uniform candidate, not from FP32.
    pub fn against_fp32(&self) -> bool {
        matches!(self, Metric::Builtin(m) if !m.kind.needs_labels())
    }

    /// A value of the metric as the search compares it (higher is better), and back: negation for a metric
    /// where lower is better, the identity otherwise.
    pub fn orient(&self, v: f64) -> f64 {
        if self.higher_is_better() {
            v
        } else {
            -v
        }
    }
}

/// A metric as results files name it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricInfo {
    /// "top1", "sqnr", "`python map.py`".
    pub name: String,
    /// "top-1 accuracy", "SQNR against FP32 (dB)".
    pub label: String,
    /// What a drop is counted in: "dB of SQNR".
    pub unit: String,
    pub higher_is_better: bool,
}

impl MetricInfo {
    pub fn of(m: &Metric, outputs: &[String]) -> MetricInfo {
        MetricInfo {
            name: m.name(outputs),
            label: m.label(outputs),
            unit: m.unit().to_string(),
            higher_is_better: m.higher_is_better(),
        }
    }

    /// "sqnr (SQNR against FP32 (dB), higher is better)".
    pub fn describe(&self) -> String {
        let better = if self.higher_is_better {
            "higher"
        } else {
            "lower"
        };
        format!("{} ({}, {better} is better)", self.name, self.label)
    }

    /// Whether `v` meets `target` (at least it, or at most it where lower is better).
    pub fn meets(&self, v: f64, target: f64) -> bool {
        if self.higher_is_better {
            v >= target
        } else {
            v <= target
        }
    }

    /// The target `drop` away from `reference`, on the worse side.
    pub fn target(&self, reference: f64, drop: f64) -> f64 {
        if self.higher_is_better {
            reference - drop
        } else {
            reference + drop
        }
    }
}

impl Default for MetricInfo {
    /// Top-1, what results without a metric (written by earlier versions) were scored by.
    fn default() -> MetricInfo {
        MetricInfo::of(&Metric::top1(), &[])
    }
}

/// The user's evaluation: a shell command given an `.npz` of the model's outputs, printing the metric as
/// the last line of its standard output.
#[derive(Debug)]
pub struct CommandMetric {
    pub command: String,
    pub higher_is_better: bool,
    pub timeout: Duration,
    /// Hash of the command and of the content of every file it names.
    pub identity: String,
    /// The model outputs' names, the arrays' names in the `.npz`.
    output_names: Vec<String>,
    dir: tempfile::TempDir,
    /// The FP32 outputs' file per data subset, written once.
    fp32: Mutex<HashMap<String, PathBuf>>,
}

impl CommandMetric {
    pub fn new(
        command: &str,
        higher_is_better: bool,
        timeout: Duration,
        output_names: Vec<String>,
    ) -> Result<CommandMetric> {
        let mut h = blake3::Hasher::new();
        h.update(command.as_bytes());
        for file in named_files(command) {
            let bytes = std::fs::read(&file)
                .with_context(|| format!("reading {} named by --metric-cmd", file.display()))?;
            h.update(file.to_string_lossy().as_bytes());
            h.update(blake3::hash(&bytes).as_bytes());
        }
        Ok(CommandMetric {
            command: command.to_string(),
            higher_is_better,
            timeout,
            identity: h.finalize().to_hex()[..16].to_string(),
            output_names,
            dir: tempfile::Builder::new().prefix("amp-metric-").tempdir()?,
            fp32: Mutex::new(HashMap::new()),
        })
    }

    /// The file of the FP32 outputs of data subset `subset`, made by `make` the first time.
    pub fn fp32_file(
        &self,
        subset: &str,
        make: impl FnOnce() -> Result<Vec<Array>>,
    ) -> Result<PathBuf> {
        let mut files = self
            .fp32
            .lock()
            .map_err(|_| anyhow::anyhow!("FP32 outputs: lock poisoned"))?;
        if let Some(p) = files.get(subset) {
            return Ok(p.clone());
        }
        let path = self.dir.path().join(format!("fp32-{subset}.npz"));
        self.write(&path, &make()?)?;
        files.insert(subset.to_string(), path.clone());
        Ok(path)
    }

    /// Runs the command on `outputs` (of config `config`), with the FP32 outputs at `fp32`; its metric.
    /// Every way the command can fail stops the run (the journal keeps what was measured), naming the
    /// config and the command.
    pub fn score(&self, outputs: &[Array], fp32: &Path, config: &str) -> Result<f64> {
        let stem: String = config
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(60)
            .collect();
        let path = self.dir.path().join(format!(
            "{stem}-{}.npz",
            blake3::hash(config.as_bytes()).to_hex()[..8].to_owned()
        ));
        self.write(&path, outputs)?;
        let r = run(&self.command, &path, fp32, self.timeout);
        let _ = std::fs::remove_file(&path);
        r.map_err(|e| {
            EvalError::halt(format!(
                "the metric command `{}` on config {config}: {e}",
                self.command
            ))
            .into()
        })
    }

    fn write(&self, path: &Path, outputs: &[Array]) -> Result<()> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut npz = ndarray_npy::NpzWriter::new(file);
        for (i, o) in outputs.iter().enumerate() {
            let name = self
                .output_names
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("output{i}"));
            let a = ndarray::ArrayD::from_shape_vec(o.shape.clone(), o.data.clone())?;
            npz.add_array(name, &a)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        npz.finish()
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}

/// The existing files a command names: its words, unquoted, and what follows `=` in `--flag=path` words.
fn named_files(command: &str) -> Vec<PathBuf> {
    command
        .split_whitespace()
        .map(|w| w.trim_matches(|c| c == '\'' || c == '"'))
        .flat_map(|w| [Some(w), w.split_once('=').map(|(_, v)| v)])
        .flatten()
        .map(|w| PathBuf::from(w.trim_matches(|c| c == '\'' || c == '"')))
        .filter(|p| p.is_file())
        .collect()
}

/// Runs `command outputs` through the shell with `AMP_FP32_OUTPUTS=fp32`; the number on the last line of
/// its standard output.
fn run(command: &str, outputs: &Path, fp32: &Path, timeout: Duration) -> Result<f64, String> {
    use std::os::unix::process::CommandExt;
    let quoted = format!("'{}'", outputs.display().to_string().replace('\'', r"'\''"));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("{command} {quoted}"))
        .env("AMP_FP32_OUTPUTS", fp32)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the shell: {e}"))?;
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(child.stdout.take().map(|r| Box::new(r) as _));
    let err = drain(child.stderr.take().map(|r| Box::new(r) as _));
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() > timeout => {
                // the whole process group: the shell and whatever it started
                if let Ok(pid) = i32::try_from(child.id()) {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "no answer within {} s (--metric-timeout)",
                    timeout.as_secs_f64()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(e.to_string()),
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let tail = |s: &str| {
        let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    };
    if status.code() == Some(127) {
        return Err(format!("command not found: {}", tail(&stderr)));
    }
    if !status.success() {
        return Err(format!(
            "exited with {status}; its last lines of stderr:\n{}",
            tail(&stderr)
        ));
    }
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    match last.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(v) => Err(format!("printed {v}; the metric must be a finite number")),
        Err(_) => Err(format!(
            "its last line of output is {last:?}, not a number (the metric must be the last line)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(script: &str) -> CommandMetric {
        CommandMetric::new(script, true, Duration::from_secs(5), vec!["y".into()]).unwrap()
    }

    fn one() -> Vec<Array> {
        vec![Array::new(vec![2, 1], vec![1.0, 2.0])]
    }

    #[test]
    fn the_last_line_of_the_command_is_the_metric() {
        let c = cmd("printf 'log line\\n0.75\\n\\n' #");
        let fp32 = c.fp32_file("phase2", || Ok(one())).unwrap();
        assert_eq!(c.score(&one(), &fp32, "a8w8").unwrap(), 0.75);
        // the outputs' file is the last argument, FP32's in the environment: .npz files of the outputs
        // by name (the end-to-end tests read them with numpy)
        let c = cmd("python3 -c 'import sys, os, zipfile as z; a = z.ZipFile(sys.argv[1]).namelist(); f = z.ZipFile(os.environ[\"AMP_FP32_OUTPUTS\"]).namelist(); print(len(a) + 10 * (a == f == [\"y.npy\"]))'");
        let fp32 = c.fp32_file("phase2", || Ok(one())).unwrap();
        assert_eq!(c.score(&one(), &fp32, "a8w8").unwrap(), 11.0);
    }

    #[test]
    fn every_way_a_command_fails_names_the_config_and_the_command_and_halts() {
        let fails = |script: &str, timeout: u64, want: &str| {
            let c = CommandMetric::new(script, true, Duration::from_secs(timeout), vec![]).unwrap();
            let fp32 = c.fp32_file("phase1", || Ok(one())).unwrap();
            let e = c.score(&one(), &fp32, "a16w8,a8w8").unwrap_err();
            let msg = format!("{e:#}");
            assert!(
                msg.contains(want) && msg.contains("a16w8,a8w8") && msg.contains(script),
                "{msg}"
            );
            assert_eq!(
                EvalError::kind_of(&e),
                amp_device::error::ErrorKind::Halt,
                "{msg}"
            );
        };
        fails("no-such-metric-tool", 5, "command not found");
        fails("echo oops >&2; exit 3 #", 5, "oops");
        fails("echo fine #", 5, "\"fine\", not a number");
        fails("echo nan #", 5, "finite");
        fails("echo inf #", 5, "finite");
        fails("sleep 30 #", 1, "no answer within 1 s");
    }

    #[test]
    fn the_identity_follows_the_content_of_the_files_the_command_names() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("my_eval.py");
        std::fs::write(&script, "print(1)").unwrap();
        let command = format!("python3 {}", script.display());
        let id = || cmd(&command).identity;
        let first = id();
        assert_eq!(id(), first);
        std::fs::write(&script, "print(2)").unwrap();
        assert_ne!(id(), first);
        assert_ne!(cmd("python3 other.py").identity, first);
        // a file named as `--flag=path` counts too
        let labels = dir.path().join("labels.npz");
        std::fs::write(&labels, "a").unwrap();
        let flagged = format!(
            "python3 {} --labels='{}'",
            script.display(),
            labels.display()
        );
        let before = cmd(&flagged).identity;
        std::fs::write(&labels, "b").unwrap();
        assert_ne!(cmd(&flagged).identity, before);
    }

    #[test]
    fn keys_name_the_metric_and_its_output() {
        assert_eq!(Metric::top1().key(), "accuracy");
        let sqnr = Metric::Builtin(MetricSpec {
            kind: MetricKind::Sqnr,
            output: Some(1),
        });
        assert_eq!(sqnr.key(), "sqnr@output1");
        assert_eq!(
            sqnr.name(&["a".into(), "boxes".into()]),
            "sqnr of output boxes"
        );
        let mse = Metric::builtin(MetricKind::Mse);
        assert_eq!(mse.orient(0.5), -0.5);
        assert!(mse.against_fp32() && !Metric::top1().against_fp32());
    }
}
