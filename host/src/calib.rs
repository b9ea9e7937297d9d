//! Calibration: one batched FP32 pass records each activation's min/max; encodings for every bitwidth derive
//! from these statistics, once, and are reused by every precision config. Saved as JSON keyed by the model's
//! and the calibration data's hashes, so a rerun skips the pass.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use amp_device::backend::reference::Reference;
use amp_device::backend::Inputs;
use amp_device::ir::Graph;
use amp_device::quant::Stats;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::progress;

/// The saved calibration of one model on one calibration set.
#[derive(Serialize, Deserialize)]
pub struct CalibrationFile {
    pub model_hash: String,
    pub data_hash: String,
    pub samples: usize,
    pub stats: Stats,
}

/// Records min/max of every activation of `graph` over `inputs` (FP32, batches of `batch`).
pub fn calibrate(graph: Arc<Graph>, inputs: &Inputs, batch: usize) -> Result<Stats> {
    let r = Reference::new(graph.clone(), None)?;
    let mut mins = vec![f32::INFINITY; graph.tensors.len()];
    let mut maxs = vec![f32::NEG_INFINITY; graph.tensors.len()];
    let n = inputs.batch();
    let bar = progress::bar(n as u64, "calibrating");
    for start in (0..n).step_by(batch.max(1)) {
        let end = (start + batch).min(n);
        r.run_observed(&inputs.slice_batch(start, end), |t, a| {
            for &v in &a.data {
                mins[t] = mins[t].min(v);
                maxs[t] = maxs[t].max(v);
            }
        })?;
        bar.inc((end - start) as u64);
    }
    bar.finish_and_clear();
    let mut stats = Stats::default();
    for (t, tensor) in graph.tensors.iter().enumerate() {
        if !tensor.is_const() && mins[t] <= maxs[t] {
            stats.ranges.insert(tensor.name.clone(), [mins[t], maxs[t]]);
        }
    }
    Ok(stats)
}

/// Loads the cached calibration for (model, data) from `dir`, or runs it and saves it there.
pub fn calibrate_cached(
    graph: Arc<Graph>,
    inputs: &Inputs,
    data_hash: &str,
    dir: &Path,
) -> Result<(Stats, PathBuf, bool)> {
    let model_hash = graph.hash();
    let path = dir.join(format!("calibration-{model_hash}-{data_hash}.json"));
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Ok(f) = serde_json::from_str::<CalibrationFile>(&text) {
            if f.model_hash == model_hash && f.data_hash == data_hash {
                return Ok((f.stats, path, true));
            }
        }
    }
    let stats = calibrate(graph, inputs, 32)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = CalibrationFile {
        model_hash,
        data_hash: data_hash.to_string(),
        samples: inputs.batch(),
        stats,
    };
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&file)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok((file.stats, path, false))
}
