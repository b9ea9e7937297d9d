//! The graph builder: the QNN tensor of each IR tensor at each width a reader needs (a Convert where it
//! exists at the other), constants, weights and int32 biases; and [`QnnModel::build`], which lowers every
//! node through its op's lowering (`ops/<op>.rs`) and finalizes the graph.

use std::collections::HashMap;

use qnn_sys::{
    Context, Graph as QGraph, Profile, Quant, TensorRef, TensorSpec, DATATYPE_SFIXED_POINT_16,
    DATATYPE_SFIXED_POINT_32, DATATYPE_SFIXED_POINT_8, TENSOR_TYPE_APP_READ, TENSOR_TYPE_APP_WRITE,
    TENSOR_TYPE_NATIVE, TENSOR_TYPE_STATIC,
};

use super::ops::{lowering, NodeCx};
use super::{act_dtype, qdims, rebits, unsupported, QnnBackendError, QnnModel, QnnRuntime, Result};
use crate::ir::{Graph, Node, TensorId};
use crate::quant::{quantize_bias, Encoding, QuantPlan, Role, WeightQuant};

/// The graph under construction: the QNN tensor of each IR tensor at each width it exists at.
pub(super) struct Builder<'a> {
    pub g: &'a Graph,
    pub plan: &'a QuantPlan,
    pub q: &'a QGraph,
    pub batch: usize,
    consumers: Vec<Vec<usize>>,
    /// QNN tensor per (IR tensor, bits).
    vals: HashMap<(TensorId, u8), (TensorRef, Encoding)>,
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
        Ok(self.q.tensor(&TensorSpec {
            name,
            tensor_type: if app_read {
                TENSOR_TYPE_APP_READ
            } else {
                TENSOR_TYPE_NATIVE
            },
            data_type: act_dtype(e.bits),
            dims,
            quant: Quant::ScaleOffset {
                scale: e.scale,
                offset: e.offset,
            },
            data: None,
        })?)
    }

    /// The QNN tensor of IR tensor `t` at `bits`, converting (Convert op) from the tensor that exists.
    pub fn get(&mut self, t: TensorId, bits: u8) -> Result<(TensorRef, Encoding)> {
        if let Some(v) = self.vals.get(&(t, bits)) {
            return Ok(*v);
        }
        let (src, e) = *self
            .vals
            .get(&(t, 8))
            .or_else(|| self.vals.get(&(t, 16)))
            .ok_or_else(|| {
                QnnBackendError::Input(format!(
                    "tensor \"{}\" used before it is computed",
                    self.g.tensors[t].name
                ))
            })?;
        let e2 = rebits(e, bits);
        let dims = qdims(&self.g.tensors[t].shape, self.batch);
        let name = self.fresh(&format!("{}_u{bits}", self.g.tensors[t].name));
        let out = self.native(&name, &dims, e2, false)?;
        self.q
            .node(&self.fresh("convert"), "Convert", &[], &[src], &[out])?;
        self.converts += 1;
        self.vals.insert((t, bits), (out, e2));
        Ok((out, e2))
    }

    /// Input `k` of node `n`, a constant, as a STATIC tensor in NHWC broadcast form, quantized as
    /// [`Encoding::for_operand`] says for an output of `bits`.
    pub fn constant(&mut self, n: &Node, k: usize, out_rank: usize, bits: u8) -> Result<TensorRef> {
        let tensor = &self.g.tensors[n.inputs[k]];
        let data = tensor.data.as_deref().map(|d| d.as_slice()).unwrap_or(&[]);
        let mut shape: Vec<usize> = vec![1; out_rank.saturating_sub(tensor.shape.len())];
        shape.extend_from_slice(&tensor.shape);
        let name = tensor.name.clone();
        match Encoding::for_operand(&n.op, k, data, bits) {
            Some(e) => self.static_values(&name, &shape, data, e),
            None => {
                // an int32 bias at scale input × operand 1 (ScaleShift at 16 bits)
                let x = self.get(n.inputs[0], bits)?.1;
                let d1 = self.g.const_data(n.inputs[1]).unwrap_or(&[]);
                let s1 = Encoding::for_operand(&n.op, 1, d1, bits).map_or(1.0, |e| e.scale);
                let scale = x.scale * s1;
                let bytes: Vec<u8> = data
                    .iter()
                    .flat_map(|&v| ((v as f64 / scale as f64).round() as i32).to_le_bytes())
                    .collect();
                let dims: Vec<u32> = shape.iter().map(|&d| d as u32).collect();
                let name = self.fresh(&name);
                Ok(self.q.tensor(&TensorSpec {
                    name: &name,
                    tensor_type: TENSOR_TYPE_STATIC,
                    data_type: DATATYPE_SFIXED_POINT_32,
                    dims: &dims,
                    quant: Quant::ScaleOffset { scale, offset: 0 },
                    data: Some(&bytes),
                })?)
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
        let (dims, data): (Vec<u32>, std::borrow::Cow<[f32]>) = if shape.len() == 4 {
            // NCHW → NHWC
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
        } else {
            (
                shape.iter().map(|&d| d as u32).collect(),
                std::borrow::Cow::Borrowed(data),
            )
        };
        let bytes: Vec<u8> = if bits == 16 {
            data.iter()
                .flat_map(|&v| (e.quantize(v) as u16).to_le_bytes())
                .collect()
        } else {
            data.iter().map(|&v| e.quantize(v) as u8).collect()
        };
        let name = self.fresh(name);
        Ok(self.q.tensor(&TensorSpec {
            name: &name,
            tensor_type: TENSOR_TYPE_STATIC,
            data_type: act_dtype(bits),
            dims: &dims,
            quant: Quant::ScaleOffset {
                scale: e.scale,
                offset: e.offset,
            },
            data: Some(&bytes),
        })?)
    }

    pub fn weights(
        &mut self,
        n: &Node,
        wq: &WeightQuant,
        layout: WeightLayout,
    ) -> Result<TensorRef> {
        let w = &self.g.tensors[n.inputs[1]];
        let s = &w.shape;
        let (dims, order): (Vec<u32>, Vec<usize>) = match layout {
            // OIHW → HWIO
            WeightLayout::Hwio => {
                let (o, i, kh, kw) = (s[0], s[1], s[2], s[3]);
                let mut ord = Vec::with_capacity(w.numel());
                for y in 0..kh {
                    for x in 0..kw {
                        for ci in 0..i {
                            for co in 0..o {
                                ord.push(((co * i + ci) * kh + y) * kw + x);
                            }
                        }
                    }
                }
                (vec![kh as u32, kw as u32, i as u32, o as u32], ord)
            }
            WeightLayout::OutIn => (vec![s[0] as u32, s[1] as u32], (0..w.numel()).collect()),
        };
        let bytes: Vec<u8> = if wq.bits == 16 {
            order
                .iter()
                .flat_map(|&k| (wq.codes[k] as i16).to_le_bytes())
                .collect()
        } else {
            order.iter().map(|&k| wq.codes[k] as i8 as u8).collect()
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
        Ok(self.q.tensor(&TensorSpec {
            name: &name,
            tensor_type: TENSOR_TYPE_STATIC,
            data_type: dt,
            dims: &dims,
            quant,
            data: Some(&bytes),
        })?)
    }

    pub fn bias(&mut self, n: &Node, wq: &WeightQuant, in_scale: f32) -> Result<TensorRef> {
        let cout = self.g.tensors[n.inputs[1]].shape[0];
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
            Quant::ScaleOffset {
                scale: scales[0],
                offset: 0,
            }
        };
        let name = self.fresh(&format!("{}.bias", n.name));
        Ok(self.q.tensor(&TensorSpec {
            name: &name,
            tensor_type: TENSOR_TYPE_STATIC,
            data_type: DATATYPE_SFIXED_POINT_32,
            dims: &[cout as u32],
            quant,
            data: Some(&bytes),
        })?)
    }
}

/// How a MAC op's weights are laid out for QNN.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum WeightLayout {
    Hwio,
    OutIn,
}

