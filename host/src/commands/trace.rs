//! `amp-host trace`: the reference backend against QNN tensor by tensor on one config, over the whole graph
//! and op by op (the reference op run on QNN's own inputs), naming the first tensor more than 1 LSB away
//! and the first op that adds more than 1 LSB itself.

use anyhow::{Context, Result};

use super::{model_and_data, plan_for};
use crate::cli::TraceArgs;

pub(crate) fn trace(a: TraceArgs) -> Result<()> {
    let (graph, data) = model_and_data(&a.input.model, &a.input.data)?;
    let plan = plan_for(&graph, &data, a.precision, &a.quant, true)?
        .context("trace compares quantized configs: give a precision aNwM or --encodings")?;
    let rt = a.qnn.runtime()?;
    let x = data.inputs.slice_batch(0, a.samples.clamp(1, data.len()));
    let diffs = amp_host::trace::trace(&rt, &graph, &plan, &x)?;
    let over = amp_host::trace::WITHIN_1_LSB;
    let first = diffs.iter().position(|d| d.max_lsb > over);
    let first_local = diffs.iter().position(|d| d.local_max_lsb > over);
    if a.json {
        let o = serde_json::json!({
            "model": a.input.model.display().to_string(), "htp_arch": a.qnn.htp_arch, "samples": x.batch(),
            "tensors": diffs, "first_over_1_lsb": first.map(|i| diffs[i].tensor.clone()),
            "first_op_over_1_lsb": first_local.map(|i| diffs[i].tensor.clone()),
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
    println!("(whole graph: as both backends computed it; the op alone: the reference op on QNN's inputs)");
    println!(
        "{:>4}  {:<32} {:<18} {:>4} {:>9} {:>9} {:>8} {:>10}",
        "#", "node", "op", "bits", "max LSB", "mean LSB", "≤1 LSB", "op alone"
    );
    for (i, d) in diffs.iter().enumerate() {
        let mark = match (Some(i) == first, Some(i) == first_local) {
            (true, true) => "  ← first over 1 LSB, and the first op that adds it",
            (true, false) => "  ← first over 1 LSB",
            (false, true) => "  ← the first op that adds over 1 LSB",
            (false, false) => "",
        };
        println!(
            "{:>4}  {:<32} {:<18} {:>4} {:>9.2} {:>9.3} {:>7.1}% {:>10.2}{mark}",
            i,
            d.node,
            d.op,
            d.bits,
            d.max_lsb,
            d.mean_lsb,
            d.within_1lsb * 100.0,
            d.local_max_lsb
        );
    }
    match first {
        Some(i) => println!(
            "first tensor more than 1 LSB away: {} ({} \"{}\")",
            diffs[i].tensor, diffs[i].op, diffs[i].node
        ),
        None => println!("every tensor within 1 LSB"),
    }
    if let Some(i) = first_local {
        println!(
            "first op that adds more than 1 LSB itself: {} \"{}\" ({:.2} LSB)",
            diffs[i].op, diffs[i].node, diffs[i].local_max_lsb
        );
    }
    Ok(())
}
