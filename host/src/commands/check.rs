//! `amp-host check`: the CI gate. A tuned config (a results folder's chosen config, or one given) is measured
//! on each device — its metric, FP32's in the same run, and latency percentiles — and checked against the
//! thresholds. Reports: text or JSON on stdout, JUnit XML (one test case per device and threshold) and a
//! Markdown table. Exit 0 when every device passes, 1 when one fails a threshold, 3 when one could not be
//! reached or was lost (the others are still checked and reported).

use std::fmt::Write as _;
use std::path::Path;

use amp_device::error::{ErrorKind, EvalError};
use amp_device::quant::Precision;
use amp_host::amp::evaluator::{Evaluator, Job, Runs, Subset};
use amp_host::amp::groups::Groups;
use amp_host::amp::metric::{Metric, MetricInfo};
use amp_host::amp::remote::{Connector, DeviceSpec};
use amp_host::calib::{calibrate_cached, CalibrationFile};
use amp_host::{Missed, Usage};
use anyhow::{anyhow, Context, Result};
use serde::Serialize;

use super::tune::RunInfo;
use super::{metric_for, model_and_data, output_names, read_json};
use crate::cli::CheckArgs;

/// One threshold on one device.
#[derive(Serialize)]
struct Verdict {
    /// "min-metric", "max-drop", "max-latency-us", "max-latency-regression".
    threshold: &'static str,
    value: f64,
    limit: f64,
    pass: bool,
}

/// What one device measured, or why it could not.
#[derive(Serialize)]
struct DeviceReport {
    device: String,
    evaluator: Option<String>,
    soc: Option<String>,
    score: Option<f64>,
    fp32: Option<f64>,
    latency_us: Option<serde_json::Value>,
    latency_source: Option<String>,
    checks: Vec<Verdict>,
    /// The device could not be reached or was lost: its message.
    error: Option<String>,
}

impl DeviceReport {
    fn passed(&self) -> bool {
        self.error.is_none() && self.checks.iter().all(|c| c.pass)
    }
}

pub(crate) fn check(a: CheckArgs) -> Result<()> {
    let (graph, data) = model_and_data(&a.input.model, &a.input.data)?;
    let groups = Groups::new(&graph);
    let (config, stats, per_channel) = match (&a.results, &a.config) {
        (Some(dir), _) => {
            let run: RunInfo = read_json(&dir.join("run.json"))
                .context("is this a directory written by `amp-host tune`?")?;
            if graph.hash() != run.model_hash {
                return Err(anyhow!(
                    "model {} is not the model {} was tuned on (hash {} now, {} then); rerun the tune",
                    a.input.model.display(),
                    dir.display(),
                    graph.hash(),
                    run.model_hash
                ));
            }
            let calib: CalibrationFile = read_json(&dir.join(&run.calibration))?;
            let chosen: serde_json::Value = read_json(&dir.join("config.json"))?;
            let config = chosen["config"]
                .as_array()
                .ok_or_else(|| anyhow!("{}: no config", dir.join("config.json").display()))?
                .iter()
                .map(|c| c.as_str().unwrap_or("").parse().map_err(anyhow::Error::msg))
                .collect::<Result<Vec<Precision>>>()?;
            (config, calib.stats, run.per_channel)
        }
        (None, Some(config)) => {
            let calib = data.head(a.calib_samples.max(1));
            let (stats, _, _) =
                calibrate_cached(graph.clone(), &calib.inputs, &calib.hash(), &a.cache)?;
            (config.clone(), stats, true)
        }
        (None, None) => return Err(Usage("give --results DIR or --config".into()).into()),
    };
    if config.len() != groups.len() {
        return Err(Usage(format!(
            "the config has {} precisions but the model has {} groups (`amp-host groups` lists them)",
            config.len(),
            groups.len()
        ))
        .into());
    }
    let metric = metric_for(&a.metric, &graph, &data)?;
    let info = MetricInfo::of(&metric, &output_names(&graph));
    if a.max_drop.is_some() && metric.against_fp32() {
        return Err(Usage(format!(
            "--max-drop: {} is measured against FP32, which it scores perfectly; give --min-metric",
            info.name
        ))
        .into());
    }
    let baseline: Option<serde_json::Value> = a.baseline.as_deref().map(read_json).transpose()?;

    let mut reports = Vec::new();
    for spec in &DeviceSpec::resolve(&a.device)? {
        let connector = Connector {
            work: a.cache.join("agent"),
            qnn_lib: a.backend.qnn.qnn_lib.clone().or_else(|| {
                (*spec == DeviceSpec::Local)
                    .then(|| qnn_sys::locate_htp(None).ok())
                    .flatten()
                    .and_then(|p| p.parent().map(Path::to_path_buf))
            }),
            backend: a.backend.choice(),
            graph: graph.clone(),
            groups: groups.clone(),
            stats: stats.clone(),
            per_channel,
            phase1: 0,
            data: data.clone(),
            batch: a.batch.max(1),
            timeout: a.deadline.limit(),
        };
        let mut r = match measure(&a, spec, &connector, &config, &metric) {
            Ok(r) => r,
            Err(e) => unreachable_device(spec, e)?,
        };
        if r.error.is_none() {
            judge(&a, &info, baseline.as_ref(), &mut r);
        }
        if !a.json {
            print_device(&info, &r);
        }
        reports.push(r);
    }

    let config_str = config
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",");
    if let Some(path) = &a.junit {
        write_file(path, &junit(&info, &reports))?;
    }
    if let Some(path) = &a.summary {
        write_file(path, &summary(&a.input.model, &config_str, &info, &reports))?;
    }
    let passed = reports.iter().all(DeviceReport::passed);
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "model": a.input.model.display().to_string(), "config": config_str, "metric": info,
                "passed": passed, "devices": reports,
            })
        );
    }
    let lost: Vec<&str> = reports
        .iter()
        .filter(|r| r.error.is_some())
        .map(|r| r.device.as_str())
        .collect();
    if !lost.is_empty() {
        return Err(EvalError::device_lost(format!(
            "could not check on {} (the other devices are reported)",
            lost.join(", ")
        ))
        .into());
    }
    if !passed {
        let failed: Vec<String> = reports
            .iter()
            .flat_map(|r| {
                r.checks
                    .iter()
                    .filter(|c| !c.pass)
                    .map(move |c| format!("{} {}", r.device, c.threshold))
            })
            .collect();
        return Err(Missed(format!("failed: {}", failed.join(", "))).into());
    }
    Ok(())
}