impl Builder<'_> {
    /// Records that IR tensor `t` exists as `r` with encoding `e`.
    pub fn put(&mut self, t: TensorId, r: TensorRef, e: Encoding) {
        self.vals.insert((t, e.bits), (r, e));
    }
}

impl QnnModel {
    /// Builds and finalizes the graph of `g` under `plan` for batches of `batch` samples.
    pub fn build(rt: &QnnRuntime, g: &Graph, plan: &QuantPlan, batch: usize) -> Result<QnnModel> {
        if g.inputs.len() != 1 {
            return Err(QnnBackendError::Input(format!(
                "the model has {} inputs; amp handles single-input models",
                g.inputs.len()
            )));
        }
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
            count: 0,
            converts: 0,
        };
        let in_t = g.inputs[0];
        let in_e = plan.encodings[in_t]
            .ok_or_else(|| QnnBackendError::Input("the input has no encoding".into()))?;
        let in_ref = q.tensor(&TensorSpec {
            name: &g.tensors[in_t].name,
            tensor_type: TENSOR_TYPE_APP_WRITE,
            data_type: act_dtype(in_e.bits),
            dims: &qdims(&g.tensors[in_t].shape, batch),
            quant: Quant::ScaleOffset {
                scale: in_e.scale,
                offset: in_e.offset,
            },
            data: None,
        })?;
        b.put(in_t, in_ref, in_e);
        for (i, n) in g.nodes.iter().enumerate() {
            let out_e = b
                .encoding(n.output)
                .ok_or_else(|| unsupported(n, "its output has no encoding"))?;
            lowering(&n.op).lower(&mut NodeCx::new(&mut b, i, n, out_e))?;
        }
        let outputs = g
            .outputs
            .iter()
            .map(|&o| b.output(o))
            .collect::<Result<Vec<_>>>()?;
        q.finalize(None)?;
        let input = (in_ref, in_e, g.tensors[in_t].shape.clone());
        let converts = b.converts;
        drop(b);
        Ok(QnnModel {
            _ctx: ctx,
            graph: q,
            profile,
            batch,
            input,
            outputs,
            last_execute_us: None,
            converts,
        })
    }
}

impl Builder<'_> {
    /// Graph output `o` as an APP_READ tensor with its own encoding: the tensor itself, or a Convert of it
    /// when it was computed at the other width.
    fn output(&mut self, o: TensorId) -> Result<(TensorRef, Encoding, Vec<usize>)> {
        let g = self.g;
        let e = self.plan.encodings[o]
            .ok_or_else(|| QnnBackendError::Input("an output has no encoding".into()))?;
        let (r, e) = match self.vals.get(&(o, e.bits)) {
            Some(v) => *v,
            None => {
                let (src, _) = self.get(o, if e.bits == 8 { 16 } else { 8 })?;
                let name = self.fresh(&g.tensors[o].name);
                let dst = self.native(&name, &qdims(&g.tensors[o].shape, self.batch), e, true)?;
                let convert = self.fresh("convert");
                self.q.node(&convert, "Convert", &[], &[src], &[dst])?;
                self.converts += 1;
                (dst, e)
            }
        };
        Ok((r, e, g.tensors[o].shape.clone()))
    }
}
