//! `amp-host groups` and `amp-host tune`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use amp_device::ir::Graph;
use amp_device::quant::{BiasRaise, Precision, QuantPlan, Stats};
use amp_host::amp::evaluator::{EvalBackend, Evaluator, LocalEvaluator};
use amp_host::amp::groups::Groups;
use amp_host::amp::journal::Journal;
use amp_host::amp::metric::{Metric, MetricInfo};
use amp_host::amp::remote::{Connector, DeviceSpec, PoolEvaluator};
use amp_host::amp::report;
use amp_host::amp::tune::{tune as run_tune, verify, Identity, Timing, TuneOptions, TuneResult};
use amp_host::calib::calibrate_cached;
use amp_host::data::Dataset;
use amp_host::{Missed, Usage};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{builtin, load_model, metric_for, model_and_data, output_names};
use crate::cli::{BackendArgs, BackendKind, MetricName, TuneArgs, VerifyOn};

/// What a tune used, so `export` can rebuild its encodings.
#[derive(Serialize, Deserialize)]
pub(crate) struct RunInfo {
    pub model: PathBuf,
    pub model_hash: String,
    pub sample_shape: Vec<usize>,
    /// Every input's per-sample shape by name (a model of several inputs).
    #[serde(default)]
    pub input_shapes: std::collections::BTreeMap<String, Vec<usize>>,
    pub calibration: PathBuf,
    pub per_channel: bool,
    pub fp32: f64,
    pub candidates: Vec<String>,
    /// What the tune scored configs by (top-1 for results of earlier versions).
    #[serde(default)]
    pub metric: MetricInfo,
    /// The score a drop counts from (FP32's for results of earlier versions).
    #[serde(default)]
    pub reference: Option<f64>,
}