/// A device that could not be reached or was lost becomes a report with its message; any other error
/// stops the check.
fn unreachable_device(spec: &DeviceSpec, e: anyhow::Error) -> Result<DeviceReport> {
    if EvalError::kind_of(&e) != ErrorKind::DeviceLost {
        return Err(e.context(format!("checking on {spec}")));
    }
    Ok(DeviceReport {
        device: spec.to_string(),
        evaluator: None,
        soc: None,
        score: None,
        fp32: None,
        latency_us: None,
        latency_source: None,
        checks: Vec::new(),
        error: Some(format!("{e:#}")),
    })
}

/// The config's metric, FP32's and the config's latency on one device.
fn measure(
    a: &CheckArgs,
    spec: &DeviceSpec,
    connector: &Connector,
    config: &[Precision],
    metric: &Metric,
) -> Result<DeviceReport> {
    let mut ev = connector.connect(spec)?;
    let job = |config: Option<Vec<Precision>>| Job {
        config,
        subset: Subset::Phase2,
        metric: metric.clone(),
    };
    let score = ev.evaluate(&job(Some(config.to_vec())))?;
    let fp32 = ev.evaluate(&job(None))?;
    let runs = Runs {
        batch: a.latency_batch.max(1),
        warmup: 3,
        iterations: a.latency_iterations.max(1),
    };
    let l = ev.latency(Some(config), runs)?;
    let prov = ev.provenance();
    Ok(DeviceReport {
        device: spec.to_string(),
        evaluator: Some(ev.identity()),
        soc: Some(prov.soc).filter(|s| !s.is_empty()),
        score: Some(score),
        fp32: Some(fp32),
        latency_us: Some(serde_json::json!({
            "min": l.min_us, "median": l.median_us, "p90": l.p90_us, "max": l.max_us,
        })),
        latency_source: Some(l.source),
        checks: Vec::new(),
        error: None,
    })
}

/// Checks one device's measurements against every threshold asked for.
fn judge(
    a: &CheckArgs,
    info: &MetricInfo,
    baseline: Option<&serde_json::Value>,
    r: &mut DeviceReport,
) {
    let (score, fp32) = (r.score.unwrap_or(f64::NAN), r.fp32.unwrap_or(f64::NAN));
    let median = r
        .latency_us
        .as_ref()
        .map_or(f64::NAN, |l| l["median"].as_f64().unwrap_or(f64::NAN));
    if let Some(limit) = a.min_metric {
        r.checks.push(Verdict {
            threshold: "min-metric",
            value: score,
            limit,
            pass: info.meets(score, limit),
        });
    }
    if let Some(limit) = a.max_drop {
        let drop = if info.higher_is_better {
            fp32 - score
        } else {
            score - fp32
        };
        r.checks.push(Verdict {
            threshold: "max-drop",
            value: drop,
            limit,
            pass: drop <= limit,
        });
    }
    if let Some(limit) = a.max_latency_us {
        r.checks.push(Verdict {
            threshold: "max-latency-us",
            value: median,
            limit,
            pass: median <= limit,
        });
    }
    let before = baseline.and_then(|b| {
        b["devices"].as_array()?.iter().find_map(|d| {
            (d["device"] == r.device.as_str())
                .then(|| d["latency_us"]["median"].as_f64())
                .flatten()
        })
    });
    if let Some(before) = before {
        let growth = median / before - 1.0;
        r.checks.push(Verdict {
            threshold: "max-latency-regression",
            value: growth,
            limit: a.max_latency_regression,
            pass: growth <= a.max_latency_regression,
        });
    }
}

