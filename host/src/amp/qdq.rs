//! A mixed-precision QDQ ONNX model of a quantization plan, for onnxruntime (CPU, or the QNN execution
//! provider on a Snapdragon): the FP32 graph amp executes (BatchNorm and Pad folded as at import) with a
//! QuantizeLinear → DequantizeLinear pair on every tensor amp quantizes, at exactly amp's scales and offsets.
//!
//! - Activations: uint8/uint16 at their encoding. A node that computes wider than a tensor it reads (mixed
//!   precision) reads it through a second pair at the wider width; a node whose output is narrower than it
//!   computes writes through a pair at its compute width first. These are the Convert ops QNN inserts, in
//!   the layout onnxruntime's mixed-precision overrides produce.
//! - Weights: int8/int16 per-channel (or per-tensor) symmetric initializers read through DequantizeLinear;
//!   biases int32 at in_scale × w_scale (the bias-safe scales of [`amp_device::quant::bias_safe_floor`]).
//! - Other constants: at the encoding the op's operand rule gives them.
//! - A Conv/Gemm output fused into its Relu/Clip is not quantized (QNN never materialises it).
//!
//! Tensor names stay the model's: a quantized tensor's float producer writes `NAME/pre`, and `NAME` is its
//! dequantized value, so graph outputs and every reader keep the ONNX name.
//!
//! Each IR op's ONNX form is one arm of [`node_for`], an exhaustive match: a new IR op does not compile
//! until its export is written (or refused there with the reason).

use std::collections::HashMap;

use amp_device::ir::{
    CastTo, CoordMode, Graph, NearestMode, Node, Op, Operand, ReduceOp, ResizeMode,
};
use amp_device::quant::{quantize_bias, Encoding, QuantPlan, Role, WeightQuant};
use anyhow::{bail, Result};
use prost::Message;

use crate::import::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

/// The lowest opset with 16-bit QuantizeLinear/DequantizeLinear in the default domain.
pub const QDQ16_OPSET: i64 = 21;

