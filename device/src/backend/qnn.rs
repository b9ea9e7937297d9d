//! The QNN backend: builds one QNN graph per (model, quantization plan, batch) through `qnn-sys`, in NHWC
//! with HWIO weights, int32 biases (scale = input × weight scale), UFIXED 8/16 activations and SFIXED 8/16
//! weights; inserts Convert ops where an op's precision differs from a tensor's; validates every node with
//! the backend; finalizes; executes with app-owned buffers and reads the execute time from the profile.
//!
//! An op or dtype combination the backend rejects is [`QnnBackendError::Unsupported`] naming the node, so a
//! search can drop that candidate for that group instead of stopping.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use qnn_sys::{
    Backend, Context, Device, Graph as QGraph, Library, ParamSpec, Profile, QnnError, Quant,
    TensorRef, TensorSpec, DATATYPE_SFIXED_POINT_16, DATATYPE_SFIXED_POINT_32,
    DATATYPE_SFIXED_POINT_8, DATATYPE_UFIXED_POINT_16, DATATYPE_UFIXED_POINT_8,
    PROFILE_EVENTTYPE_EXECUTE, TENSOR_TYPE_APP_READ, TENSOR_TYPE_APP_WRITE, TENSOR_TYPE_NATIVE,
    TENSOR_TYPE_STATIC,
};

use super::Array;
use crate::ir::{CoordMode, Graph, NearestMode, Node, Op, ResizeMode, TensorId};
use crate::quant::{quantize_bias, Encoding, QuantPlan, Role, WeightQuant};

#[derive(Debug, thiserror::Error)]
pub enum QnnBackendError {
    /// The backend cannot run this node at this precision (the search prunes the candidate).
    #[error("{op} \"{node}\": not supported by the QNN backend: {reason}")]
    Unsupported {
        node: String,
        op: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Qnn(#[from] QnnError),
    #[error("{0}")]
    Input(String),
}

type Result<T> = std::result::Result<T, QnnBackendError>;

/// A loaded QNN backend (library + backend handle + device for an HTP arch), shared by every graph.
pub struct QnnRuntime {
    pub lib: Arc<Library>,
    backend: Arc<Backend>,
    device: Arc<Device>,
    pub arch: u32,
}

impl QnnRuntime {
    /// Loads `libQnnHtp.so` from `path` and selects HTP architecture `arch` (73 or newer on the x86
    /// emulator: at v68 16-bit accuracy is poor and A16W16 is refused).
    pub fn load(path: &Path, arch: u32) -> Result<QnnRuntime> {
        let lib = Library::load(path)?;
        let backend = Backend::new(lib.clone())?;
        let device = Device::htp(backend.clone(), arch)?;
        Ok(QnnRuntime {
            lib,
            backend,
            device,
            arch,
        })
    }

    /// "QNN <build id> (core API a.b.c, HTP API d.e.f, arch vNN)".
    pub fn describe(&self) -> String {
        let (c, b) = (self.lib.core_api, self.lib.backend_api);
        format!(
            "QNN {} (core API {}.{}.{}, backend API {}.{}.{}, {}, arch v{})",
            self.lib.build_id().unwrap_or_default(),
            c.major,
            c.minor,
            c.patch,
            b.major,
            b.minor,
            b.patch,
            self.lib.provider_name,
            self.arch
        )
    }
}

fn unsupported(n: &Node, reason: impl Into<String>) -> QnnBackendError {
    QnnBackendError::Unsupported {
        node: n.name.clone(),
        op: n.op.name(),
        reason: reason.into(),
    }
}

/// NCHW → NHWC dims (rank 4), others unchanged, as u32.
/// The NCHW axis each NHWC axis holds.
const NHWC_ORDER: [usize; 4] = [0, 2, 3, 1];
/// Where each NCHW axis sits in NHWC storage.
const NCHW_IN_NHWC: [usize; 4] = [0, 3, 1, 2];

fn qdims(shape: &[usize], batch: usize) -> Vec<u32> {
    let mut s: Vec<u32> = shape.iter().map(|&d| d as u32).collect();
    s[0] = batch as u32;
    if s.len() == 4 {
        vec![s[0], s[2], s[3], s[1]]
    } else {
        s
    }
}

fn act_dtype(bits: u8) -> u32 {
    if bits == 16 {
        DATATYPE_UFIXED_POINT_16
    } else {
        DATATYPE_UFIXED_POINT_8
    }
}

/// The same range at another bitwidth.
fn rebits(e: Encoding, bits: u8) -> Encoding {
    if e.bits == bits {
        e
    } else {
        Encoding::from_min_max(e.min() as f32, e.max() as f32, bits)
    }
}

/// A graph built and finalized for one plan and batch size.
pub struct QnnModel {
    _ctx: Arc<Context>,
    graph: QGraph,
    profile: Profile,
    batch: usize,
    input: (TensorRef, Encoding, Vec<usize>),
    outputs: Vec<(TensorRef, Encoding, Vec<usize>)>,
    /// Execute time (µs) of the last run's last batch, from QNN's profile.
    pub last_execute_us: Option<u64>,
    /// Convert ops the graph holds (mixed precision's width changes).
    pub converts: usize,
}

struct Builder<'a> {
    g: &'a Graph,
    plan: &'a QuantPlan,
    q: &'a QGraph,
    batch: usize,
    /// QNN tensor per (IR tensor, bits).
    vals: HashMap<(TensorId, u8), (TensorRef, Encoding)>,
    count: usize,
    converts: usize,
}

impl Builder<'_> {
    fn fresh(&mut self, base: &str) -> String {
        self.count += 1;
        format!("{base}__{}", self.count)
    }

