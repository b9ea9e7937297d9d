//! `amp-host trace`: the reference backend against QNN tensor by tensor on one config, naming the first
//! tensor more than 1 LSB away.

use anyhow::{Context, Result};

use super::{model_and_data, plan_for};
use crate::cli::TraceArgs;

pub(crate) fn trace(a: TraceArgs) -> Result<()> {
    let (graph, data) = model_and_data(&a.input.model, &a.input.data)?;
    let plan = plan_for(&graph, &data, &a.precision, &a.quant, true)?
        .context("trace compares quantized configs: give a precision aNwM or --encodings")?;
    let rt = a.qnn.runtime()?;
    let x = data.inputs.slice_batch(0, a.samples.clamp(1, data.len()));
    let diffs = amp_host::trace::trace(&rt, &graph, &plan, &x)?;
    let first = diffs
        .iter()
        .position(|d| d.max_lsb > amp_host::trace::WITHIN_1_LSB);
    if a.json {
        let o = serde_json::json!({
            "model": a.input.model.display().to_string(), "htp_arch": a.qnn.htp_arch, "samples": x.batch(),
            "tensors": diffs, "first_over_1_lsb": first.map(|i| diffs[i].tensor.clone()),
        });
        println!("{o}");
        return Ok(());
    }
    println!(
        "{}: reference vs HTP v{} on {} samples, per materialised tensor",
        a.input.model.display(),
        a.qnn.htp_arch,
        x.batch()
    );
    println!(
        "{:>4}  {:<32} {:<18} {:>4} {:>9} {:>9} {:>8}",
        "#", "node", "op", "bits", "max LSB", "mean LSB", "≤1 LSB"
    );
    for (i, d) in diffs.iter().enumerate() {
        let mark = if Some(i) == first {
            "  ← first over 1 LSB"
        } else {
            ""
        };
        println!(
            "{:>4}  {:<32} {:<18} {:>4} {:>9.2} {:>9.3} {:>7.1}%{mark}",
            i,
            d.node,
            d.op,
            d.bits,
            d.max_lsb,
            d.mean_lsb,
            d.within_1lsb * 100.0
        );
    }
    match first {
        Some(i) => println!(
            "first tensor more than 1 LSB away: {} ({} \"{}\")",
            diffs[i].tensor, diffs[i].op, diffs[i].node
        ),
        None => println!("every tensor within 1 LSB"),
    }
    Ok(())
}