pub fn groups(model: PathBuf, shape: Option<Vec<usize>>, json: bool) -> Result<()> {
    let g = load_model(&model, shape)?;
    let groups = Groups::new(&g);
    let rows: Vec<serde_json::Value> = groups
        .groups
        .iter()
        .enumerate()
        .map(|(i, grp)| {
            let macs: u64 = grp.weight_nodes.iter().map(|&n| g.macs(&g.nodes[n])).sum();
            serde_json::json!({
                "index": i,
                "activation": g.tensors[grp.activation].name,
                "weights": grp.weight_nodes.iter().map(|&n| g.tensors[g.nodes[n].inputs[1]].name.clone()).collect::<Vec<_>>(),
                "ops": grp.weight_nodes.iter().map(|&n| g.nodes[n].name.clone()).collect::<Vec<_>>(),
                "macs": macs,
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::Value::Array(rows));
    } else {
        println!("{} quantizer groups", rows.len());
        for r in rows {
            println!(
                "{:>3}  {}  weights {}  MACs {}",
                r["index"],
                r["activation"].as_str().unwrap_or(""),
                r["weights"],
                r["macs"]
            );
        }
    }
    Ok(())
}

fn stats_hash(stats: &Stats, per_channel: bool) -> String {
    let mut h = blake3::Hasher::new();
    h.update(serde_json::to_string(stats).unwrap_or_default().as_bytes());
    h.update(&[per_channel as u8]);
    h.finalize().to_hex()[..16].to_string()
}

/// What a tune works on: the model, the data, calibration and the results folder.
struct Session {
    graph: Arc<Graph>,
    groups: Groups,
    data: Dataset,
    phase1: Dataset,
    stats: Stats,
    calib_path: PathBuf,
    per_channel: bool,
    dir: PathBuf,
    id: Identity,
    /// Held for the run: one run at a time in a results directory.
    _lock: amp_host::amp::lock::ResultsLock,
}

/// The results folder's name under amp-results/: the model file's stem, or its folder's name when the file is
/// just `model.onnx` (examples/digits/model.onnx → digits).
fn results_name(model: &Path) -> String {
    let stem = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let parent = model.canonicalize().ok().and_then(|p| {
        p.parent()?
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    });
    match parent {
        Some(p) if stem == "model" && !p.is_empty() => p,
        _ => stem,
    }
}

impl Session {
    fn open(a: &TuneArgs) -> Result<Session> {
        let (graph, data) = model_and_data(&a.input.model, &a.input.data)?;
        let stem = results_name(&a.input.model);
        let dir = a
            .results
            .clone()
            .unwrap_or_else(|| PathBuf::from("amp-results").join(stem));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let lock = amp_host::amp::lock::ResultsLock::take(
            &dir,
            std::time::Duration::from_secs(a.wait_lock),
        )?;
        let calib = data.head(a.calib_samples.max(1));
        let (stats, calib_path, _) =
            calibrate_cached(graph.clone(), &calib.inputs, &calib.hash(), &dir)?;
        let phase1 = data.head(a.phase1_samples.max(1));
        let per_channel = !a.per_tensor;
        let id = Identity {
            model: graph.hash(),
            phase1_data: phase1.hash(),
            phase2_data: data.hash(),
            encodings: stats_hash(&stats, per_channel),
        };
        Ok(Session {
            groups: Groups::new(&graph),
            graph,
            data,
            phase1,
            stats,
            calib_path,
            per_channel,
            dir,
            id,
            _lock: lock,
        })
    }

    /// The weight channels the bias rule raises in the chosen config and in the widest uniform candidate.
    fn bias_raise(
        &self,
        r: &TuneResult,
        candidates: &[Precision],
    ) -> Result<Vec<(String, BiasRaise)>> {
        let mut out = Vec::new();
        let widest = candidates.iter().max_by_key(|c| (c.weight, c.act));
        let chosen = ("the chosen config".to_string(), r.chosen.config.clone());
        for (name, cfg) in std::iter::once(chosen)
            .chain(widest.map(|&c| (format!("uniform {c}"), vec![c; self.groups.len()])))
        {
            let bits = self.groups.bit_plan(&self.graph, &cfg, self.per_channel);
            out.push((
                name,
                QuantPlan::new(&self.graph, &self.stats, &bits)?.bias_raise,
            ));
        }
        Ok(out)
    }

    /// An evaluator in this process on `backend`.
    fn local(&self, backend: EvalBackend, batch: usize) -> LocalEvaluator {
        LocalEvaluator::new(
            backend,
            self.graph.clone(),
            self.groups.clone(),
            self.stats.clone(),
            self.per_channel,
            self.phase1.clone(),
            self.data.clone(),
            batch,
        )
    }

    /// The evaluator on `specs` (one device, or a pool) running `backend`.
    fn evaluator(
        &self,
        a: &TuneArgs,
        specs: &[DeviceSpec],
        backend: BackendKind,
    ) -> Result<Box<dyn Evaluator>> {
        if specs[0] == DeviceSpec::InProcess {
            return Ok(Box::new(self.local(a.backend.load(backend)?, a.batch)));
        }
        let qnn_lib = match (&a.backend.qnn.qnn_lib, backend) {
            (Some(d), _) => Some(d.clone()),
            // a local agent finds the library the way amp-host would
            (None, BackendKind::Htp) if specs[0] == DeviceSpec::Local => qnn_sys::locate_htp(None)
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf)),
            _ => None,
        };
        let connector = Connector {
            work: self.dir.join(".agent"),
            qnn_lib,
            backend: BackendArgs {
                backend,
                qnn: a.backend.qnn.clone(),
            }
            .choice(),
            graph: self.graph.clone(),
            groups: self.groups.clone(),
            stats: self.stats.clone(),
            per_channel: self.per_channel,
            phase1: self.phase1.len(),
            data: self.data.clone(),
            batch: a.batch,
            timeout: a.deadline.limit(),
        };
        Ok(if specs.len() > 1 {
            Box::new(PoolEvaluator::connect(specs, connector)?)
        } else {
            Box::new(connector.connect(&specs[0])?)
        })
    }

    /// Where the chosen point is measured again, or why it is not.
    fn verifier(
        &self,
        a: &TuneArgs,
        specs: &[DeviceSpec],
        target: Option<f64>,
    ) -> std::result::Result<Box<dyn Evaluator>, String> {
        match (a.verify_on, a.backend.backend, target) {
            (VerifyOn::None, ..) => Err("not asked (--verify-on none)".into()),
            (_, BackendKind::Htp, _) => Err("the search itself measured on HTP".into()),
            (_, _, None) => Err("no target to verify (--allowed-drop none)".into()),
            (VerifyOn::Htp, BackendKind::Ref, Some(_)) => {
                // on this machine, in process; on a device, its own HTP
                let local = matches!(specs[0], DeviceSpec::InProcess | DeviceSpec::Local);
                let spec = if local {
                    vec![DeviceSpec::InProcess]
                } else {
                    specs[..1].to_vec()
                };
                self.evaluator(a, &spec, BackendKind::Htp)
                    .map_err(|e| format!("HTP cannot run here: {e:#}"))
            }
        }
    }
}

