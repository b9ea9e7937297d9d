//! Encodings files in AIMET's format (1.0.0 by default, 0.6.1 on request) with the ONNX model's tensor
//! names, as QNN converters' `--quantization_overrides` take them; and reading them back into a plan.

use std::collections::HashMap;

use amp_device::ir::Graph;
use amp_device::quant::{weight_axis, Encoding, QuantPlan, Role, WeightQuant};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[value(name = "1.0.0", alias = "qnn-overrides")]
    V1,
    #[value(name = "0.6.1")]
    V061,
    /// A QDQ ONNX model ([`super::qdq`]), not an encodings file.
    #[value(name = "qdq")]
    Qdq,
}

fn weight_offset(bits: u8) -> i64 {
    -(1i64 << (bits - 1))
}

/// The encodings of `plan` for `g` as AIMET JSON.
pub fn to_json(g: &Graph, plan: &QuantPlan, format: Format) -> Value {
    let mut acts = Vec::new();
    for (t, tensor) in g.tensors.iter().enumerate() {
        if !matches!(plan.roles[t], Role::Own | Role::Alias(_)) {
            continue;
        }
        if let Some(e) = plan.encodings[t] {
            acts.push((tensor.name.clone(), e));
        }
    }
    let mut params = Vec::new();
    for (i, n) in g.nodes.iter().enumerate() {
        if let Some(w) = &plan.weights[i] {
            params.push((g.tensors[n.inputs[1]].name.clone(), w.clone()));
        }
    }
    match format {
        Format::V1 => {
            let a: Vec<Value> = acts
                .iter()
                .map(|(name, e)| json!({"name": name, "enc_type": "PER_TENSOR", "dtype": "INT", "bw": e.bits, "is_sym": e.is_symmetric(), "scale": [e.scale], "offset": [e.offset]}))
                .collect();
            let p: Vec<Value> = params
                .iter()
                .map(|(name, w)| {
                    json!({"name": name, "enc_type": if w.scales.len() > 1 { "PER_CHANNEL" } else { "PER_TENSOR" }, "dtype": "INT", "bw": w.bits,
                           "is_sym": true, "scale": w.scales, "offset": vec![weight_offset(w.bits); w.scales.len()]})
                })
                .collect();
            json!({"version": "1.0.0", "activation_encodings": a, "param_encodings": p, "quantizer_args": quantizer_args(plan)})
        }
        Format::V061 | Format::Qdq => {
            let mut a = serde_json::Map::new();
            for (name, e) in &acts {
                a.insert(name.clone(), json!([{"bitwidth": e.bits, "dtype": "int", "is_symmetric": if e.is_symmetric() { "True" } else { "False" }, "max": e.max(), "min": e.min(), "offset": e.offset, "scale": e.scale}]));
            }
            let mut p = serde_json::Map::new();
            for (name, w) in &params {
                let o = weight_offset(w.bits);
                let list: Vec<Value> = w
                    .scales
                    .iter()
                    .map(|&s| json!({"bitwidth": w.bits, "dtype": "int", "is_symmetric": "True", "max": ((-o - 1) as f64) * s as f64, "min": o as f64 * s as f64, "offset": o, "scale": s}))
                    .collect();
                p.insert(name.clone(), Value::Array(list));
            }
            json!({"version": "0.6.1", "activation_encodings": a, "param_encodings": p, "quantizer_args": quantizer_args(plan)})
        }
    }
}

/// AIMET's defaults for tensors the file does not name: the narrowest widths the config uses (every
/// tensor amp quantizes is named, so these describe the config rather than change it), weights symmetric,
/// per channel when the config's are.
fn quantizer_args(plan: &QuantPlan) -> Value {
    let act = plan
        .encodings
        .iter()
        .flatten()
        .map(|e| e.bits)
        .min()
        .unwrap_or(8);
    let weights = || plan.weights.iter().flatten();
    let param = weights().map(|w| w.bits).min().unwrap_or(8);
    let per_channel = weights().any(|w| w.axis.is_some());
    json!({"activation_bitwidth": act, "dtype": "int", "is_symmetric": true, "param_bitwidth": param, "per_channel_quantization": per_channel, "quant_scheme": "post_training_tf"})
}

