//! `amp-host info`: a model's ops, MACs and tensors.

use std::collections::BTreeMap;

use amp_device::ir::Op;
use anyhow::Result;

use super::load_model;
use crate::cli::InfoArgs;

pub(crate) fn info(a: InfoArgs) -> Result<()> {
    let g = load_model(&a.model, a.input_shape)?;
    let mut ops: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for n in &g.nodes {
        let e = ops.entry(n.op.name()).or_default();
        e.0 += 1;
        e.1 += g.macs(n);
    }
    let total: u64 = ops.values().map(|v| v.1).sum();
    let consts = g.tensors.iter().filter(|t| t.is_const()).count();
    // a grouped ConvTranspose's weights are stored block-diagonal: the model has one group's share of them
    let mut stored_per_param = vec![1; g.tensors.len()];
    for n in &g.nodes {
        if let Op::ConvTranspose(c) = &n.op {
            stored_per_param[n.inputs[1]] = c.group.max(1);
        }
    }
    let params: usize = (g.tensors.iter().enumerate())
        .filter(|(_, t)| t.is_const())
        .map(|(i, t)| t.numel() / stored_per_param[i])
        .sum();
    // float32 inputs (quantized on the way in) and integer ones (token ids, read as Gather indices, never
    // quantized; or masks, cast to float and quantized); float32 outputs
    let io = |ids: &[usize]| -> Vec<(String, Vec<usize>, &str)> {
        ids.iter()
            .map(|&t| {
                let dtype = if g.integer.contains(&t) {
                    "int64"
                } else if g.int_as_float.contains(&t) {
                    "int64 (read as float32)"
                } else {
                    "float32"
                };
                (g.tensors[t].name.clone(), g.tensors[t].shape.clone(), dtype)
            })
            .collect()
    };
    let (inputs, outputs) = (io(&g.inputs), io(&g.outputs));
    let listed = |v: &[(String, Vec<usize>, &str)]| -> Vec<serde_json::Value> {
        v.iter()
            .map(|(n, s, d)| serde_json::json!({"name": n, "shape": s, "dtype": d}))
            .collect()
    };
    if a.json {
        let o = serde_json::json!({
            "model": a.model.display().to_string(),
            "hash": g.hash(),
            "input_shape": g.tensors[g.inputs[0]].shape,
            "inputs": listed(&inputs),
            "outputs": listed(&outputs),
            "nodes": g.nodes.len(),
            "tensors": g.tensors.len(),
            "constants": consts,
            "parameters": params,
            "macs_per_sample": total,
            "ops": ops.iter().map(|(k, v)| (k.to_string(), serde_json::json!({"count": v.0, "macs": v.1}))).collect::<serde_json::Map<_, _>>(),
        });
        println!("{o}");
    } else {
        println!("model        {}  (hash {})", a.model.display(), g.hash());
        for (kind, list) in [("input", &inputs), ("output", &outputs)] {
            for (name, shape, dtype) in list {
                println!("{kind:<12} {name} {shape:?} {dtype} (batch first)");
            }
        }
        println!("nodes        {}", g.nodes.len());
        println!(
            "tensors      {} ({consts} constant, {params} parameters)",
            g.tensors.len()
        );
        println!("MACs/sample  {total}");
        println!("{:<20} {:>6} {:>14}", "op", "count", "MACs");
        for (k, v) in &ops {
            println!("{k:<20} {:>6} {:>14}", v.0, v.1);
        }
    }
    Ok(())
}