pub fn tune(mut a: TuneArgs) -> Result<()> {
    a.device = DeviceSpec::resolve(&a.device)?;
    if a.per_soc {
        return per_soc(a);
    }
    let allow_miss = a.allow_miss;
    match tune_one(a, true)?.missed {
        Some(why) if !allow_miss => Err(Missed(why).into()),
        _ => Ok(()),
    }
}

/// What one tune answered, for the per-SoC table.
#[derive(Serialize)]
struct Done {
    results: PathBuf,
    devices: Vec<String>,
    soc: String,
    config: Vec<String>,
    score: f64,
    relative_bitops: f64,
    groups_at_16_bits: usize,
    missed: Option<String>,
}

fn tune_one(a: TuneArgs, print: bool) -> Result<Done> {
    let start = Instant::now();
    let specs = a.device.clone();
    if specs.len() > 1 && specs.contains(&DeviceSpec::InProcess) {
        return Err(Usage("--device inprocess cannot be part of a pool".into()).into());
    }
    let allowed_drop = a.allowed_drop.0;
    let candidates = a.candidates.clone();
    let s = Session::open(&a)?;
    let metric = metric_for(&a.metric, &s.graph, &s.data)?;
    if let (Metric::Builtin(m), Some(d)) = (&metric, allowed_drop) {
        if m.kind.needs_labels() && d > 1.0 {
            return Err(Usage(format!(
                "--allowed-drop {d}: {} is a fraction, a drop cannot exceed 1",
                m.kind.name()
            ))
            .into());
        }
    }
    let phase1_metric = match a.phase1_metric {
        Some(MetricName(k)) => {
            let names = output_names(&s.graph);
            builtin(k, a.metric.metric_output.as_deref(), &names, &s.phase1)?
        }
        None => metric.clone(),
    };
    let mut ev1 = match a.phase1_backend {
        Some(k) if k != a.backend.backend => Some(s.local(a.backend.load(k)?, a.batch)),
        _ => None,
    };
    let mut ev = s.evaluator(&a, &specs, a.backend.backend)?;
    let journal_path = s.dir.join("journal.jsonl");
    let mut journal = Journal::open(&journal_path, a.fresh)?;
    for (n, why) in &journal.skipped {
        eprintln!(
            "warning: {}: line {n} skipped ({why}); that evaluation runs again",
            journal_path.display()
        );
    }
    let opts = TuneOptions {
        candidates: candidates.clone(),
        allowed_drop,
        search: a.search,
        metric: metric.clone(),
        phase1_metric,
        cost: a.cost,
        phase3: a.phase3,
        timing: Timing {
            batch: a.latency_batch.max(1),
            warmup: 3,
            iterations: a.latency_iterations.max(1),
            convert_costs: Some(s.dir.join("convert_costs.json")),
            command: std::env::args().collect::<Vec<_>>().join(" "),
        },
    };
    let mut r = run_tune(
        &s.graph,
        &s.groups,
        &opts,
        ev.as_mut(),
        ev1.as_mut().map(|e| e as &mut dyn Evaluator),
        &mut journal,
        &s.id,
    )?;
    match s.verifier(&a, &specs, r.target) {
        Ok(mut v) => r.verification = Some(verify(&r, &metric, v.as_mut(), &mut journal, &s.id)?),
        Err(why) => r.verify_note = Some(why),
    }
    let run = RunInfo {
        model: std::fs::canonicalize(&a.input.model).unwrap_or(a.input.model.clone()),
        model_hash: s.graph.hash(),
        sample_shape: s.graph.tensors[s.graph.inputs[0]].shape[1..].to_vec(),
        input_shapes: (s.graph.inputs.iter())
            .map(|&t| {
                let t = &s.graph.tensors[t];
                (t.name.clone(), t.shape[1..].to_vec())
            })
            .collect(),
        calibration: s
            .calib_path
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_default(),
        per_channel: s.per_channel,
        fp32: r.fp32,
        candidates: candidates.iter().map(|c| c.to_string()).collect(),
        metric: r.metric.clone(),
        reference: Some(r.reference),
    };
    r.bias_raise = s.bias_raise(&r, &candidates)?;
    report::write(&s.dir, "run.json", &serde_json::to_string_pretty(&run)?)?;
    let wall = start.elapsed().as_secs_f64();
    report::write_all(&s.dir, &s.graph, &s.groups, &r, wall)?;
    let who = (
        ev.identity(),
        (ev.pushed_bytes(), ev.pulled_bytes()),
        ev.served(),
    );
    let soc = ev.provenance().soc;
    if print && a.json {
        print_json(&a, &s, &r, who, wall);
    } else if print {
        print_text(&s, &r, wall);
    }
    Ok(Done {
        results: s.dir.clone(),
        devices: specs.iter().map(|d| d.to_string()).collect(),
        soc,
        config: r.chosen.config.iter().map(|c| c.to_string()).collect(),
        score: r.chosen.score,
        relative_bitops: r.chosen.relative_bitops,
        groups_at_16_bits: at16(&r),
        missed: missed(&r),
    })
}