/// (bits, scales, offsets) of one entry of either format.
fn entry(v: &Value) -> Result<(u8, Vec<f32>, Vec<i64>)> {
    if let Some(list) = v.as_array() {
        // 0.6.1: a list of per-channel dicts
        let bits = list
            .first()
            .and_then(|e| e["bitwidth"].as_u64())
            .ok_or_else(|| anyhow!("missing bitwidth"))? as u8;
        let scales = list
            .iter()
            .map(|e| e["scale"].as_f64().map(|s| s as f32))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| anyhow!("missing scale"))?;
        let offsets = list
            .iter()
            .map(|e| e["offset"].as_i64())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| anyhow!("missing offset"))?;
        return Ok((bits, scales, offsets));
    }
    let bits = v["bw"].as_u64().ok_or_else(|| anyhow!("missing bw"))? as u8;
    let scales = v["scale"]
        .as_array()
        .ok_or_else(|| anyhow!("missing scale"))?
        .iter()
        .map(|s| s.as_f64().map(|s| s as f32))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| anyhow!("bad scale"))?;
    let offsets = v["offset"]
        .as_array()
        .ok_or_else(|| anyhow!("missing offset"))?
        .iter()
        .map(|s| s.as_i64())
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| anyhow!("bad offset"))?;
    Ok((bits, scales, offsets))
}

fn by_name(section: &Value) -> Result<HashMap<String, Value>> {
    match section {
        Value::Object(m) => Ok(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        Value::Array(l) => l
            .iter()
            .map(|e| {
                Ok((
                    e["name"]
                        .as_str()
                        .ok_or_else(|| anyhow!("an entry has no name"))?
                        .to_string(),
                    e.clone(),
                ))
            })
            .collect(),
        _ => bail!("expected a list or an object"),
    }
}

/// A quantization plan from an encodings file: every materialised tensor and every weight must be in it.
pub fn plan_from_json(g: &Graph, v: &Value) -> Result<QuantPlan> {
    let acts = by_name(&v["activation_encodings"]).context("activation_encodings")?;
    let params = by_name(&v["param_encodings"]).context("param_encodings")?;
    let roles = amp_device::quant::roles(g);
    let mut encodings = vec![None; g.tensors.len()];
    for (t, tensor) in g.tensors.iter().enumerate() {
        if roles[t] != Role::Own {
            continue;
        }
        let e = acts.get(&tensor.name).ok_or_else(|| {
            anyhow!(
                "tensor \"{}\" has no activation encoding in the file",
                tensor.name
            )
        })?;
        let (bits, scales, offsets) =
            entry(e).with_context(|| format!("activation encoding of \"{}\"", tensor.name))?;
        if !matches!(bits, 8 | 16)
            || scales.len() != 1
            || !scales[0].is_finite()
            || scales[0] <= 0.0
        {
            bail!(
                "activation encoding of \"{}\": expected one positive scale at 8 or 16 bits",
                tensor.name
            );
        }
        encodings[t] = Some(Encoding {
            bits,
            scale: scales[0],
            offset: offsets[0] as i32,
        });
    }
    for t in 0..g.tensors.len() {
        if let Role::Alias(s) = roles[t] {
            encodings[t] = encodings[s];
        }
    }
    let mut weights = Vec::with_capacity(g.nodes.len());
    for n in &g.nodes {
        if !n.op.has_weights() {
            weights.push(None);
            continue;
        }
        let w = &g.tensors[n.inputs[1]];
        let e = params.get(&w.name).ok_or_else(|| {
            anyhow!(
                "weight \"{}\" of {} \"{}\" has no encoding in the file",
                w.name,
                n.op.name(),
                n.name
            )
        })?;
        let (bits, scales, _) =
            entry(e).with_context(|| format!("encoding of weight \"{}\"", w.name))?;
        let out_axis = weight_axis(&n.op);
        let cout = w.shape[out_axis];
        if scales.len() != 1 && scales.len() != cout {
            bail!(
                "weight \"{}\": {} scales for {cout} output channels",
                w.name,
                scales.len(),
            );
        }
        let axis = (scales.len() > 1).then_some(out_axis);
        let qmax = ((1i64 << (bits - 1)) - 1) as f64;
        let inner: usize = w.shape[out_axis + 1..].iter().product();
        let data = w.data.as_deref().map(|d| d.as_slice()).unwrap_or(&[]);
        let codes = data
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let s = if scales.len() == 1 {
                    scales[0]
                } else {
                    scales[(i / inner) % cout]
                };
                (x as f64 / s as f64).round_ties_even().clamp(-qmax, qmax) as f32
            })
            .collect();
        weights.push(Some(WeightQuant {
            bits,
            axis,
            scales,
            codes,
        }));
    }
    Ok(QuantPlan::from_parts(g, roles, encodings, weights))
}
