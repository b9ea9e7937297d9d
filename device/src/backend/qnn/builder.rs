//! The graph builder: the QNN tensor of each IR tensor at each width a reader needs (a Convert where it
//! exists at the other), constants, weights and int32 biases; and [`QnnModel::build`], which lowers every
//! node through its op's lowering (`ops/<op>.rs`) and finalizes the graph.

use std::collections::HashMap;

use qnn_sys::{
    Context, Graph as QGraph, Profile, Quant, TensorRef, TensorSpec, DATATYPE_BOOL_8,
    DATATYPE_INT_32, DATATYPE_SFIXED_POINT_16, DATATYPE_SFIXED_POINT_32, DATATYPE_SFIXED_POINT_8,
};

use super::ops::{lowering, NodeCx};
use super::{
    act_dtype, act_quant, qdims, unsupported, QnnBackendError, QnnModel, QnnRuntime, Result,
};
use crate::ir::{Graph, Node, Op, TensorId};
use crate::quant::{quantize_bias, weight_axis, Encoding, QuantPlan, Role, WeightQuant};

/// The graph under construction: the QNN tensor of each IR tensor at each width it exists at.
pub(super) struct Builder<'a> {
    pub g: &'a Graph,
    pub plan: &'a QuantPlan,
    pub q: &'a QGraph,
    pub batch: usize,
    consumers: Vec<Vec<usize>>,
    /// QNN tensor per (IR tensor, bits): the tensor as it is kept, and its widened copies.
    vals: HashMap<(TensorId, u8), (TensorRef, Encoding)>,
    /// The width each IR tensor is kept at, once computed.
    kept: HashMap<TensorId, u8>,
    /// The INT_32 graph input of each integer model input, and the BOOL_8 tensor of each boolean an op
    /// writes.
    pub ints: HashMap<TensorId, TensorRef>,
    count: usize,
    converts: usize,
}

