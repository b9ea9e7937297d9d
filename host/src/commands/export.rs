//! `amp-host export`: the encodings of a tuned point in AIMET's format.

use std::path::Path;

use amp_device::ir::Graph;
use amp_device::quant::{Precision, QuantPlan};
use amp_host::amp::export::{plan_from_json, to_json, Format};
use amp_host::amp::groups::Groups;
use amp_host::amp::qdq;
use amp_host::calib::CalibrationFile;
use amp_host::import::{import_file, ImportOptions};
use amp_host::Usage;
use anyhow::{anyhow, bail, Context, Result};

use super::tune::RunInfo;
use super::{model_and_data, plan_for, read_json};
use crate::cli::{ExportArgs, Level, QuantArgs};

pub(crate) fn export(a: ExportArgs) -> Result<()> {
    let (g, plan, what) = match (&a.results, a.precision) {
        (Some(dir), _) => tuned_plan(&a, dir)?,
        (None, Some(p)) => {
            let (Some(model), Some(data)) = (&a.model, &a.data) else {
                return Err(Usage("--precision needs --model and --data".into()).into());
            };
            let (graph, data) = model_and_data(model, data)?;
            let q = QuantArgs {
                encodings: None,
                calib_samples: a.calib_samples,
                cache: a.cache.clone(),
            };
            let plan = plan_for(&graph, &data, Level::Uniform(p), &q, !a.per_tensor)?
                .ok_or_else(|| anyhow!("no plan for {p}"))?;
            ((*graph).clone(), plan, format!("uniform {p}"))
        }
        (None, None) => return Err(Usage("give --results DIR or --precision aNwM".into()).into()),
    };
    let bytes = match a.format {
        Format::Qdq => qdq::to_qdq(&g, &plan, a.opset, a.batch as usize)?,
        f => {
            let v = to_json(&g, &plan, f);
            // the file must read back into the same plan
            plan_from_json(&g, &v)?;
            serde_json::to_string_pretty(&v)?.into_bytes()
        }
    };
    std::fs::write(&a.out, bytes).with_context(|| format!("writing {}", a.out.display()))?;
    println!("wrote {} ({what})", a.out.display());
    Ok(())
}

/// The graph and plan of a tuned point, and what it is.
fn tuned_plan(a: &ExportArgs, dir: &Path) -> Result<(Graph, QuantPlan, String)> {
    let run: RunInfo = read_json(&dir.join("run.json"))
        .context("is this a directory written by `amp-host tune`?")?;
    let g = import_file(
        &run.model,
        &ImportOptions {
            input_shape: Some(run.sample_shape.clone()),
            shapes: run.input_shapes.clone().into_iter().collect(),
        },
    )
    .with_context(|| format!("model {}", run.model.display()))?;
    if g.hash() != run.model_hash {
        bail!(
            "model {} changed since the tune (hash {} now, {} then); rerun the tune",
            run.model.display(),
            g.hash(),
            run.model_hash
        );
    }
    let calib: CalibrationFile = read_json(&dir.join(&run.calibration))?;
    let chosen: serde_json::Value = match a.allowed_drop.map(|d| d.0) {
        None if a.phase3 => {
            let p3: serde_json::Value = read_json(&dir.join("phase3.json"))
                .context("was the tune run with --phase3?")?;
            let i = p3["marked"].as_u64().ok_or_else(|| {
                anyhow!("phase3.json marks no config (none met the target with a measured latency)")
            })?;
            p3["points"][i as usize].clone()
        }
        None => {
            let c: serde_json::Value = read_json(&dir.join("config.json"))?;
            if let Some(d) = c.get("phase3_dominates") {
                eprintln!(
                    "amp-host: exporting the phase-2 choice (config.json); phase 3's marked config dominates it ({} Converts instead of {}, relative bit-ops {:.4}): `export --phase3` exports that one",
                    d["converts"],
                    c["converts"],
                    d["relative_bitops"].as_f64().unwrap_or(f64::NAN)
                );
            }
            c
        }
        Some(None) => {
            return Err(Usage(
                "--allowed-drop none: export picks one point, so it needs a drop (without --allowed-drop it exports the tune's chosen config)".into(),
            )
            .into())
        }
        Some(Some(d)) => {
            let reference = run.reference.unwrap_or(run.fp32);
            let target = run.metric.target(reference, d);
            let file = dir.join("pareto.json");
            let pareto: serde_json::Value = read_json(&file)?;
            let points = pareto["points"].as_array().ok_or_else(|| {
                anyhow!(
                    "{}: no \"points\" list; is it a pareto.json written by `amp-host tune`?",
                    file.display()
                )
            })?;
            points
                .iter()
                .filter(|p| score_of(p).is_some_and(|v| run.metric.meets(v, target)))
                .min_by(|x, y| {
                    x["relative_bitops"]
                        .as_f64()
                        .unwrap_or(1.0)
                        .total_cmp(&y["relative_bitops"].as_f64().unwrap_or(1.0))
                })
                .cloned()
                .ok_or_else(|| {
                    anyhow!(
                        "no evaluated point reaches {} {target:.4} ({reference:.4} with a drop of {d} {})",
                        run.metric.name,
                        run.metric.unit
                    )
                })?
        }
    };
    let config: Vec<Precision> = chosen["config"]
        .as_array()
        .ok_or_else(|| anyhow!("the chosen point has no config"))?
        .iter()
        .map(|c| c.as_str().unwrap_or("").parse().map_err(anyhow::Error::msg))
        .collect::<Result<_>>()?;
    let groups = Groups::new(&g);
    if config.len() != groups.len() {
        bail!(
            "the results hold {} groups but the model has {}",
            config.len(),
            groups.len()
        );
    }
    let plan = QuantPlan::new(
        &g,
        &calib.stats,
        &groups.bit_plan(&g, &config, run.per_channel),
    )?;
    let what = format!(
        "relative bit-ops {:.4}, {} {:.4}",
        chosen["relative_bitops"].as_f64().unwrap_or(0.0),
        run.metric.name,
        score_of(&chosen).unwrap_or(f64::NAN)
    );
    Ok((g, plan, what))
}

/// A point's score (`accuracy` in results of earlier versions).
fn score_of(p: &serde_json::Value) -> Option<f64> {
    p.get("score")
        .or_else(|| p.get("accuracy"))
        .and_then(|v| v.as_f64())
}