    /// Encoding of an activation tensor (for a fused Conv output: its activation's).
    fn encoding(&self, t: TensorId, consumers: &[Vec<usize>]) -> Option<Encoding> {
        match self.plan.roles[t] {
            Role::Fused => consumers[t]
                .first()
                .and_then(|&c| self.plan.encodings[self.g.nodes[c].output]),
            _ => self.plan.encodings[t],
        }
    }

    fn native(
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
    fn get(&mut self, t: TensorId, bits: u8) -> Result<(TensorRef, Encoding)> {
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
    fn constant(&mut self, n: &Node, k: usize, out_rank: usize, bits: u8) -> Result<TensorRef> {
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
    fn static_values(
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

    fn weights(&mut self, n: &Node, wq: &WeightQuant, layout: WeightLayout) -> Result<TensorRef> {
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

    fn bias(&mut self, n: &Node, wq: &WeightQuant, in_scale: f32) -> Result<TensorRef> {
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum WeightLayout {
    Hwio,
    OutIn,
}

fn pair(name: &'static str, v: [usize; 2]) -> ParamSpec {
    ParamSpec::U32Tensor(name, vec![2], vec![v[0] as u32, v[1] as u32])
}

fn pads(p: [usize; 4]) -> ParamSpec {
    // IR pads are top, left, bottom, right; QNN wants [[top, bottom], [left, right]]
    ParamSpec::U32Tensor(
        "pad_amount",
        vec![2, 2],
        vec![p[0] as u32, p[2] as u32, p[1] as u32, p[3] as u32],
    )
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
        let consumers = g.consumers();
        let mut b = Builder {
            g,
            plan,
            q: &q,
            batch,
            vals: HashMap::new(),
            count: 0,
            converts: 0,
        };

        let in_t = g.inputs[0];
        let in_e = plan.encodings[in_t]
            .ok_or_else(|| QnnBackendError::Input("the input has no encoding".into()))?;
        let in_dims = qdims(&g.tensors[in_t].shape, batch);
        let in_ref = q.tensor(&TensorSpec {
            name: &g.tensors[in_t].name,
            tensor_type: TENSOR_TYPE_APP_WRITE,
            data_type: act_dtype(in_e.bits),
            dims: &in_dims,
            quant: Quant::ScaleOffset {
                scale: in_e.scale,
                offset: in_e.offset,
            },
            data: None,
        })?;
        b.vals.insert((in_t, in_e.bits), (in_ref, in_e));

        // a MAC op computes at the width its group chose for its input
        let in_bits = |n: &Node| {
            plan.encodings[n.inputs[0]]
                .map(|e| e.bits)
                .ok_or_else(|| unsupported(n, "its input has no encoding"))
        };
        for (i, n) in g.nodes.iter().enumerate() {
            let out = n.output;
            let is_output = g.outputs.contains(&out);
            let out_shape = &g.tensors[out].shape;
            let dims = qdims(out_shape, batch);
            let out_e = b
                .encoding(out, &consumers)
                .ok_or_else(|| unsupported(n, "its output has no encoding"))?;
            let rank = out_shape.len();
            match &n.op {
                Op::Conv(c) => {
                    let wq = plan.weights[i]
                        .as_ref()
                        .ok_or_else(|| unsupported(n, "no quantized weights"))?;
                    let (x, xe) = b.get(n.inputs[0], in_bits(n)?)?;
                    if wq.bits == 16 && xe.bits == 8 {
                        return Err(unsupported(
                            n,
                            "a8w16: 16-bit weights need 16-bit activations on HTP",
                        ));
                    }
                    let ws = &g.tensors[n.inputs[1]].shape;
                    let depthwise = ws[1] == 1 && c.group == ws[0] && c.group > 1;
                    let w = b.weights(n, wq, WeightLayout::Hwio)?;
                    let bias = b.bias(n, wq, xe.scale)?;
                    // compute at the input's width; requantize to the output's encoding afterwards if it differs
                    let ce = rebits(out_e, xe.bits);
                    let name = b.fresh(&g.tensors[out].name);
                    let y = b.native(&name, &dims, ce, is_output && ce == out_e)?;
                    let mut params = vec![
                        pair("stride", c.strides),
                        pads(c.pads),
                        pair("dilation", c.dilations),
                    ];
                    let op = if depthwise {
                        "DepthWiseConv2d"
                    } else {
                        params.push(ParamSpec::U32("group", c.group as u32));
                        "Conv2d"
                    };
                    q.node(&n.name, op, &params, &[x, w, bias], &[y])?;
                    b.vals.insert((out, ce.bits), (y, ce));
                }
                Op::Gemm => {
                    let wq = plan.weights[i]
                        .as_ref()
                        .ok_or_else(|| unsupported(n, "no quantized weights"))?;
                    if g.tensors[n.inputs[0]].shape.len() != 2 {
                        return Err(unsupported(
                            n,
                            "FullyConnected takes a [batch, features] input",
                        ));
                    }
                    let (x, xe) = b.get(n.inputs[0], in_bits(n)?)?;
                    if wq.bits == 16 && xe.bits == 8 {
                        return Err(unsupported(
                            n,
                            "a8w16: 16-bit weights need 16-bit activations on HTP",
                        ));
                    }
                    let w = b.weights(n, wq, WeightLayout::OutIn)?;
                    let bias = b.bias(n, wq, xe.scale)?;
                    let ce = rebits(out_e, xe.bits);
                    let name = b.fresh(&g.tensors[out].name);
                    let y = b.native(&name, &dims, ce, is_output && ce == out_e)?;
                    q.node(&n.name, "FullyConnected", &[], &[x, w, bias], &[y])?;
                    b.vals.insert((out, ce.bits), (y, ce));
                }
                _ => {
                    let bits = out_e.bits;
                    let mut ins = Vec::new();
                    for (k, &t) in n.inputs.iter().enumerate() {
                        if g.tensors[t].is_const() {
                            ins.push(b.constant(n, k, rank, bits)?);
                        } else {
                            ins.push(b.get(t, bits)?.0);
                        }
                    }
                    let (op, params): (&str, Vec<ParamSpec>) = match &n.op {
                        Op::Relu => ("Relu", vec![]),
                        Op::Clip { min, max } => (
                            "ReluMinMax",
                            vec![
                                ParamSpec::F32("min_value", *min),
                                ParamSpec::F32("max_value", *max),
                            ],
                        ),
                        Op::Sigmoid => ("Sigmoid", vec![]),
                        Op::Tanh => ("Tanh", vec![]),
                        Op::HardSwish => ("HardSwish", vec![]),
                        Op::HardSigmoid { alpha, beta } => (
                            "ElementWiseNeuron",
                            vec![
                                ParamSpec::U32("operation", 2),
                                ParamSpec::F32("alpha", *alpha),
                                ParamSpec::F32("beta", *beta),
                            ],
                        ),
                        Op::Add => ("ElementWiseAdd", vec![]),
                        Op::Sub => ("ElementWiseSubtract", vec![]),
                        Op::Mul => ("ElementWiseMultiply", vec![]),
                        Op::Div => ("ElementWiseDivide", vec![]),
                        Op::MaxPool(p) | Op::AveragePool(p) => {
                            let mut ps = vec![
                                pair("filter_size", p.kernel),
                                pair("stride", p.strides),
                                pads(p.pads),
                                ParamSpec::U32("rounding_mode", p.ceil_mode as u32),
                            ];
                            if matches!(n.op, Op::AveragePool(_)) {
                                ps.push(ParamSpec::Bool(
                                    "count_pad_for_edges",
                                    p.count_include_pad,
                                ));
                                ("PoolAvg2d", ps)
                            } else {
                                ("PoolMax2d", ps)
                            }
                        }
                        Op::GlobalAveragePool => (
                            "ReduceMean",
                            vec![
                                ParamSpec::U32Tensor("axes", vec![2], vec![1, 2]),
                                ParamSpec::Bool("keep_dims", true),
                            ],
                        ),
                        Op::Softmax { axis } => {
                            if *axis != rank - 1 && !(rank == 4 && *axis == 1) {
                                return Err(unsupported(
                                    n,
                                    "HTP Softmax runs over the last (channel) axis only",
                                ));
                            }
                            ("Softmax", vec![])
                        }
                        Op::Concat { axis } => {
                            let a = if rank == 4 {
                                [0, 3, 1, 2][*axis]
                            } else {
                                *axis
                            };
                            ("Concat", vec![ParamSpec::U32("axis", a as u32)])
                        }
                        Op::Reshape { .. } => {
                            let src = &g.tensors[n.inputs[0]].shape;
                            if src.len() == 4 && src[2] * src[3] != 1 && rank != 4 {
                                // NHWC data must be put back in NCHW order before flattening
                                let (e_in, t_in) = (b.get(n.inputs[0], bits)?.1, ins[0]);
                                let name = b.fresh("to_nchw");
                                let nchw: Vec<u32> =
                                    vec![batch as u32, src[1] as u32, src[2] as u32, src[3] as u32];
                                let tmp = b.native(&name, &nchw, e_in, false)?;
                                q.node(
                                    &b.fresh("transpose"),
                                    "Transpose",
                                    &[ParamSpec::U32Tensor("perm", vec![4], vec![0, 3, 1, 2])],
                                    &[t_in],
                                    &[tmp],
                                )?;
                                ins[0] = tmp;
                            } else if rank == 4 && src.len() != 4 {
                                return Err(unsupported(n, "reshaping to a rank-4 tensor"));
                            }
                            ("Reshape", vec![])
                        }
                        Op::LeakyRelu { alpha } => {
                            let c = b.static_values(
                                &format!("{}.alpha", n.name),
                                &vec![1; rank],
                                &[*alpha],
                                Encoding::for_constant(&[*alpha], bits),
                            )?;
                            ins.push(c);
                            ("Prelu", vec![])
                        }
                        Op::ReduceMean { axes, keepdims } => {
                            let src = g.tensors[n.inputs[0]].shape.len();
                            let has = |a: usize| axes.contains(&a);
                            if has(0) {
                                return Err(unsupported(n, "reducing over the batch axis"));
                            }
                            // without keepdims, NHWC and NCHW orders agree on what remains only when the
                            // channel axis goes or both spatial axes go
                            let order_kept = *keepdims || has(1) || (has(2) && has(3));
                            if src == 4 && !order_kept {
                                return Err(unsupported(
                                    n,
                                    "removing one spatial axis and keeping the channels",
                                ));
                            }
                            let qaxes: Vec<u32> = axes
                                .iter()
                                .map(|&a| if src == 4 { NCHW_IN_NHWC[a] } else { a } as u32)
                                .collect();
                            (
                                "ReduceMean",
                                vec![
                                    ParamSpec::U32Tensor("axes", vec![qaxes.len() as u32], qaxes),
                                    ParamSpec::Bool("keep_dims", *keepdims),
                                ],
                            )
                        }
                        Op::Transpose { perm } => {
                            if perm[0] != 0 {
                                return Err(unsupported(n, "moving the batch axis"));
                            }
                            let q: Vec<u32> = if rank == 4 {
                                // QNN axis i holds NCHW axis NHWC_ORDER[i] of the output, which is input
                                // NCHW axis perm[..], found in the input's NHWC storage at NCHW_IN_NHWC[..]
                                (0..4)
                                    .map(|i| NCHW_IN_NHWC[perm[NHWC_ORDER[i]]] as u32)
                                    .collect()
                            } else {
                                perm.iter().map(|&a| a as u32).collect()
                            };
                            (
                                "Transpose",
                                vec![ParamSpec::U32Tensor("perm", vec![rank as u32], q)],
                            )
                        }
                        Op::Pad { pads, value } => {
                            if pads[0] != 0 || pads[rank] != 0 {
                                return Err(unsupported(n, "padding the batch axis"));
                            }
                            let e = b.get(n.inputs[0], bits)?.1;
                            let amount: Vec<u32> = (0..rank)
                                .map(|i| if rank == 4 { NHWC_ORDER[i] } else { i })
                                .flat_map(|a| [pads[a] as u32, pads[a + rank] as u32])
                                .collect();
                            (
                                "Pad",
                                vec![
                                    ParamSpec::U32("scheme", 0),
                                    ParamSpec::U32Tensor(
                                        "pad_amount",
                                        vec![rank as u32, 2],
                                        amount,
                                    ),
                                    ParamSpec::I32("pad_constant_value", e.quantize(*value) as i32),
                                ],
                            )
                        }
                        Op::Resize(r) => {
                            if rank != 4 {
                                return Err(unsupported(n, "resizing a tensor not of rank 4"));
                            }
                            let coord = match r.coord {
                                CoordMode::HalfPixel => 0,
                                CoordMode::PytorchHalfPixel => 1,
                                CoordMode::AlignCorners => 2,
                                CoordMode::Asymmetric => 3,
                            };
                            let nearest = match r.nearest {
                                NearestMode::RoundPreferFloor => 0,
                                NearestMode::RoundPreferCeil => 1,
                                NearestMode::Floor => 2,
                                NearestMode::Ceil => 3,
                            };
                            let mode = match r.mode {
                                ResizeMode::Nearest => 0,
                                ResizeMode::Linear => 1,
                            };
                            if mode == 0 && r.nearest != NearestMode::Floor {
                                // HTP's Resize takes nearest_mode floor only; TF-style half-pixel nearest
                                // rounds halves up, which is ONNX's round_prefer_ceil, and any rounding
                                // when an integer upscale leaves no halves
                                let src = &g.tensors[n.inputs[0]].shape;
                                let integer_up = (2..4)
                                    .all(|d| out_shape[d] >= src[d] && out_shape[d] % src[d] == 0);
                                let half = matches!(
                                    r.coord,
                                    CoordMode::HalfPixel | CoordMode::PytorchHalfPixel
                                );
                                if !(half
                                    && (r.nearest == NearestMode::RoundPreferCeil || integer_up))
                                {
                                    return Err(unsupported(
                                        n,
                                        "nearest resize other than floor, or half-pixel rounding halves up",
                                    ));
                                }
                                (
                                    "ResizeNearestNeighbor",
                                    vec![
                                        ParamSpec::Bool("align_corners", false),
                                        ParamSpec::Bool("half_pixel_centers", true),
                                    ],
                                )
                            } else {
                                let mut ps = vec![
                                    ParamSpec::Bool("exclude_outside", false),
                                    ParamSpec::U32("transformation_mode", coord),
                                    ParamSpec::U32("interpolation_mode", mode),
                                ];
                                if mode == 0 {
                                    ps.push(ParamSpec::U32("nearest_mode", nearest));
                                }
                                ("Resize", ps)
                            }
                        }
                        Op::MatMul => {
                            if rank == 4 {
                                return Err(unsupported(
                                    n,
                                    "MatMul of rank-4 tensors (they are stored NHWC on HTP)",
                                ));
                            }
                            (
                                "MatMul",
                                vec![
                                    ParamSpec::Bool("transpose_in0", false),
                                    ParamSpec::Bool("transpose_in1", false),
                                ],
                            )
                        }
                        Op::ScaleShift => {
                            // per-channel x · scale + shift: HTP's Batchnorm, with [C] operands
                            ins.truncate(1);
                            for k in [1, 2] {
                                let c = b.constant(n, k, 1, bits)?;
                                ins.push(c);
                            }
                            ("Batchnorm", vec![])
                        }
                        other => {
                            return Err(unsupported(
                                n,
                                format!("{} has no QNN lowering yet", other.name()),
                            ))
                        }
                    };
                    let e = if n.op.is_passthrough() {
                        b.get(n.inputs[0], bits)?.1
                    } else {
                        out_e
                    };
                    let name = b.fresh(&g.tensors[out].name);
                    let y = b.native(&name, &dims, e, is_output)?;
                    q.node(&n.name, op, &params, &ins, &[y])?;
                    b.vals.insert((out, e.bits), (y, e));
                }
            }
        }
        let mut outputs = Vec::new();
        for &o in &g.outputs {
            let e = plan.encodings[o]
                .ok_or_else(|| QnnBackendError::Input("an output has no encoding".into()))?;
            let (r, e) = match b.vals.get(&(o, e.bits)) {
                Some(v) => *v,
                None => {
                    // the output was computed at another width: convert into an APP_READ tensor
                    let (src, _) = b.get(o, if e.bits == 8 { 16 } else { 8 })?;
                    let name = b.fresh(&g.tensors[o].name);
                    let dst = b.native(&name, &qdims(&g.tensors[o].shape, batch), e, true)?;
                    q.node(&b.fresh("convert"), "Convert", &[], &[src], &[dst])?;
                    b.converts += 1;
                    (dst, e)
                }
            };
            outputs.push((r, e, g.tensors[o].shape.clone()));
        }
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

    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Runs any number of samples (NCHW floats) in batches of the graph's size; returns float outputs.
    pub fn run(&mut self, x: &Array) -> Result<Vec<Array>> {
        let (in_ref, in_e, in_shape) = self.input.clone();
        if x.shape.len() != in_shape.len() || x.shape[1..] != in_shape[1..] {
            return Err(QnnBackendError::Input(format!(
                "input has shape {:?}, the model expects {:?}",
                x.shape, in_shape
            )));
        }
        let n = x.batch();
        let per = x.sample_len();
        let mut outs: Vec<Vec<f32>> = vec![Vec::new(); self.outputs.len()];
        for start in (0..n).step_by(self.batch) {
            let take = (n - start).min(self.batch);
            let mut chunk = x.data[start * per..(start + take) * per].to_vec();
            chunk.resize(self.batch * per, 0.0);
            let nhwc = if in_shape.len() == 4 {
                to_nhwc(&chunk, self.batch, &in_shape)
            } else {
                chunk
            };
            let in_bytes = encode(&nhwc, &in_e);
            let mut bufs: Vec<Vec<u8>> = self
                .outputs
                .iter()
                .map(|(r, _, _)| vec![0u8; r.bytes()])
                .collect();
            {
                let mut outs_arg: Vec<(TensorRef, &mut [u8])> = self
                    .outputs
                    .iter()
                    .zip(bufs.iter_mut())
                    .map(|((r, _, _), b)| (*r, b.as_mut_slice()))
                    .collect();
                self.graph
                    .execute(&[(in_ref, &in_bytes)], &mut outs_arg, Some(&self.profile))?;
            }
            self.last_execute_us = self.profile.event_us(PROFILE_EVENTTYPE_EXECUTE)?;
            for (k, ((_, e, shape), buf)) in self.outputs.iter().zip(&bufs).enumerate() {
                let vals = decode(buf, e);
                let vals = if shape.len() == 4 {
                    to_nchw(&vals, self.batch, shape)
                } else {
                    vals
                };
                let per_out: usize = shape[1..].iter().product();
                outs[k].extend_from_slice(&vals[..take * per_out]);
            }
        }
        Ok(self
            .outputs
            .iter()
            .zip(outs)
            .map(|((_, _, shape), data)| {
                let mut s = shape.clone();
                s[0] = n;
                Array::new(s, data)
            })
            .collect())
    }
}

/// Moves the channel axis of `n` samples of NCHW shape `s` to the end (NHWC), or back with `to_nhwc` false.
fn permute_channels(x: &[f32], n: usize, s: &[usize], to_nhwc: bool) -> Vec<f32> {
    let (c, h, w) = (s[1], s[2], s[3]);
    let mut out = vec![0f32; x.len()];
    for b in 0..n {
        for ch in 0..c {
            for y in 0..h {
                for xx in 0..w {
                    let nchw = ((b * c + ch) * h + y) * w + xx;
                    let nhwc = ((b * h + y) * w + xx) * c + ch;
                    if to_nhwc {
                        out[nhwc] = x[nchw];
                    } else {
                        out[nchw] = x[nhwc];
                    }
                }
            }
        }
    }
    out
}

fn to_nhwc(x: &[f32], n: usize, s: &[usize]) -> Vec<f32> {
    permute_channels(x, n, s, true)
}

fn to_nchw(x: &[f32], n: usize, s: &[usize]) -> Vec<f32> {
    permute_channels(x, n, s, false)
}

fn encode(x: &[f32], e: &Encoding) -> Vec<u8> {
    if e.bits == 16 {
        x.iter()
            .flat_map(|&v| (e.quantize(v) as u16).to_le_bytes())
            .collect()
    } else {
        x.iter().map(|&v| e.quantize(v) as u8).collect()
    }
}

fn decode(b: &[u8], e: &Encoding) -> Vec<f32> {
    let deq = |q: f64| ((q + e.offset as f64) * e.scale as f64) as f32;
    if e.bits == 16 {
        b.chunks_exact(2)
            .map(|c| deq(u16::from_le_bytes([c[0], c[1]]) as f64))
            .collect()
    } else {
        b.iter().map(|&q| deq(q as f64)).collect()
    }
}

/// Median execute time in µs (QNN's profile) of `iterations` runs after `warmup` of a one-op graph on a
/// tensor of IR shape `shape`: `op` reads it at `from` bits and writes it at `to` bits.
fn one_op_us(
    rt: &QnnRuntime,
    op: &str,
    shape: &[usize],
    from: u8,
    to: u8,
    warmup: usize,
    iterations: usize,
) -> Result<f64> {
    let ctx = Context::new(rt.backend.clone(), Some(rt.device.clone()))?;
    let q = QGraph::new(ctx.clone(), "probe")?;
    let profile = Profile::basic(rt.backend.clone())?;
    let dims = qdims(shape, shape.first().copied().unwrap_or(1).max(1));
    let spec = |name: &'static str, tensor_type, bits: u8| {
        let e = Encoding::from_min_max(-1.0, 1.0, bits);
        q.tensor(&TensorSpec {
            name,
            tensor_type,
            data_type: act_dtype(bits),
            dims: &dims,
            quant: Quant::ScaleOffset {
                scale: e.scale,
                offset: e.offset,
            },
            data: None,
        })
    };
    let x = spec("x", TENSOR_TYPE_APP_WRITE, from)?;
    let y = spec("y", TENSOR_TYPE_APP_READ, to)?;
    q.node("op", op, &[], &[x], &[y])?;
    q.finalize(None)?;
    let input = vec![0u8; x.bytes()];
    let mut output = vec![0u8; y.bytes()];
    let mut times = Vec::new();
    for i in 0..warmup + iterations.max(1) {
        q.execute(&[(x, &input)], &mut [(y, &mut output)], Some(&profile))?;
        if i >= warmup {
            if let Some(us) = profile.event_us(PROFILE_EVENTTYPE_EXECUTE)? {
                times.push(us as f64);
            }
        }
    }
    if times.is_empty() {
        return Err(QnnBackendError::Input(
            "the backend's profile reported no execute time".into(),
        ));
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// What one Convert costs on this backend: the median execute time of a graph holding only that Convert,
/// minus that of the same graph with a Reshape (no data change) in its place, so the per-graph overhead and
/// the input copy cancel. Returns (convert µs, reshape µs); the difference is the cost (clamped at 0 by the
/// caller).
pub fn measure_convert(
    rt: &QnnRuntime,
    shape: &[usize],
    from: u8,
    to: u8,
    warmup: usize,
    iterations: usize,
) -> Result<(f64, f64)> {
    let with = one_op_us(rt, "Convert", shape, from, to, warmup, iterations)?;
    let without = one_op_us(rt, "Reshape", shape, from, from, warmup, iterations)?;
    Ok((with, without))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_round_trip() {
        let x: Vec<f32> = (0..2 * 3 * 2 * 2).map(|v| v as f32).collect();
        let s = [2, 3, 2, 2];
        assert_eq!(to_nchw(&to_nhwc(&x, 2, &s), 2, &s), x);
        assert_eq!(&to_nhwc(&x, 2, &s)[..3], &[0.0, 4.0, 8.0]);
    }

    #[test]
    fn codes_round_trip_on_the_grid() {
        let e = Encoding::from_min_max(-1.0, 3.0, 16);
        let x: Vec<f32> = [-1.0f32, 0.0, 0.5, 2.99]
            .iter()
            .map(|&v| e.fake(v))
            .collect();
        assert_eq!(decode(&encode(&x, &e), &e), x);
    }
}