impl Builder<'_> {
    /// A tensor or node name no other has: `base` and a counter.
    pub fn fresh(&mut self, base: &str) -> String {
        self.count += 1;
        format!("{base}__{}", self.count)
    }

    /// Encoding of an activation tensor (for a fused Conv output: its activation's).
    pub fn encoding(&self, t: TensorId) -> Option<Encoding> {
        match self.plan.roles[t] {
            Role::Fused => self.consumers[t]
                .first()
                .and_then(|&c| self.plan.encodings[self.g.nodes[c].output]),
            _ => self.plan.encodings[t],
        }
    }

    /// A graph tensor of activation type (NATIVE, or APP_READ for a graph output).
    pub fn native(
        &mut self,
        name: &str,
        dims: &[u32],
        e: Encoding,
        app_read: bool,
    ) -> Result<TensorRef> {
        let spec = if app_read {
            TensorSpec::output
        } else {
            TensorSpec::native
        };
        Ok(self
            .q
            .tensor(&spec(name, act_dtype(e.bits), dims, act_quant(&e)))?)
    }

    /// The QNN tensor of IR tensor `t` at `bits`: the tensor as it is kept, or a copy widened from it by a
    /// Convert (one per width, shared by every reader at that width). Never narrower than it is kept: an op
    /// computes at the widest of its inputs.
    pub fn get(&mut self, t: TensorId, bits: u8) -> Result<(TensorRef, Encoding)> {
        if let Some(v) = self.vals.get(&(t, bits)) {
            return Ok(*v);
        }
        let name = &self.g.tensors[t].name;
        let kept = *self.kept.get(&t).ok_or_else(|| {
            QnnBackendError::Input(format!("tensor \"{name}\" used before it is computed"))
        })?;
        if kept > bits {
            return Err(QnnBackendError::Input(format!(
                "tensor \"{name}\" is kept at {kept} bits but read at {bits}"
            )));
        }
        let (src, e) = self.vals[&(t, kept)];
        let wide = e.at_bits(bits);
        let dims = qdims(&self.g.tensors[t].shape, self.batch);
        let name = self.fresh(&format!("{name}_u{bits}"));
        let out = self.native(&name, &dims, wide, false)?;
        self.convert(src, out)?;
        self.vals.insert((t, bits), (out, wide));
        Ok((out, wide))
    }

    /// A Convert node from `src` to `dst`.
    pub fn convert(&mut self, src: TensorRef, dst: TensorRef) -> Result<()> {
        let name = self.fresh("convert");
        self.q.node(&name, "Convert", &[], &[src], &[dst])?;
        self.converts += 1;
        Ok(())
    }

    /// Input `k` of node `n`, a constant, as a STATIC tensor in NHWC broadcast form, quantized as
    /// [`QuantPlan::operand`] says for an output of `bits`.
    pub fn constant(&mut self, n: &Node, k: usize, out_rank: usize, bits: u8) -> Result<TensorRef> {
        let tensor = &self.g.tensors[n.inputs[k]];
        let data = tensor.data.as_deref().map(|d| d.as_slice()).unwrap_or(&[]);
        let mut shape: Vec<usize> = vec![1; out_rank.saturating_sub(tensor.shape.len())];
        shape.extend_from_slice(&tensor.shape);
        let name = tensor.name.clone();
        match self.plan.operand(self.g, n, k, bits) {
            Some(e) => self.static_values(&name, &shape, data, e),
            None => {
                // an int32 bias at scale input × operand 1 (ScaleShift at 16 bits)
                let x = self.get(n.inputs[0], bits)?.1;
                let s1 = self
                    .plan
                    .operand(self.g, n, 1, bits)
                    .map_or(1.0, |e| e.scale);
                let scale = x.scale * s1;
                let bytes: Vec<u8> = data
                    .iter()
                    .flat_map(|&v| ((v as f64 / scale as f64).round() as i32).to_le_bytes())
                    .collect();
                let dims: Vec<u32> = shape.iter().map(|&d| d as u32).collect();
                let name = self.fresh(&name);
                Ok(self.q.tensor(&TensorSpec::constant(
                    &name,
                    DATATYPE_SFIXED_POINT_32,
                    &dims,
                    Quant::scale_offset(scale, 0),
                    &bytes,
                ))?)
            }
        }
    }

    /// Values (of a tensor of `shape`, in NCHW order when it has rank 4) as a STATIC activation-typed tensor
    /// quantized with `e`.
    pub fn static_values(
        &mut self,
        name: &str,
        shape: &[usize],
        data: &[f32],
        e: Encoding,
    ) -> Result<TensorRef> {
        let bits = e.bits;
        let (dims, data) = nhwc(shape, data);
        let bytes: Vec<u8> = if bits == 16 {
            data.iter()
                .flat_map(|&v| (e.quantize(v) as u16).to_le_bytes())
                .collect()
        } else {
            data.iter().map(|&v| e.quantize(v) as u8).collect()
        };
        let name = self.fresh(name);
        Ok(self.q.tensor(&TensorSpec::constant(
            &name,
            act_dtype(bits),
            &dims,
            act_quant(&e),
            &bytes,
        ))?)
    }

    /// Input `k` of node `n`, a constant boolean (a causal mask), as a STATIC BOOL_8 tensor in NHWC
    /// broadcast form for an output of rank `out_rank`.
    pub fn constant_booleans(&mut self, n: &Node, k: usize, out_rank: usize) -> Result<TensorRef> {
        let tensor = &self.g.tensors[n.inputs[k]];
        let data = tensor.data.as_deref().map(|d| d.as_slice()).unwrap_or(&[]);
        let mut shape: Vec<usize> = vec![1; out_rank.saturating_sub(tensor.shape.len())];
        shape.extend_from_slice(&tensor.shape);
        let (dims, data) = nhwc(&shape, data);
        let bytes: Vec<u8> = data.iter().map(|&v| u8::from(v != 0.0)).collect();
        let name = self.fresh(&tensor.name);
        Ok(self.q.tensor(&TensorSpec::constant(
            &name,
            DATATYPE_BOOL_8,
            &dims,
            Quant::None,
            &bytes,
        ))?)
    }

    pub fn weights(
        &mut self,
        n: &Node,
        wq: &WeightQuant,
        layout: WeightLayout,
    ) -> Result<TensorRef> {
        let w = &self.g.tensors[n.inputs[1]];
        // a dilated ConvTranspose's kernel spread out (QNN's TransposeConv2d has no dilation)
        let spread = match &n.op {
            Op::ConvTranspose(c) if c.dilations != [1, 1] => Some(c.undilated(&wq.codes, &w.shape)),
            _ => None,
        };
        let (codes, s) = match &spread {
            Some((codes, shape)) => (codes.as_slice(), shape.as_slice()),
            None => (wq.codes.as_slice(), w.shape.as_slice()),
        };
        let numel: usize = s.iter().product();
        let (dims, order): (Vec<u32>, Vec<usize>) = match layout {
            // OIHW (Conv) or IOHW (ConvTranspose: output channels on axis 1) → HWIO
            WeightLayout::Hwio => {
                let io = weight_axis(&n.op) == 1;
                let (o, i, kh, kw) = if io {
                    (s[1], s[0], s[2], s[3])
                } else {
                    (s[0], s[1], s[2], s[3])
                };
                let mut ord = Vec::with_capacity(numel);
                for y in 0..kh {
                    for x in 0..kw {
                        for ci in 0..i {
                            for co in 0..o {
                                let (a, b) = if io { (ci, co) } else { (co, ci) };
                                ord.push(((a * s[1] + b) * kh + y) * kw + x);
                            }
                        }
                    }
                }
                (vec![kh as u32, kw as u32, i as u32, o as u32], ord)
            }
            WeightLayout::OutIn => (vec![s[0] as u32, s[1] as u32], (0..numel).collect()),
        };
        let bytes: Vec<u8> = if wq.bits == 16 {
            order
                .iter()
                .flat_map(|&k| (codes[k] as i16).to_le_bytes())
                .collect()
        } else {
            order.iter().map(|&k| codes[k] as i8 as u8).collect()
        };
        let axis = if layout == WeightLayout::Hwio { 3 } else { 0 };
        let quant = if wq.scales.len() > 1 {
            Quant::Axis {
                axis,
                scales: wq.scales.clone(),
            }
        } else {
            Quant::ScaleOffset {
                scale: wq.scales[0],
                offset: 0,
            }
        };
        let name = self.fresh(&w.name);
        let dt = if wq.bits == 16 {
            DATATYPE_SFIXED_POINT_16
        } else {
            DATATYPE_SFIXED_POINT_8
        };
        Ok(self
            .q
            .tensor(&TensorSpec::constant(&name, dt, &dims, quant, &bytes))?)
    }

    pub fn bias(&mut self, n: &Node, wq: &WeightQuant, in_scale: f32) -> Result<TensorRef> {
        let cout = self.g.tensors[n.inputs[1]].shape[weight_axis(&n.op)];
        let b: Vec<f32> = n
            .inputs
            .get(2)
            .and_then(|&t| self.g.const_data(t))
            .map(|d| d.to_vec())
            .unwrap_or(vec![0.0; cout]);
        let (codes, scales) = quantize_bias(&b, in_scale, wq);
        let bytes: Vec<u8> = codes
            .iter()
            .flat_map(|&c| (c as i32).to_le_bytes())
            .collect();
        let quant = if wq.scales.len() > 1 {
            Quant::Axis { axis: 0, scales }
        } else {
            Quant::scale_offset(scales[0], 0)
        };
        let name = self.fresh(&format!("{}.bias", n.name));
        Ok(self.q.tensor(&TensorSpec::constant(
            &name,
            DATATYPE_SFIXED_POINT_32,
            &[cout as u32],
            quant,
            &bytes,
        ))?)
    }
}