/// The SoC a device reports (what its agent will say in the handshake).
fn soc_of(d: &DeviceSpec) -> Result<String> {
    Ok(match d {
        DeviceSpec::Adb(target) => amp_host::amp::remote::adb::describe(target)?.soc,
        DeviceSpec::Tcp(_) => amp_host::amp::remote::agent::hello(d)?.1,
        _ => amp_device::agent::soc(),
    })
}

/// A SoC's name as a folder name.
fn soc_folder(soc: &str) -> String {
    let s: String = soc
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    match s.trim_matches('-') {
        "" => "unknown-soc".into(),
        t => t.to_string(),
    }
}

/// `tune --per-soc`: the devices grouped by SoC, one tune per SoC into <results>/<SoC>/, and a table of
/// the choices. A SoC whose tune fails does not stop the others; the run ends with the first failure.
fn per_soc(a: TuneArgs) -> Result<()> {
    let mut by_soc: std::collections::BTreeMap<String, Vec<DeviceSpec>> = Default::default();
    for d in &a.device {
        let soc = soc_of(d).map_err(|e| {
            amp_device::error::EvalError::device_lost(format!("device {d}: reading its SoC: {e:#}"))
        })?;
        by_soc.entry(soc).or_default().push(d.clone());
    }
    let base = a
        .results
        .clone()
        .unwrap_or_else(|| PathBuf::from("amp-results").join(results_name(&a.input.model)));
    let (mut done, mut first_err) = (Vec::new(), None);
    for (soc, devices) in &by_soc {
        let mut sub = a.clone();
        sub.per_soc = false;
        sub.device = devices.clone();
        sub.results = Some(base.join(soc_folder(soc)));
        let names: Vec<String> = devices.iter().map(|d| d.to_string()).collect();
        eprintln!("amp-host: SoC {soc}: tuning on {}", names.join(", "));
        match tune_one(sub, false) {
            Ok(d) => done.push(d),
            Err(e) => {
                eprintln!("amp-host: SoC {soc}: {e:#}");
                first_err.get_or_insert(e);
            }
        }
    }
    let mut md = String::from(
        "# Chosen configs per SoC\n\n| SoC | devices | score | relative bit-ops | groups at 16 bits | config | results |\n|---|---|---|---|---|---|---|\n",
    );
    for d in &done {
        md += &format!(
            "| {} | {} | {:.4}{} | {:.4} | {} | {} | {} |\n",
            d.soc,
            d.devices.join(", "),
            d.score,
            if d.missed.is_some() {
                " (misses its target)"
            } else {
                ""
            },
            d.relative_bitops,
            d.groups_at_16_bits,
            d.config.join(","),
            d.results.display()
        );
    }
    report::write(&base, "per-soc.md", &md)?;
    let json = serde_json::to_string_pretty(&done)?;
    report::write(&base, "per-soc.json", &json)?;
    if a.json {
        println!("{}", serde_json::json!({ "per_soc": done }));
    } else {
        print!("{md}");
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    match done.iter().find(|d| d.missed.is_some()) {
        Some(d) if !a.allow_miss => Err(Missed(format!(
            "SoC {}: {}",
            d.soc,
            d.missed.clone().unwrap_or_default()
        ))
        .into()),
        _ => Ok(()),
    }
}

/// Why the tune's answer misses its target, if it does: the best uniform candidate already misses it, or
/// the chosen point misses it on the verifying backend.
fn missed(r: &TuneResult) -> Option<String> {
    if r.early_exit
        .as_deref()
        .is_some_and(|e| e.contains("more than"))
    {
        return r.early_exit.clone();
    }
    let v = r.verification.as_ref().filter(|v| !v.meets_target)?;
    Some(format!(
        "the chosen config scores {} on {}, short of the target {:.4} it meets on the reference ({:.4}){}",
        v.score
            .map(|a| format!("{a:.4}"))
            .unwrap_or("nothing (it cannot run there)".into()),
        v.on,
        v.target,
        r.chosen.score,
        match &v.instead {
            Some((p, acc)) => format!(
                "; the next point of the curve that meets it there: relative bit-ops {:.4}, {acc:.4} ({})",
                p.relative_bitops,
                p.config
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            None => "; no point of the curve tried meets it there".into(),
        }
    ))
}

fn at16(r: &TuneResult) -> usize {
    r.chosen
        .config
        .iter()
        .filter(|c| c.act == 16 || c.weight == 16)
        .count()
}

fn print_json(
    a: &TuneArgs,
    s: &Session,
    r: &TuneResult,
    (evaluator, (pushed, pulled), served): (String, (u64, u64), Vec<(String, usize)>),
    wall: f64,
) {
    let evaluated: usize = r.phases.iter().map(|p| p.evaluations).sum();
    let cached: usize = r.phases.iter().map(|p| p.cached).sum();
    println!(
        "{}",
        serde_json::json!({
            "results": s.dir.display().to_string(), "metric": r.metric, "phase1_metric": r.phase1_metric.name,
            "fp32": r.fp32, "reference": r.reference, "reference_of": r.reference_of, "target": r.target,
            "baseline": r.baseline.to_string(),
            "uniform": r.uniform.iter().map(|(c, v)| (c.to_string(), *v)).collect::<std::collections::BTreeMap<_, _>>(),
            "chosen": {"relative_bitops": r.chosen.relative_bitops, "score": r.chosen.score, "groups_at_16_bits": at16(r), "groups": s.groups.len(),
                       "config": r.chosen.config.iter().map(|c| c.to_string()).collect::<Vec<_>>()},
            "early_exit": r.early_exit, "pareto_points": report::curve(r).len(),
            "evaluations": evaluated, "from_journal": cached,
            "cost_model": r.cost, "chosen_cost": r.chosen.cost,
            "latency_measurements": r.timing.evaluations, "latency_from_journal": r.timing.cached,
            "phase3": r.phase3.as_ref().map(|p| serde_json::json!({"marked": p.marked, "note": p.note, "points": p.points.iter().map(|a| serde_json::json!({"alpha": a.alpha, "score": a.score, "latency_us": a.latency_us, "convert_us": a.convert_us, "converts": a.converts, "relative_bitops": a.relative_bitops, "groups_raised": a.groups_raised, "meets_target": a.meets_target})).collect::<Vec<_>>()})),
            "verification": r.verification.as_ref().map(|v| serde_json::json!({
                "on": v.on, "score": v.score, "target": v.target, "meets_target": v.meets_target,
                "instead": v.instead.as_ref().map(|(p, acc)| serde_json::json!({"score": acc, "reference_score": p.score, "relative_bitops": p.relative_bitops, "config": p.config.iter().map(|c| c.to_string()).collect::<Vec<_>>()})),
                "tried": v.tried, "evaluations": v.stats.evaluations, "from_journal": v.stats.cached,
            })),
            "verify_note": r.verify_note, "journal_skipped": r.skipped_journal_lines,
            "missed": missed(r),
            "device": a.device.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(","), "evaluator": evaluator, "pushed_bytes": pushed, "outputs_bytes": pulled, "served": served, "phases": r.phases, "seconds": wall,
        })
    );
}

fn print_text(s: &Session, r: &TuneResult, wall: f64) {
    let m = &r.metric;
    println!("metric {}", m.describe());
    println!(
        "FP32 {:.4}; baseline {} {:.4}",
        r.fp32,
        r.baseline,
        r.uniform
            .iter()
            .find(|u| u.0 == r.baseline)
            .map(|u| u.1)
            .unwrap_or(0.0)
    );
    if let Some(t) = r.target {
        println!(
            "target {} {t:.4}: a drop of {:.4} {} from {} ({:.4})",
            if m.higher_is_better { "≥" } else { "≤" },
            (r.reference - t).abs(),
            m.unit,
            r.reference_of,
            r.reference
        );
    }
    if let Some(e) = &r.early_exit {
        println!("{e}");
    }
    println!(
        "chosen: {} of {} groups at 16 bits, relative bit-ops {:.4}, {} {:.4} on the search's backend",
        at16(r),
        s.groups.len(),
        r.chosen.relative_bitops,
        m.name,
        r.chosen.score
    );
    match (&r.verification, &r.verify_note) {
        (Some(v), _) => println!(
            "verified on {}: {} {} ({} the target {:.4})",
            v.on,
            m.name,
            v.score
                .map(|a| format!("{a:.4}"))
                .unwrap_or("-, it cannot run there".into()),
            if v.meets_target { "meets" } else { "MISSES" },
            v.target
        ),
        (None, Some(why)) => println!("not verified on HTP: {why}"),
        (None, None) => {}
    }
    if let Some(c) = &r.cost {
        println!(
            "Convert prices {} on {}: {} reused from convert_costs.json, {} priced now{}",
            c.convert_prices,
            c.provenance.backend,
            c.pricing.reused,
            c.pricing.measured,
            c.pricing
                .invalidated
                .as_ref()
                .map(|w| format!(" (old table set aside: {w})"))
                .unwrap_or_default()
        );
        if let Some(pc) = &r.chosen.cost {
            println!("chosen config: {}", pc.summary());
        }
    }
    if let Some(p3) = &r.phase3 {
        println!("phase 3 (α: {}, latency µs, Converts):", m.name);
        for (i, a) in p3.points.iter().enumerate() {
            println!(
                "  {:.1}{}: {}, {}, {}",
                a.alpha,
                if p3.marked == Some(i) { " *" } else { "" },
                a.score
                    .map(|v| format!("{v:.4}"))
                    .unwrap_or("unsupported".into()),
                a.latency_us
                    .map(|v| format!("{v:.0}"))
                    .unwrap_or("-".into()),
                a.converts
            );
        }
        if let Some(n) = &p3.note {
            println!("  {n}");
        }
    }
    let evaluated: usize = r.phases.iter().map(|p| p.evaluations).sum();
    let cached: usize = r.phases.iter().map(|p| p.cached).sum();
    println!("{evaluated} evaluations ({cached} from the journal) in {wall:.1} s");
    if let Some(why) = missed(r) {
        println!("TARGET MISSED: {why}");
    }
    println!("results in {} (open pareto.html)", s.dir.display());
}
