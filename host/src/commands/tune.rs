//! `amp-host groups` and `amp-host tune`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use amp_device::quant::{Precision, Stats};
use amp_host::amp::evaluator::{Evaluator, LocalEvaluator};
use amp_host::amp::groups::Groups;
use amp_host::amp::journal::Journal;
use amp_host::amp::remote::{Connector, DeviceSpec, PoolEvaluator};
use amp_host::amp::report;
use amp_host::amp::tune::{tune as run_tune, Identity, Timing, TuneOptions};
use amp_host::calib::calibrate_cached;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{load_model, model_and_data};
use crate::cli::{BackendKind, TuneArgs};

/// What a tune used, so `export` can rebuild its encodings.
#[derive(Serialize, Deserialize)]
pub(crate) struct RunInfo {
    pub model: PathBuf,
    pub model_hash: String,
    pub sample_shape: Vec<usize>,
    pub calibration: PathBuf,
    pub per_channel: bool,
    pub fp32: f64,
    pub candidates: Vec<String>,
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

fn parse_drop(s: &str) -> Result<Option<f64>> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let v: f64 = s
        .parse()
        .map_err(|_| anyhow!("--allowed-drop {s:?}: expected a number such as 0.01, or none"))?;
    if !(0.0..=1.0).contains(&v) {
        bail!("--allowed-drop {v}: expected a fraction between 0 and 1");
    }
    Ok(Some(v))
}

fn stats_hash(stats: &Stats, per_channel: bool) -> String {
    let mut h = blake3::Hasher::new();
    h.update(serde_json::to_string(stats).unwrap_or_default().as_bytes());
    h.update(&[per_channel as u8]);
    h.finalize().to_hex()[..16].to_string()
}