/// How a MAC op's weights are laid out for QNN.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum WeightLayout {
    Hwio,
    OutIn,
}

impl Builder<'_> {
    /// Records that IR tensor `t` is kept as `r` with encoding `e`.
    pub fn put(&mut self, t: TensorId, r: TensorRef, e: Encoding) {
        self.vals.insert((t, e.bits), (r, e));
        self.kept.insert(t, e.bits);
    }
}

impl QnnModel {
    /// Builds and finalizes the graph of `g` under `plan` for batches of `batch` samples.
    pub fn build(rt: &QnnRuntime, g: &Graph, plan: &QuantPlan, batch: usize) -> Result<QnnModel> {
        let ctx = Context::new(rt.backend.clone(), Some(rt.device.clone()))?;
        let q = QGraph::new(ctx.clone(), "amp")?;
        let profile = Profile::basic(rt.backend.clone())?;
        let mut b = Builder {
            g,
            plan,
            q: &q,
            batch,
            consumers: g.consumers(),
            vals: HashMap::new(),
            kept: HashMap::new(),
            ints: HashMap::new(),
            count: 0,
            converts: 0,
        };
        let mut inputs = Vec::with_capacity(g.inputs.len());
        for &in_t in &g.inputs {
            let name = &g.tensors[in_t].name;
            if g.integer.contains(&in_t) {
                // integers (token ids) as INT_32, unquantized
                let dims = qdims(&g.tensors[in_t].shape, batch);
                let r = q.tensor(&TensorSpec::input(
                    name,
                    DATATYPE_INT_32,
                    &dims,
                    Quant::None,
                ))?;
                b.ints.insert(in_t, r);
                inputs.push((r, None, g.tensors[in_t].shape.clone()));
                continue;
            }
            let in_e = plan.encodings[in_t]
                .ok_or_else(|| QnnBackendError::Input(format!("input {name} has no encoding")))?;
            let in_ref = q.tensor(&TensorSpec::input(
                name,
                act_dtype(in_e.bits),
                &qdims(&g.tensors[in_t].shape, batch),
                act_quant(&in_e),
            ))?;
            b.put(in_t, in_ref, in_e);
            inputs.push((in_ref, Some(in_e), g.tensors[in_t].shape.clone()));
        }
        for (i, n) in g.nodes.iter().enumerate() {
            let out_e = match plan.roles[n.output] {
                Role::Int => None,
                _ => Some(
                    b.encoding(n.output)
                        .ok_or_else(|| unsupported(n, "its output has no encoding"))?,
                ),
            };
            lowering(&n.op).lower(&mut NodeCx::new(&mut b, i, n, out_e))?;
        }
        let outputs = g
            .outputs
            .iter()
            .map(|&o| b.output(o))
            .collect::<Result<Vec<_>>>()?;
        q.finalize(None)?;
        let converts = b.converts;
        drop(b);
        Ok(QnnModel {
            _ctx: ctx,
            graph: q,
            profile,
            batch,
            inputs,
            outputs,
            last_execute_us: None,
            converts,
        })
    }
}

