//! What each subcommand does; the flags are in `cli`. Shared here: loading a model, the quantization plan
//! of a precision or an encodings file, and the metric configs are scored by.

mod bench;
mod check;
mod devices;
mod eval;
mod export;
mod info;
mod trace;
mod tune;

use std::path::Path;
use std::sync::Arc;

use amp_device::ir::Graph;
use amp_device::metrics::{MetricKind, MetricSpec};
use amp_device::quant::{BitPlan, QuantPlan};
use amp_host::amp::metric::{CommandMetric, Metric};
use amp_host::calib::calibrate_cached;
use amp_host::data::Dataset;
use amp_host::import::{import_file, ImportOptions};
use amp_host::Usage;
use anyhow::{Context, Result};

use crate::cli::{Direction, Level, MetricArgs, MetricName, QuantArgs};

pub(crate) use bench::bench;
pub(crate) use check::check;
pub(crate) use devices::devices;
pub(crate) use eval::eval;
pub(crate) use export::export;
pub(crate) use info::info;
pub(crate) use trace::trace;
pub(crate) use tune::{groups, tune};

/// Reads a JSON file into `T`, naming the file when it cannot.
pub(crate) fn read_json<T: for<'de> serde::Deserialize<'de>>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: unexpected content", path.display()))
}

/// Loads the data, then the model with the data's per-sample input shape.
pub(crate) fn model_and_data(model: &Path, data: &Path) -> Result<(Arc<Graph>, Dataset)> {
    let mut data = Dataset::load(data)?;
    let opts = ImportOptions {
        input_shape: Some(data.sample_shape()),
        shapes: data.shapes(),
    };
    let graph =
        Arc::new(import_file(model, &opts).with_context(|| format!("model {}", model.display()))?);
    data.bind(&graph)?;
    Ok((graph, data))
}

/// Imports a model, with the per-sample input shape where the user gives it.
pub(crate) fn load_model(path: &Path, sample_shape: Option<Vec<usize>>) -> Result<Graph> {
    import_file(
        path,
        &ImportOptions {
            input_shape: sample_shape,
            ..Default::default()
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

/// The names of a model's outputs.
pub(crate) fn output_names(graph: &Graph) -> Vec<String> {
    (graph.outputs.iter())
        .map(|&t| graph.tensors[t].name.clone())
        .collect()
}

/// The metric `a` asks for, checked against the model's outputs and the data: top1 by default where the
/// data has labels, else sqnr. A metric the data cannot serve is a usage error saying what would.
pub(crate) fn metric_for(a: &MetricArgs, graph: &Graph, data: &Dataset) -> Result<Metric> {
    let names = output_names(graph);
    if let Some(cmd) = &a.metric_cmd {
        let higher = a.metric_direction == Direction::Higher;
        let timeout = std::time::Duration::from_secs(a.metric_timeout.max(1));
        return Ok(Metric::Command(Arc::new(CommandMetric::new(
            cmd, higher, timeout, names,
        )?)));
    }
    let kind = match a.metric {
        Some(MetricName(k)) => k,
        None if data.labels.is_some() => MetricKind::Top1,
        None => MetricKind::Sqnr,
    };
    builtin(kind, a.metric_output.as_deref(), &names, data)
}

/// A built-in metric on one output (by name) or all, checked against the model's outputs and the data.
pub(crate) fn builtin(
    kind: MetricKind,
    output: Option<&str>,
    names: &[String],
    data: &Dataset,
) -> Result<Metric> {
    if kind.needs_labels() && data.labels.is_none() {
        return Err(Usage(format!(
            "{}: {} needs labels and the data has none (no `labels` array); without labels use --metric {} or --metric-cmd",
            data.path,
            kind.name(),
            MetricKind::label_free().replace(", ", "|")
        ))
        .into());
    }
    let output = match output {
        None => None,
        Some(o) => Some(names.iter().position(|n| n == o).ok_or_else(|| {
            Usage(format!(
                "--metric-output {o}: the model has no such output (its outputs: {})",
                names.join(", ")
            ))
        })?),
    };
    Ok(Metric::Builtin(MetricSpec { kind, output }))
}
