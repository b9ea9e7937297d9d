//! `amp-host bench`: graph build time and execute latency of one config, in this process or on a device.

use std::sync::Arc;

use amp_device::ir::Graph;
use amp_host::calib::calibrate_cached;
use amp_host::data::Dataset;
use anyhow::Result;

use super::{model_and_data, plan_for};
use crate::cli::{BenchArgs, Level};
use amp_host::amp::remote::DeviceSpec;

pub(crate) fn bench(a: BenchArgs) -> Result<()> {
    use amp_host::amp::evaluator::{prepare, Prepared};
    use std::time::Instant;
    let (graph, data) = model_and_data(&a.input.model, &a.input.data)?;
    if let Some(d) = &a.device {
        return bench_on_device(&a, d, &data, graph);
    }
    let plan = plan_for(&graph, &data, a.precision, &a.quant, true)?;
    let backend = a.backend.load(a.backend.backend)?;
    let batch = a.batch.max(1);
    let t = Instant::now();
    let mut model = prepare(&backend, &graph, plan, batch)?;
    let build_ms = t.elapsed().as_secs_f64() * 1e3;
    let x = data.inputs.slice_batch(0, batch.min(data.len()));
    for _ in 0..a.warmup {
        model.run(&x)?;
    }
    let mut wall = Vec::new();
    let mut device = Vec::new();
    for _ in 0..a.iters.max(1) {
        let t = Instant::now();
        model.run(&x)?;
        wall.push(t.elapsed().as_secs_f64() * 1e6);
        if let Prepared::Htp(m) = &model {
            if let Some(us) = m.last_execute_us {
                device.push(us as f64);
            }
        }
    }
    let stats = |v: &mut Vec<f64>| -> Option<serde_json::Value> {
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let q = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
        Some(
            serde_json::json!({"min": v[0], "median": q(0.5), "p90": q(0.9), "max": v[v.len() - 1]}),
        )
    };
    let label = a
        .quant
        .encodings
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or(a.precision.to_string());
    let backend_name = a.backend.label();
    let o = serde_json::json!({
        "model": a.input.model.display().to_string(), "config": label, "backend": backend_name, "batch": batch,
        "build_and_finalize_ms": build_ms, "iters": a.iters.max(1),
        "wall_us": stats(&mut wall), "execute_us": stats(&mut device),
    });
    if a.json {
        println!("{o}");
    } else {
        println!(
            "{} {label} on {backend_name}, batch {batch}",
            a.input.model.display()
        );
        println!("build + finalize  {build_ms:.1} ms");
        if let Some(w) = o["wall_us"].as_object() {
            println!(
                "host wall time    min {:.0} µs, median {:.0} µs, p90 {:.0} µs, max {:.0} µs",
                w["min"].as_f64().unwrap_or(0.0),
                w["median"].as_f64().unwrap_or(0.0),
                w["p90"].as_f64().unwrap_or(0.0),
                w["max"].as_f64().unwrap_or(0.0)
            );
        }
        if let Some(d) = o["execute_us"].as_object() {
            println!("QNN execute time  min {:.0} µs, median {:.0} µs, p90 {:.0} µs, max {:.0} µs (profile event 400)", d["min"].as_f64().unwrap_or(0.0), d["median"].as_f64().unwrap_or(0.0), d["p90"].as_f64().unwrap_or(0.0), d["max"].as_f64().unwrap_or(0.0));
        }
    }
    Ok(())
}

fn bench_on_device(
    a: &BenchArgs,
    spec: &DeviceSpec,
    data: &Dataset,
    graph: Arc<Graph>,
) -> Result<()> {
    use amp_host::amp::remote::Connector;
    if a.quant.encodings.is_some() {
        anyhow::bail!(
            "--device takes --precision (a uniform config); benchmark an encodings file in process"
        );
    }
    let device = spec.to_string();
    let groups = amp_host::amp::groups::Groups::new(&graph);
    let calib = data.head(a.quant.calib_samples.max(1));
    let (stats, _, _) =
        calibrate_cached(graph.clone(), &calib.inputs, &calib.hash(), &a.quant.cache)?;
    let plan = match a.precision {
        Level::Fp32 => None,
        Level::Uniform(p) => Some(groups.bit_plan(&graph, &vec![p; groups.len()], true)),
    };
    let backend = a.backend.choice();
    let connector = Connector {
        work: a.quant.cache.join("agent"),
        qnn_lib: a.backend.qnn.qnn_lib.clone(),
        backend,
        graph,
        groups,
        stats,
        per_channel: true,
        phase1: 0,
        data: data.head(a.batch.max(1)),
        batch: a.batch.max(1),
        timeout: a.deadline.limit(),
    };
    let mut ev = connector.connect(spec)?;
    let l = ev.profile(plan, a.warmup, a.iters.max(1))?;
    let (min, median, p90, max) = (l.min_us, l.median_us, l.p90_us, l.max_us);
    let who = amp_host::amp::evaluator::Evaluator::identity(&ev);
    if a.json {
        println!(
            "{}",
            serde_json::json!({"model": a.input.model.display().to_string(), "config": a.precision.to_string(), "device": device, "evaluator": who, "batch": a.batch.max(1), "iters": a.iters.max(1), "source": l.source, "latency_us": {"min": min, "median": median, "p90": p90, "max": max}})
        );
    } else {
        println!(
            "{} {} on {who}, batch {}",
            a.input.model.display(),
            a.precision,
            a.batch.max(1)
        );
        println!("latency (measured by the agent, {})  min {min:.0} µs, median {median:.0} µs, p90 {p90:.0} µs, max {max:.0} µs", l.source);
    }
    Ok(())
}
