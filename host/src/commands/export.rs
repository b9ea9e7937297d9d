//! `amp-host export`: the encodings of a tuned point in AIMET's format.

use amp_device::quant::{Precision, QuantPlan};
use amp_host::amp::export::{plan_from_json, to_json};
use amp_host::amp::groups::Groups;
use amp_host::calib::CalibrationFile;
use amp_host::Usage;
use anyhow::{anyhow, bail, Context, Result};

use super::tune::RunInfo;
use super::{load_model, read_json};
use crate::cli::ExportArgs;

pub(crate) fn export(a: ExportArgs) -> Result<()> {
    let run: RunInfo = read_json(&a.results.join("run.json"))
        .context("is this a directory written by `amp-host tune`?")?;
    let g = load_model(&run.model, Some(run.sample_shape.clone()))?;
    if g.hash() != run.model_hash {
        bail!(
            "model {} changed since the tune (hash {} now, {} then); rerun the tune",
            run.model.display(),
            g.hash(),
            run.model_hash
        );
    }
    let calib: CalibrationFile = read_json(&a.results.join(&run.calibration))?;
    let chosen: serde_json::Value = match a.allowed_drop.map(|d| d.0) {
        None if a.phase3 => {
            let p3: serde_json::Value = read_json(&a.results.join("phase3.json"))
                .context("was the tune run with --phase3?")?;
            let i = p3["marked"].as_u64().ok_or_else(|| {
                anyhow!("phase3.json marks no config (none met the target with a measured latency)")
            })?;
            p3["points"][i as usize].clone()
        }
        None => read_json(&a.results.join("config.json"))?,
        Some(None) => {
            return Err(Usage(
                "--allowed-drop none: export picks one point, so it needs a drop (without --allowed-drop it exports the tune's chosen config)".into(),
            )
            .into())
        }
        Some(Some(d)) => {
            let reference = run.reference.unwrap_or(run.fp32);
            let target = run.metric.target(reference, d);
            let pareto: serde_json::Value = read_json(&a.results.join("pareto.json"))?;
            pareto["points"]
                .as_array()
                .into_iter()
                .flatten()
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
    let v = to_json(&g, &plan, a.format);
    // the file must read back into the same plan
    plan_from_json(&g, &v)?;
    std::fs::write(&a.out, serde_json::to_string_pretty(&v)?)
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!(
        "wrote {} (relative bit-ops {:.4}, {} {:.4})",
        a.out.display(),
        chosen["relative_bitops"].as_f64().unwrap_or(0.0),
        run.metric.name,
        score_of(&chosen).unwrap_or(f64::NAN)
    );
    Ok(())
}

/// A point's score (`accuracy` in results of earlier versions).
fn score_of(p: &serde_json::Value) -> Option<f64> {
    p.get("score")
        .or_else(|| p.get("accuracy"))
        .and_then(|v| v.as_f64())
}