impl Builder<'_> {
    /// Graph output `o`, kept at its own encoding in an APP_READ tensor.
    fn output(&mut self, o: TensorId) -> Result<(TensorRef, Encoding, Vec<usize>)> {
        let e = self.plan.encodings[o]
            .ok_or_else(|| QnnBackendError::Input("an output has no encoding".into()))?;
        let (r, e) = *self.vals.get(&(o, e.bits)).ok_or_else(|| {
            QnnBackendError::Input(format!(
                "output \"{}\" is not kept at its own width",
                self.g.tensors[o].name
            ))
        })?;
        Ok((r, e, self.g.tensors[o].shape.clone()))
    }
}

/// A constant's QNN dimensions and values: a rank-4 one from NCHW to the NHWC HTP keeps.
fn nhwc<'d>(shape: &[usize], data: &'d [f32]) -> (Vec<u32>, std::borrow::Cow<'d, [f32]>) {
    if shape.len() != 4 {
        return (
            shape.iter().map(|&d| d as u32).collect(),
            std::borrow::Cow::Borrowed(data),
        );
    }
    let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3]);
    let mut nhwc = Vec::with_capacity(data.len());
    for b in 0..n {
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    nhwc.push(data[((b * c + ch) * h + y) * w + x]);
                }
            }
        }
    }
    (
        vec![n as u32, h as u32, w as u32, c as u32],
        std::borrow::Cow::Owned(nhwc),
    )
}