/// The QDQ model of `plan` for `g`, serialized. `opset` below 21 writes the `com.microsoft` Q/DQ ops
/// (which take 16-bit types at any opset), as onnxruntime's quantizer does.
/// `batch` is the model's fixed batch size (QNN compiles static shapes; onnxruntime's QNN execution provider
/// refuses a tensor whose shape it cannot know).
pub fn to_qdq(g: &Graph, plan: &QuantPlan, opset: i64, batch: usize) -> Result<Vec<u8>> {
    if opset < 13 {
        bail!("QDQ export needs opset 13 or later (per-channel DequantizeLinear), not {opset}");
    }
    let mut w = Writer {
        g,
        plan,
        opset,
        nodes: Vec::new(),
        inits: Vec::new(),
        read: vec![String::new(); g.tensors.len()],
        widened: HashMap::new(),
        fresh: 0,
        exact_read: plan.clamp_reads_exact(g),
        types: HashMap::new(),
        values: Vec::new(),
        dims: Vec::new(),
        boolean: false,
        batch,
    };
    // integer inputs (token ids, masks) are int64, as exporters write them; a mask is cast to float before
    // its QuantizeLinear
    let dtype = |t: usize| {
        if g.declared_integer(t) {
            DataType::Int64
        } else {
            DataType::Float
        }
    };
    for &t in &g.inputs {
        let name = g.tensors[t].name.clone();
        w.types.insert(name.clone(), (dtype(t), w.act_dims(t)));
        let src = if g.int_as_float.contains(&t) {
            let cast = format!("{name}/float");
            w.push("Cast", vec![name.clone()], &cast, vec![attr_i("to", 1)]);
            cast
        } else {
            name.clone()
        };
        w.read[t] = match plan.encodings[t] {
            Some(e) => w.qdq(&src, &format!("{name}/q"), e),
            None => name,
        };
    }
    for (i, n) in g.nodes.iter().enumerate() {
        w.node(i, n)?;
    }
    let value = |t: usize| value_info(&g.tensors[t].name, dtype(t), &w.act_dims(t));
    let outputs: Vec<ValueInfoProto> = g.outputs.iter().map(|&t| value(t)).collect();
    let inputs: Vec<ValueInfoProto> = g.inputs.iter().map(|&t| value(t)).collect();
    let value_info = w
        .values
        .into_iter()
        .filter(|v| !outputs.iter().any(|o| o.name == v.name))
        .collect();
    let mut opsets = vec![OperatorSetIdProto {
        domain: Some(String::new()),
        version: Some(opset),
    }];
    if opset < QDQ16_OPSET {
        opsets.push(OperatorSetIdProto {
            domain: Some("com.microsoft".into()),
            version: Some(1),
        });
    }
    let model = ModelProto {
        ir_version: Some(if opset >= QDQ16_OPSET { 10 } else { 8 }),
        opset_import: opsets,
        producer_name: Some("amp".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        graph: Some(GraphProto {
            node: w.nodes,
            name: Some("amp_qdq".into()),
            initializer: w.inits,
            input: inputs,
            output: outputs,
            value_info,
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(model.encode_to_vec())
}

struct Writer<'a> {
    g: &'a Graph,
    plan: &'a QuantPlan,
    opset: i64,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    /// The name a reader uses for each tensor (its dequantized value when quantized).
    read: Vec<String>,
    /// (tensor, width) → the name of the tensor re-quantized at that width.
    widened: HashMap<(usize, u8), String>,
    fresh: usize,
    /// Nodes whose one reader, a Relu/Clip, clamps their exact result ([`QuantPlan::clamp_reads_exact`]).
    exact_read: Vec<bool>,
    /// Element type and shape of every tensor written so far, by name.
    types: HashMap<String, (DataType, Vec<usize>)>,
    /// Their value infos (the shapes the QNN execution provider needs).
    values: Vec<ValueInfoProto>,
    /// Shape of the IR node being written (the float ops' outputs).
    dims: Vec<usize>,
    /// Whether the IR node being written outputs booleans (a comparison, Not, And/Or/Xor, a boolean moved).
    boolean: bool,
    batch: usize,
}

fn value_info(name: &str, dt: DataType, dims: &[usize]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| tensor_shape_proto::Dimension {
            denotation: None,
            value: Some(tensor_shape_proto::dimension::Value::DimValue(d as i64)),
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            denotation: None,
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(dt as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
        }),
        ..Default::default()
    }
}

fn attr(name: &str, ty: AttributeType) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(ty as i32),
        ..Default::default()
    }
}

fn attr_i(name: &str, v: i64) -> AttributeProto {
    let i = Some(v);
    AttributeProto {
        i,
        ..attr(name, AttributeType::Int)
    }
}

fn attr_f(name: &str, v: f32) -> AttributeProto {
    let f = Some(v);
    AttributeProto {
        f,
        ..attr(name, AttributeType::Float)
    }
}

fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    let ints = v.to_vec();
    AttributeProto {
        ints,
        ..attr(name, AttributeType::Ints)
    }
}

fn attr_s(name: &str, v: &str) -> AttributeProto {
    let s = Some(v.as_bytes().to_vec().into());
    AttributeProto {
        s,
        ..attr(name, AttributeType::String)
    }
}

fn ints(v: &[usize]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}

/// ONNX's pads order (begin of every axis, then end) from amp's [top, left, bottom, right].
fn onnx_pads(p: &[usize; 4]) -> Vec<i64> {
    ints(&[p[0], p[1], p[2], p[3]])
}

/// A tensor of `dt` with `dims`, little-endian `raw` bytes.
fn tensor(name: &str, dt: DataType, dims: &[usize], raw: Vec<u8>) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        data_type: Some(dt as i32),
        dims: ints(dims),
        raw_data: Some(raw.into()),
        ..Default::default()
    }
}

fn f32_tensor(name: &str, dims: &[usize], v: &[f32]) -> TensorProto {
    tensor(
        name,
        DataType::Float,
        dims,
        v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    )
}

fn i64_tensor(name: &str, v: &[i64]) -> TensorProto {
    tensor(
        name,
        DataType::Int64,
        &[v.len()],
        v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    )
}