fn print_device(info: &MetricInfo, r: &DeviceReport) {
    if let Some(e) = &r.error {
        println!("{}: NOT CHECKED: {e}", r.device);
        return;
    }
    let verdict = if r.passed() { "pass" } else { "FAIL" };
    println!(
        "{}: {verdict} ({})",
        r.device,
        r.evaluator.as_deref().unwrap_or("")
    );
    println!(
        "  {} {:.4} (FP32 {:.4}), latency median {:.0} µs, p90 {:.0} µs",
        info.name,
        r.score.unwrap_or(f64::NAN),
        r.fp32.unwrap_or(f64::NAN),
        r.latency_us
            .as_ref()
            .and_then(|l| l["median"].as_f64())
            .unwrap_or(f64::NAN),
        r.latency_us
            .as_ref()
            .and_then(|l| l["p90"].as_f64())
            .unwrap_or(f64::NAN),
    );
    for c in &r.checks {
        println!(
            "  {} {}: {:.4} (limit {:.4})",
            if c.pass { "ok  " } else { "FAIL" },
            c.threshold,
            c.value,
            c.limit
        );
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// JUnit XML: a test suite per device, a test case per threshold (and one for reaching the device).
fn junit(info: &MetricInfo, reports: &[DeviceReport]) -> String {
    let tests: usize = reports.iter().map(|r| r.checks.len().max(1)).sum();
    let failures: usize = reports
        .iter()
        .map(|r| r.checks.iter().filter(|c| !c.pass).count())
        .sum();
    let errors = reports.iter().filter(|r| r.error.is_some()).count();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuites name=\"amp-check\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\">"
    );
    for r in reports {
        let dev = xml(&r.device);
        let f = r.checks.iter().filter(|c| !c.pass).count();
        let e = usize::from(r.error.is_some());
        let _ = writeln!(
            s,
            "  <testsuite name=\"{dev}\" tests=\"{}\" failures=\"{f}\" errors=\"{e}\">",
            r.checks.len().max(1)
        );
        if let Some(err) = &r.error {
            let _ = writeln!(
                s,
                "    <testcase classname=\"{dev}\" name=\"reachable\">\n      <error message=\"{}\"/>\n    </testcase>",
                xml(err)
            );
        }
        for c in &r.checks {
            let _ = write!(
                s,
                "    <testcase classname=\"{dev}\" name=\"{}\"",
                c.threshold
            );
            if c.pass {
                s.push_str("/>\n");
            } else {
                let what = match c.threshold {
                    "min-metric" | "max-drop" => format!(" ({})", info.name),
                    _ => String::new(),
                };
                let _ = writeln!(
                    s,
                    ">\n      <failure message=\"{}{what}: measured {} on {dev}, limit {}\"/>\n    </testcase>",
                    c.threshold, c.value, c.limit
                );
            }
        }
        s.push_str("  </testsuite>\n");
    }
    s.push_str("</testsuites>\n");
    s
}

/// A Markdown table, one row per device.
fn summary(model: &Path, config: &str, info: &MetricInfo, reports: &[DeviceReport]) -> String {
    let mut s = format!(
        "### amp check: {}\n\nconfig `{config}`, metric {} ({})\n\n| device | result | {} | FP32 | latency median µs | p90 µs | failed |\n|---|---|---|---|---|---|---|\n",
        model.display(),
        info.name,
        info.label,
        info.name
    );
    for r in reports {
        let lat = |k: &str| {
            r.latency_us
                .as_ref()
                .and_then(|l| l[k].as_f64())
                .map_or("–".into(), |v| format!("{v:.0}"))
        };
        let num = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.4}"));
        let failed: Vec<String> = match &r.error {
            Some(e) => vec![format!("not reached: {}", e.lines().next().unwrap_or(""))],
            None => r
                .checks
                .iter()
                .filter(|c| !c.pass)
                .map(|c| format!("{} {:.4} (limit {:.4})", c.threshold, c.value, c.limit))
                .collect(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.device,
            if r.passed() { "pass" } else { "**FAIL**" },
            num(r.score),
            num(r.fp32),
            lat("median"),
            lat("p90"),
            failed.join("; ").replace('|', "\\|")
        );
    }
    s
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
