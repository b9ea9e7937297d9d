//! What each subcommand does; the flags are in `cli`. Shared here: loading a model and the quantization
//! plan of a precision or an encodings file.

mod bench;
mod devices;
mod eval;
mod export;
mod info;
mod trace;
mod tune;

use std::path::Path;
use std::sync::Arc;

use amp_device::ir::Graph;
use amp_device::quant::{BitPlan, QuantPlan};
use amp_host::calib::calibrate_cached;
use amp_host::data::Dataset;
use amp_host::import::{import_file, ImportOptions};
use anyhow::{Context, Result};

use crate::cli::{Level, QuantArgs};

pub(crate) use bench::bench;
pub(crate) use devices::devices;
pub(crate) use eval::eval;
pub(crate) use export::export;
pub(crate) use info::info;
pub(crate) use trace::trace;
pub(crate) use tune::{groups, tune};

/// Loads the data, then the model with the data's per-sample input shape.
pub(crate) fn model_and_data(model: &Path, data: &Path) -> Result<(Arc<Graph>, Dataset)> {
    let data = Dataset::load(data)?;
    let graph = Arc::new(load_model(model, Some(data.sample_shape()))?);
    Ok((graph, data))
}

/// Imports a model, with the per-sample input shape where the data gives it.
pub(crate) fn load_model(path: &Path, sample_shape: Option<Vec<usize>>) -> Result<Graph> {
    import_file(
        path,
        &ImportOptions {
            input_shape: sample_shape,
        },
    )
    .with_context(|| format!("model {}", path.display()))
}

/// The quantization plan of `precision` or of an encodings file (None: FP32).
pub(crate) fn plan_for(
    graph: &Arc<Graph>,
    data: &Dataset,
    precision: Level,
    q: &QuantArgs,
    per_channel: bool,
) -> Result<Option<QuantPlan>> {
    if let Some(path) = &q.encodings {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
        return Ok(Some(
            amp_host::amp::export::plan_from_json(graph, &v)
                .with_context(|| format!("encodings {}", path.display()))?,
        ));
    }
    let Level::Uniform(p) = precision else {
        return Ok(None);
    };
    let calib = data.head(q.calib_samples.max(1));
    let (stats, _, _) = calibrate_cached(graph.clone(), &calib.inputs, &calib.hash(), &q.cache)?;
    let mut bits = BitPlan::uniform(graph, p);
    bits.per_channel = per_channel;
    Ok(Some(QuantPlan::new(graph, &stats, &bits)?))
}