/// Unsigned activation codes: zero point −offset, as ONNX's uint8/uint16.
fn act_zero_point(name: &str, e: Encoding) -> TensorProto {
    let zp = (-e.offset) as u32;
    if e.bits == 16 {
        tensor(
            name,
            DataType::Uint16,
            &[],
            (zp as u16).to_le_bytes().to_vec(),
        )
    } else {
        tensor(name, DataType::Uint8, &[], vec![zp as u8])
    }
}

impl Writer<'_> {
    fn name(&mut self, base: &str) -> String {
        self.fresh += 1;
        format!("{base}/{}", self.fresh)
    }

    /// Shape of activation `t` at the model's batch size.
    fn act_dims(&self, t: usize) -> Vec<usize> {
        let mut d = self.g.tensors[t].shape.clone();
        if let Some(b) = d.first_mut() {
            *b = self.batch;
        }
        d
    }

    fn push(&mut self, op: &str, inputs: Vec<String>, output: &str, attrs: Vec<AttributeProto>) {
        let of = |n: &String| {
            self.types
                .get(n)
                .cloned()
                .unwrap_or((DataType::Float, vec![]))
        };
        let ty = match op {
            "QuantizeLinear" => (of(&inputs[2]).0, of(&inputs[0]).1),
            "DequantizeLinear" => (DataType::Float, of(&inputs[0]).1),
            "Cast" => {
                let to = attrs.iter().find(|a| a.name.as_deref() == Some("to"));
                let to = to.and_then(|a| a.i).unwrap_or(1) as i32;
                let to = DataType::try_from(to).unwrap_or(DataType::Float);
                (to, of(&inputs[0]).1)
            }
            _ if self.boolean => (DataType::Bool, self.dims.clone()),
            _ => (DataType::Float, self.dims.clone()),
        };
        self.values.push(value_info(output, ty.0, &ty.1));
        self.types.insert(output.to_string(), ty);
        let qdq = matches!(op, "QuantizeLinear" | "DequantizeLinear");
        let domain = if qdq && self.opset < QDQ16_OPSET {
            "com.microsoft"
        } else {
            ""
        };
        self.nodes.push(NodeProto {
            input: inputs,
            output: vec![output.to_string()],
            name: Some(format!("{output}/{op}")),
            op_type: Some(op.into()),
            domain: Some(domain.into()),
            attribute: attrs,
            ..Default::default()
        });
    }

    /// A fresh int64 initializer named after `base`.
    fn int64s(&mut self, base: &str, v: &[i64]) -> String {
        let name = self.name(base);
        self.constant(i64_tensor(&name, v))
    }

    /// A fresh float initializer named after `base`.
    fn floats(&mut self, base: &str, dims: &[usize], v: &[f32]) -> String {
        let name = self.name(base);
        self.constant(f32_tensor(&name, dims, v))
    }

    fn constant(&mut self, t: TensorProto) -> String {
        let name = t.name.clone().unwrap_or_default();
        let dt = DataType::try_from(t.data_type.unwrap_or(1)).unwrap_or(DataType::Float);
        self.types.insert(
            name.clone(),
            (dt, t.dims.iter().map(|&d| d as usize).collect()),
        );
        self.inits.push(t);
        name
    }

    /// `src` through QuantizeLinear → DequantizeLinear at `e`; the dequantized value is named `out`.
    fn qdq(&mut self, src: &str, out: &str, e: Encoding) -> String {
        let scale = self.floats(&format!("{out}/scale"), &[], &[e.scale]);
        let zp = self.name(&format!("{out}/zero_point"));
        let zp = self.constant(act_zero_point(&zp, e));
        let q = format!("{out}/quantized");
        self.push(
            "QuantizeLinear",
            vec![src.into(), scale.clone(), zp.clone()],
            &q,
            vec![],
        );
        self.push("DequantizeLinear", vec![q, scale, zp], out, vec![]);
        out.to_string()
    }

    /// What node `i` reads for activation `t`: its value at the node's compute width.
    fn activation(&mut self, i: usize, t: usize) -> String {
        let width = self.plan.compute[i];
        match self.plan.encodings[t] {
            Some(e) if e.bits != width && self.plan.roles[t] != Role::Fused => {
                if let Some(n) = self.widened.get(&(t, width)) {
                    return n.clone();
                }
                let src = self.read[t].clone();
                let out = format!("{}/as{width}", self.g.tensors[t].name);
                let n = self.qdq(&src, &out, e.at_bits(width));
                self.widened.insert((t, width), n.clone());
                n
            }
            _ => self.read[t].clone(),
        }
    }

    /// A constant input `k` of node `i`, as amp stores it.
    fn const_input(&mut self, i: usize, n: &Node, k: usize) -> Result<String> {
        let t = n.inputs[k];
        let tensor_ = &self.g.tensors[t];
        let data = tensor_.data.as_deref().map(|d| d.as_slice()).unwrap_or(&[]);
        let shape = tensor_.shape.clone();
        let base = format!("{}/{}", n.name, tensor_.name);
        if let Some(wq) = &self.plan.weights[i] {
            if k == 1 {
                // a dilated ConvTranspose's kernel spread out: the QNN EP takes no dilation
                if let Op::ConvTranspose(c) = &n.op {
                    if c.dilations != [1, 1] {
                        let (codes, shape) = c.undilated(&wq.codes, &shape);
                        let spread = WeightQuant {
                            codes,
                            ..wq.clone()
                        };
                        return Ok(self.weights(&base, &spread, &shape));
                    }
                }
                return Ok(self.weights(&base, wq, &shape));
            }
            if k == 2 {
                let in_enc = self.plan.encodings[n.inputs[0]]
                    .map(|e| e.at_bits(self.plan.compute[i]))
                    .ok_or_else(|| {
                        anyhow::anyhow!("node \"{}\": its input has no encoding", n.name)
                    })?;
                let (codes, scales) = quantize_bias(data, in_enc.scale, wq);
                let raw = codes
                    .iter()
                    .flat_map(|&c| (c as i32).to_le_bytes())
                    .collect();
                let q = self.constant(tensor(
                    &format!("{base}/int32"),
                    DataType::Int32,
                    &shape,
                    raw,
                ));
                return Ok(self.dequantize(&base, q, &scales, None, DataType::Int32, 0));
            }
        }
        if n.op.def().operand(k, self.plan.compute[i]) == Operand::Exact {
            // a constant boolean (a causal mask)
            let raw = data.iter().map(|&v| u8::from(v != 0.0)).collect();
            return Ok(self.constant(tensor(&base, DataType::Bool, &shape, raw)));
        }
        match self.plan.operand(self.g, n, k, self.plan.compute[i]) {
            Some(e) => {
                let raw: Vec<u8> = if e.bits == 16 {
                    data.iter()
                        .flat_map(|&v| (e.quantize(v) as u16).to_le_bytes())
                        .collect()
                } else {
                    data.iter().map(|&v| e.quantize(v) as u8).collect()
                };
                let dt = if e.bits == 16 {
                    DataType::Uint16
                } else {
                    DataType::Uint8
                };
                let q = self.constant(tensor(&format!("{base}/quantized"), dt, &shape, raw));
                Ok(self.dequantize(&base, q, &[e.scale], Some(e), dt, 0))
            }
            // an int32 operand amp keeps exact: float here
            None => Ok(self.constant(f32_tensor(&base, &shape, data))),
        }
    }

    fn weights(&mut self, base: &str, wq: &WeightQuant, shape: &[usize]) -> String {
        let (dt, raw): (DataType, Vec<u8>) = if wq.bits == 16 {
            (
                DataType::Int16,
                wq.codes
                    .iter()
                    .flat_map(|&c| (c as i16).to_le_bytes())
                    .collect(),
            )
        } else {
            (
                DataType::Int8,
                wq.codes.iter().map(|&c| c as i8 as u8).collect(),
            )
        };
        let q = self.constant(tensor(&format!("{base}/quantized"), dt, shape, raw));
        self.dequantize(base, q, &wq.scales, None, dt, wq.axis.unwrap_or(0))
    }

    /// DequantizeLinear of an integer initializer `q`: per tensor (one scale) or per channel along `axis`;
    /// zero point from `act` (unsigned) or 0 (signed).
    fn dequantize(
        &mut self,
        base: &str,
        q: String,
        scales: &[f32],
        act: Option<Encoding>,
        dt: DataType,
        axis: usize,
    ) -> String {
        let per_channel = scales.len() > 1;
        let dims: Vec<usize> = if per_channel {
            vec![scales.len()]
        } else {
            vec![]
        };
        let scale = self.constant(f32_tensor(&format!("{base}/scale"), &dims, scales));
        let zp = match act {
            Some(e) => act_zero_point(&format!("{base}/zero_point"), e),
            None => {
                let width = match dt {
                    DataType::Int16 => 2,
                    DataType::Int32 => 4,
                    _ => 1,
                };
                tensor(
                    &format!("{base}/zero_point"),
                    dt,
                    &dims,
                    vec![0; width * scales.len()],
                )
            }
        };
        let zp = self.constant(zp);
        let attrs = if per_channel {
            vec![attr_i("axis", axis as i64)]
        } else {
            vec![]
        };
        self.push("DequantizeLinear", vec![q, scale, zp], base, attrs);
        base.to_string()
    }

    fn node(&mut self, i: usize, n: &Node) -> Result<()> {
        let mut inputs = Vec::with_capacity(n.inputs.len());
        for k in 0..n.inputs.len() {
            let t = n.inputs[k];
            inputs.push(if self.g.tensors[t].is_const() {
                self.const_input(i, n, k)?
            } else {
                self.activation(i, t)
            });
        }
        let out = n.output;
        let name = self.g.tensors[out].name.clone();
        if matches!(n.op, Op::Concat(_)) {
            self.concat_inputs_at_output(i, n, &mut inputs);
        }
        // a Relu/Clip that clamps this node's exact result reads it before rounding, as QNN fuses them
        let quantized =
            matches!(self.plan.roles[out], Role::Own | Role::Alias(_)) && !self.exact_read[i];
        let raw = if quantized {
            format!("{name}/pre")
        } else {
            name.clone()
        };
        self.dims = self.act_dims(out);
        self.boolean = self.plan.roles[out] == Role::Int;
        self.node_for(n, inputs, &raw)?;
        if quantized {
            let e = self.plan.encodings[out]
                .ok_or_else(|| anyhow::anyhow!("tensor \"{name}\" has no encoding"))?;
            let width = self.plan.compute[i];
            let src = if width != e.bits {
                // computed wide, then converted to the output's own width
                self.qdq(&raw, &format!("{name}/at{width}"), e.at_bits(width))
            } else {
                raw
            };
            self.read[out] = self.qdq(&src, &name, e);
        } else {
            self.read[out] = raw;
        }
        Ok(())
    }

    /// Each activation input of Concat `n` whose encoding differs from the output's, requantized to the
    /// output's by a QuantizeLinear → DequantizeLinear pair of its own (on HTP, a Convert), as amp's HTP
    /// graph does: HTP copies the codes of an input of another encoding into a Concat unrequantized (an
    /// upsampled SiLU came out ~2× its values through the QNN EP, 121 LSB). On the CPU the pair changes
    /// nothing: the Concat's own output rounding is the same.
    fn concat_inputs_at_output(&mut self, i: usize, n: &Node, inputs: &mut [String]) {
        let width = self.plan.compute[i];
        let Some(out_e) = self.plan.encodings[n.output].map(|e| e.at_bits(width)) else {
            return;
        };
        let name = self.g.tensors[n.output].name.clone();
        for (k, &t) in n.inputs.iter().enumerate() {
            let read = self.plan.encodings[t].map(|e| e.at_bits(width));
            if self.g.tensors[t].is_const() || read.is_none() || read == Some(out_e) {
                continue;
            }
            inputs[k] = self.qdq(&inputs[k].clone(), &format!("{name}/in{k}"), out_e);
        }
    }

    /// The ONNX node(s) computing IR node `n` in float from `ins`, writing `out`.
    fn node_for(&mut self, n: &Node, ins: Vec<String>, out: &str) -> Result<()> {
        let refuse = |why: &str| -> Result<()> {
            bail!(
                "the QDQ export has no form for {} node \"{}\": {why}",
                n.op.name(),
                n.name
            )
        };
        let simple = |w: &mut Self, op: &str, attrs: Vec<AttributeProto>| {
            w.push(op, ins.clone(), out, attrs);
            Ok(())
        };
        // a 2-D window op's attributes, and one of its own
        let window = |strides: &[usize], pads: &[usize; 4], dilations: &[usize], own| {
            let k = &self.g.tensors[n.inputs[1]].shape;
            vec![
                attr_ints("kernel_shape", &ints(&k[2..])),
                attr_ints("strides", &ints(strides)),
                attr_ints("pads", &onnx_pads(pads)),
                attr_ints("dilations", &ints(dilations)),
                own,
            ]
        };
        match &n.op {
            Op::Conv(c) => {
                let group = attr_i("group", c.group as i64);
                let attrs = window(&c.strides, &c.pads, &c.dilations, group);
                simple(self, "Conv", attrs)
            }
            Op::ConvTranspose(c) => {
                let op = attr_ints("output_padding", &ints(&c.output_padding));
                // the kernel spread out at dilation 1 (see `const_input`)
                let mut attrs = window(&c.strides, &c.pads, &[1, 1], op);
                let k = &self.g.tensors[n.inputs[1]].shape;
                attrs[0] = attr_ints("kernel_shape", &ints(&c.spread_kernel(k[2], k[3])));
                simple(self, "ConvTranspose", attrs)
            }
            Op::Gemm(_) => {
                if self.g.tensors[n.inputs[0]].shape.len() == 2 {
                    return simple(self, "Gemm", vec![attr_i("transB", 1)]);
                }
                // over [batch, tokens, features] (a transformer's projection): a Gemm over the batch × tokens
                // rows, reshaped on each side, as amp's HTP graph runs it. (A MatMul by the transposed weight
                // computes the same, but onnxruntime's CPU fuses its 16-bit-activation, 8-bit-weight QDQ form
                // into a kernel up to 94 LSB off; the Gemm form it runs within 1 LSB.)
                let x = &self.g.tensors[n.inputs[0]].shape;
                let fin = *x.last().unwrap_or(&1);
                let fout = self.dims.last().copied().unwrap_or(1);
                let rows = self.dims[..self.dims.len() - 1].iter().product::<usize>();
                let shape = self.int64s(&format!("{out}/rows_shape"), &[-1, fin as i64]);
                let flat = self.name(&format!("{out}/rows"));
                let dims = std::mem::replace(&mut self.dims, vec![rows, fin]);
                self.push("Reshape", vec![ins[0].clone(), shape], &flat, vec![]);
                let y = self.name(&format!("{out}/rows_out"));
                self.dims = vec![rows, fout];
                let mut gemm_ins = vec![flat];
                gemm_ins.extend(ins[1..].iter().cloned());
                self.push("Gemm", gemm_ins, &y, vec![attr_i("transB", 1)]);
                self.dims = dims;
                let back: Vec<i64> = std::iter::once(-1)
                    .chain(self.dims[1..].iter().map(|&d| d as i64))
                    .collect();
                let back = self.int64s(&format!("{out}/out_shape"), &back);
                self.push("Reshape", vec![y, back], out, vec![]);
                Ok(())
            }
            // ops ONNX has under the IR's name, without attributes
            Op::MatMul(_)
            | Op::Add(_)
            | Op::Sub(_)
            | Op::Mul(_)
            | Op::Div(_)
            | Op::Min(_)
            | Op::Max(_)
            | Op::Relu(_)
            | Op::Sigmoid(_)
            | Op::HardSwish(_)
            | Op::Tanh(_)
            | Op::GlobalAveragePool(_)
            | Op::Equal(_)
            | Op::Not(_)
            | Op::Where(_)
            | Op::Neg(_)
            | Op::Abs(_)
            | Op::Sqrt(_)
            | Op::Exp(_)
            | Op::Erf(_) => simple(self, n.op.name(), vec![]),
            Op::Compare(c) => simple(self, c.op.onnx(), vec![]),
            Op::Logic(l) => simple(self, l.op.onnx(), vec![]),
            Op::Gather(_) => simple(self, "Gather", vec![attr_i("axis", 0)]),
            Op::ScaleShift(_) => {
                let mid = self.name(&format!("{out}/scaled"));
                self.push("Mul", vec![ins[0].clone(), ins[1].clone()], &mid, vec![]);
                self.push("Add", vec![mid, ins[2].clone()], out, vec![]);
                Ok(())
            }
            Op::Clip(c) => {
                let lo = self.floats(&format!("{out}/min"), &[], &[c.min]);
                let hi = self.floats(&format!("{out}/max"), &[], &[c.max]);
                self.push("Clip", vec![ins[0].clone(), lo, hi], out, vec![]);
                Ok(())
            }
            Op::LeakyRelu(l) => simple(self, "LeakyRelu", vec![attr_f("alpha", l.alpha)]),
            Op::HardSigmoid(h) => simple(
                self,
                "HardSigmoid",
                vec![attr_f("alpha", h.alpha), attr_f("beta", h.beta)],
            ),
            Op::Softmax(s) => {
                let op = if s.log { "LogSoftmax" } else { "Softmax" };
                simple(self, op, vec![attr_i("axis", s.axis as i64)])
            }
            Op::MaxPool(amp_device::ir::MaxPool(p))
            | Op::AveragePool(amp_device::ir::AveragePool(p)) => {
                let mut attrs = vec![
                    attr_ints("kernel_shape", &ints(&p.kernel)),
                    attr_ints("strides", &ints(&p.strides)),
                    attr_ints("pads", &onnx_pads(&p.pads)),
                    attr_i("ceil_mode", p.ceil_mode as i64),
                ];
                let op = if matches!(n.op, Op::MaxPool(_)) {
                    "MaxPool"
                } else {
                    attrs.push(attr_i("count_include_pad", p.count_include_pad as i64));
                    "AveragePool"
                };
                simple(self, op, attrs)
            }
            Op::Reduce(r) => {
                let since = if r.op == ReduceOp::Sum { 13 } else { 18 };
                if self.opset >= since {
                    let axes = self.int64s(&format!("{out}/axes"), &ints(&r.axes));
                    self.push(
                        r.op.onnx(),
                        vec![ins[0].clone(), axes],
                        out,
                        vec![attr_i("keepdims", r.keepdims as i64)],
                    );
                    Ok(())
                } else {
                    simple(
                        self,
                        r.op.onnx(),
                        vec![
                            attr_ints("axes", &ints(&r.axes)),
                            attr_i("keepdims", r.keepdims as i64),
                        ],
                    )
                }
            }
            Op::Reshape(r) => {
                // the batch axis stays the input's
                let mut shape = ints(&r.shape);
                shape[0] = -1;
                if r.shape[1..].contains(&0) {
                    return refuse("an empty axis");
                }
                let s = self.int64s(&format!("{out}/shape"), &shape);
                self.push("Reshape", vec![ins[0].clone(), s], out, vec![]);
                Ok(())
            }
            Op::Transpose(t) => simple(self, "Transpose", vec![attr_ints("perm", &ints(&t.perm))]),
            Op::Concat(c) => simple(self, "Concat", vec![attr_i("axis", c.axis as i64)]),
            Op::Tile(t) => {
                let reps = self.int64s(&format!("{out}/repeats"), &ints(&t.reps));
                self.push("Tile", vec![ins[0].clone(), reps], out, vec![]);
                Ok(())
            }
            Op::DepthSpace(d) => {
                let block = attr_i("blocksize", d.block as i64);
                if d.to_depth {
                    simple(self, "SpaceToDepth", vec![block])
                } else {
                    let mode = attr_s("mode", if d.crd { "CRD" } else { "DCR" });
                    simple(self, "DepthToSpace", vec![block, mode])
                }
            }
            Op::Slice(sl) => {
                // every axis but the batch one, each ending one step past the last index read
                let axes: Vec<usize> = (1..sl.starts.len()).collect();
                let end = |a: usize| match sl.index(a, sl.lens[a] - 1) as i64 + sl.steps[a] {
                    e if e < 0 => i64::MIN,
                    e => e,
                };
                let starts: Vec<i64> = axes.iter().map(|&a| sl.starts[a] as i64).collect();
                let ends: Vec<i64> = axes.iter().map(|&a| end(a)).collect();
                let steps: Vec<i64> = axes.iter().map(|&a| sl.steps[a]).collect();
                let v = [
                    self.int64s(&format!("{out}/starts"), &starts),
                    self.int64s(&format!("{out}/ends"), &ends),
                    self.int64s(&format!("{out}/axes"), &ints(&axes)),
                    self.int64s(&format!("{out}/steps"), &steps),
                ];
                let mut inputs = vec![ins[0].clone()];
                inputs.extend(v);
                self.push("Slice", inputs, out, vec![]);
                Ok(())
            }
            Op::Pad(p) => {
                let pads = self.int64s(&format!("{out}/pads"), &ints(&p.pads));
                let v = self.floats(&format!("{out}/value"), &[], &[p.value]);
                self.push("Pad", vec![ins[0].clone(), pads, v], out, vec![]);
                Ok(())
            }
            Op::Resize(r) => {
                let scales = self.name(&format!("{out}/scales"));
                let scales = self.constant(f32_tensor(
                    &scales,
                    &[4],
                    &[1.0, 1.0, r.scales[0], r.scales[1]],
                ));
                let coord = match r.coord {
                    CoordMode::HalfPixel => "half_pixel",
                    CoordMode::PytorchHalfPixel => "pytorch_half_pixel",
                    CoordMode::Asymmetric => "asymmetric",
                    CoordMode::AlignCorners => "align_corners",
                };
                let mut attrs = vec![
                    attr_s(
                        "mode",
                        if r.mode == ResizeMode::Nearest {
                            "nearest"
                        } else {
                            "linear"
                        },
                    ),
                    attr_s("coordinate_transformation_mode", coord),
                ];
                if r.mode == ResizeMode::Nearest {
                    attrs.push(attr_s(
                        "nearest_mode",
                        match r.nearest {
                            NearestMode::RoundPreferFloor => "round_prefer_floor",
                            NearestMode::RoundPreferCeil => "round_prefer_ceil",
                            NearestMode::Floor => "floor",
                            NearestMode::Ceil => "ceil",
                        },
                    ));
                }
                self.push(
                    "Resize",
                    vec![ins[0].clone(), String::new(), scales],
                    out,
                    attrs,
                );
                Ok(())
            }
            Op::Cast(c) => {
                let to = match c.to {
                    CastTo::Bool => DataType::Bool,
                    CastTo::Float => DataType::Float,
                };
                simple(self, "Cast", vec![attr_i("to", to as i64)])
            }
            Op::Gelu(gl) if self.opset >= 20 => {
                let approximate = if gl.tanh { "tanh" } else { "none" };
                simple(self, "Gelu", vec![attr_s("approximate", approximate)])
            }
            Op::Gelu(_) => refuse("ONNX has Gelu from opset 20"),
            Op::Pow(p) => {
                let e = self.floats(&format!("{out}/exponent"), &[], &[p.exponent]);
                self.push("Pow", vec![ins[0].clone(), e], out, vec![]);
                Ok(())
            }
            Op::LayerNorm(l) if self.opset >= 17 => {
                let attrs = vec![attr_i("axis", l.axis as i64), attr_f("epsilon", l.epsilon)];
                simple(self, "LayerNormalization", attrs)
            }
            Op::LayerNorm(_) => refuse("ONNX has LayerNormalization from opset 17"),
            Op::InstanceNorm(i) => simple(
                self,
                "InstanceNormalization",
                vec![attr_f("epsilon", i.epsilon)],
            ),
        }
    }
}