pub fn tune(a: TuneArgs) -> Result<()> {
    let start = Instant::now();
    let specs: Vec<DeviceSpec> = a.device.iter().map(|d| d.parse()).collect::<Result<_>>()?;
    if specs.len() > 1 && specs.contains(&DeviceSpec::InProcess) {
        bail!("--device inprocess cannot be part of a pool");
    }
    let device = specs[0].clone();
    let allowed_drop = parse_drop(&a.allowed_drop)?;
    let candidates: Vec<Precision> = a
        .candidates
        .iter()
        .map(|c| c.parse().map_err(anyhow::Error::msg))
        .collect::<Result<_>>()?;
    let (graph, data) = model_and_data(&a.input.model, &a.input.data)?;
    let stem = a
        .input
        .model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let dir = a
        .results
        .clone()
        .unwrap_or_else(|| PathBuf::from("amp-results").join(stem));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let calib = data.head(a.calib_samples.max(1));
    let (stats, calib_path, _) =
        calibrate_cached(graph.clone(), &calib.inputs, &calib.hash(), &dir)?;
    let groups = Groups::new(&graph);
    let phase1 = data.head(a.phase1_samples.max(1));
    let per_channel = !a.per_tensor;
    let phase1_backend = match a.phase1_backend {
        Some(k) if k != a.backend.backend => Some(a.backend.load(k)?),
        _ => None,
    };
    let id = Identity {
        model: graph.hash(),
        phase1_data: phase1.hash(),
        phase2_data: data.hash(),
        encodings: stats_hash(&stats, per_channel),
    };
    let phase1_n = phase1.len();
    let mut ev1 = phase1_backend.map(|b| {
        LocalEvaluator::new(
            b,
            graph.clone(),
            groups.clone(),
            stats.clone(),
            per_channel,
            phase1.clone(),
            data.clone(),
            a.batch,
        )
    });
    let mut ev: Box<dyn Evaluator> = if device == DeviceSpec::InProcess {
        let backend = a.backend.load(a.backend.backend)?;
        Box::new(LocalEvaluator::new(
            backend,
            graph.clone(),
            groups.clone(),
            stats,
            per_channel,
            phase1,
            data,
            a.batch,
        ))
    } else {
        let choice = a.backend.choice();
        let qnn_lib = match (&a.backend.qnn.qnn_lib, a.backend.backend) {
            (Some(d), _) => Some(d.clone()),
            // a local agent finds the library the way amp-host would
            (None, BackendKind::Htp) if device == DeviceSpec::Local => qnn_sys::locate_htp(None)
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf)),
            _ => None,
        };
        let work = dir.join(".agent");
        let connector = Connector {
            work,
            qnn_lib,
            backend: choice,
            graph: graph.clone(),
            groups: groups.clone(),
            stats,
            per_channel,
            phase1: phase1_n,
            data,
            batch: a.batch,
        };
        if specs.len() > 1 {
            Box::new(PoolEvaluator::connect(&specs, connector)?)
        } else {
            Box::new(connector.connect(&device)?)
        }
    };
    let mut journal = Journal::open(&dir.join("journal.jsonl"), a.fresh)?;
    let opts = TuneOptions {
        candidates: candidates.clone(),
        allowed_drop,
        search: a.search,
        phase1_metric: a.phase1_metric,
        cost: a.cost,
        phase3: a.phase3,
        timing: Timing {
            batch: a.latency_batch.max(1),
            warmup: 3,
            iterations: a.latency_iterations.max(1),
            convert_costs: Some(dir.join("convert_costs.json")),
            command: std::env::args().collect::<Vec<_>>().join(" "),
        },
    };
    let r = run_tune(
        &graph,
        &groups,
        &opts,
        ev.as_mut(),
        ev1.as_mut().map(|e| e as &mut dyn Evaluator),
        &mut journal,
        &id,
    )?;
    let target = allowed_drop.map(|d| r.fp32 - d);
    let pushed = ev.pushed_bytes();
    let run = RunInfo {
        model: std::fs::canonicalize(&a.input.model).unwrap_or(a.input.model.clone()),
        model_hash: graph.hash(),
        sample_shape: graph.tensors[graph.inputs[0]].shape[1..].to_vec(),
        calibration: calib_path
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_default(),
        per_channel,
        fp32: r.fp32,
        candidates: candidates.iter().map(|c| c.to_string()).collect(),
    };
    report::write(&dir, "run.json", &serde_json::to_string_pretty(&run)?)?;
    report::write_all(
        &dir,
        &graph,
        &groups,
        &r,
        target,
        start.elapsed().as_secs_f64(),
    )?;
    let evaluated: usize = r.phases.iter().map(|p| p.evaluations).sum();
    let cached: usize = r.phases.iter().map(|p| p.cached).sum();
    let at16 = r
        .chosen
        .config
        .iter()
        .filter(|c| c.act == 16 || c.weight == 16)
        .count();
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "results": dir.display().to_string(), "fp32": r.fp32, "baseline": r.baseline.to_string(),
                "uniform": r.uniform.iter().map(|(c, v)| (c.to_string(), *v)).collect::<std::collections::BTreeMap<_, _>>(),
                "chosen": {"relative_bitops": r.chosen.relative_bitops, "accuracy": r.chosen.accuracy, "groups_at_16_bits": at16, "groups": groups.len(),
                           "config": r.chosen.config.iter().map(|c| c.to_string()).collect::<Vec<_>>()},
                "early_exit": r.early_exit, "pareto_points": report::curve(&r).len(),
                "evaluations": evaluated, "from_journal": cached,
                "cost_model": r.cost, "chosen_cost": r.chosen.cost,
                "latency_measurements": r.timing.evaluations, "latency_from_journal": r.timing.cached,
                "phase3": r.phase3.as_ref().map(|p| serde_json::json!({"marked": p.marked, "note": p.note, "points": p.points.iter().map(|a| serde_json::json!({"alpha": a.alpha, "accuracy": a.accuracy, "latency_us": a.latency_us, "convert_us": a.convert_us, "converts": a.converts, "relative_bitops": a.relative_bitops, "groups_raised": a.groups_raised, "meets_target": a.meets_target})).collect::<Vec<_>>()})), "device": a.device.join(","), "evaluator": ev.identity(), "pushed_bytes": pushed, "served": ev.served(), "phases": r.phases, "seconds": start.elapsed().as_secs_f64(),
            })
        );
    } else {
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
        if let Some(e) = &r.early_exit {
            println!("{e}");
        }
        println!(
            "chosen: {at16} of {} groups at 16 bits, relative bit-ops {:.4}, accuracy {:.4}",
            groups.len(),
            r.chosen.relative_bitops,
            r.chosen.accuracy
        );
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
                println!(
                    "chosen config's Converts: {} ({:.0} µs), relative cost {:.4}{}",
                    pc.converts,
                    pc.convert_us,
                    pc.relative_cost,
                    pc.latency_us
                        .map(|l| format!(", latency {l:.0} µs"))
                        .unwrap_or_default()
                );
            }
        }
        if let Some(p3) = &r.phase3 {
            println!("phase 3 (α: accuracy, latency µs, Converts):");
            for (i, a) in p3.points.iter().enumerate() {
                println!(
                    "  {:.1}{}: {}, {}, {}",
                    a.alpha,
                    if p3.marked == Some(i) { " *" } else { "" },
                    a.accuracy
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
        println!(
            "{evaluated} evaluations ({cached} from the journal) in {:.1} s",
            start.elapsed().as_secs_f64()
        );
        println!("results in {} (open pareto.html)", dir.display());
    }
    Ok(())
}
