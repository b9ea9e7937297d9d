//! The reference backend: FP32 execution, and quantized execution that applies QNN's quantization at every
//! tensor QNN materialises. MAC ops (Conv, Gemm, MatMul) run on integer codes with exact accumulation (i32
//! on the int8 GEMM for long a8w8 sums, f32 where the bound K·max|a|·max|w| < 2²⁴ proves it exact, f64
//! otherwise), so the only rounding is the final requantization, as on the accelerator.
//!
//! `run` fuses a Conv/Gemm with the Relu/Clip QNN folds into it (and quantizes the result in the same pass);
//! `run_observed` executes node by node so every tensor can be observed. Both give the same outputs bit for
//! bit.

mod buffers;
mod conv;
mod elementwise;
mod gemm;
mod int8;
mod layout;
mod pool;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{Array, ExecError};
use crate::ir::{Graph, Node, Op};
use crate::quant::{quantize_bias, roles, Encoding, QuantPlan, Role};
use buffers::Buffers;

/// Integer-domain parameters of one MAC op with weights.
#[derive(Clone, Debug)]
pub(crate) struct QuantMac {
    /// Weight codes (integers stored as floats).
    pub codes: Vec<f32>,
    /// The same codes in f64, when accumulating in f32 would not be exact.
    pub codes64: Option<Vec<f64>>,
    /// The same codes in i8, for 8-bit weights on 8-bit activations (the int8 GEMM).
    pub codes_i8: Option<Vec<i8>>,
    /// Output multiplier per channel: input scale × weight scale.
    pub mult: Vec<f64>,
    /// Dequantized int32 bias per channel.
    pub bias: Vec<f64>,
}

/// What a MAC kernel applies to its output before handing it on: a fused Relu/Clip, then the output's
/// quantization.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Epilogue {
    pub clamp: Option<(f32, f32)>,
    pub quant: Option<Encoding>,
    /// Leave the quantized values as integer codes `q + offset` (for a tensor only MAC ops read).
    pub codes: bool,
}

impl Epilogue {
    #[cfg(test)]
    pub const NONE: Epilogue = Epilogue {
        clamp: None,
        quant: None,
        codes: false,
    };

    pub fn apply(&self, v: &mut [f32]) {
        self.apply_mapped(v, |x| x);
    }

    /// `v[i] = epilogue(pre(v[i]))` in one pass (one loop per variant, so each vectorises).
    #[inline]
    pub fn apply_mapped(&self, v: &mut [f32], pre: impl Fn(f32) -> f32) {
        match (self.clamp, self.quant) {
            (None, None) => v.iter_mut().for_each(|x| *x = pre(*x)),
            (Some((lo, hi)), None) => v.iter_mut().for_each(|x| *x = clamp(pre(*x), lo, hi)),
            (None, Some(e)) => {
                let f = e.quant_fn(if self.codes { 1.0 } else { e.scale });
                v.iter_mut().for_each(|x| *x = f(pre(*x)));
            }
            (Some((lo, hi)), Some(e)) => {
                let f = e.quant_fn(if self.codes { 1.0 } else { e.scale });
                v.iter_mut().for_each(|x| *x = f(clamp(pre(*x), lo, hi)));
            }
        }
    }
}

/// How a MAC op's exact sums become its output: per output channel `c`, `acc · mult[c] + bias[c]`, then the
/// epilogue. With an output encoding `s` (every quantized MAC op in `run`), straight to the code in one pass:
/// `t = acc · (mult[c] / s) + bias[c] / s`, rounded half to even and limited to the codes the activation and
/// the encoding allow. Clamping before or after rounding gives the same code (both are monotone), so this
/// is the fused Relu/Clip followed by the quantization. `t` is computed in f32 for 8-bit outputs (t ≤ 255:
/// f32 is within 1e-4 LSB of the exact value) and in f64 for 16-bit ones, the same way whichever
/// accumulator (f32, f64, i32) produced `acc`, so every path gives the same bits.
pub(crate) enum Requant {
    /// No output encoding: the real value `acc · mult + bias` in f32, then the epilogue's clamp.
    Real,
    Narrow {
        m: Vec<f32>,
        b: Vec<f32>,
        lo: f32,
        hi: f32,
        out_scale: f32,
    },
    Wide {
        m: Vec<f64>,
        b: Vec<f64>,
        lo: f64,
        hi: f64,
        out_scale: f32,
    },
}

impl Requant {
    pub fn new(q: &QuantMac, epi: &Epilogue) -> Requant {
        let Some(e) = epi.quant else {
            return Requant::Real;
        };
        let s = e.scale as f64;
        let off = e.offset as f64;
        let (alo, ahi) = epi.clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        // codes `q + offset` the activation and the encoding allow
        let lo = (alo as f64 / s).round_ties_even().max(off);
        let hi = (ahi as f64 / s).round_ties_even().min(e.qmax() + off);
        let out_scale = if epi.codes { 1.0 } else { e.scale };
        if e.bits <= 8 {
            Requant::Narrow {
                m: q.mult.iter().map(|&m| (m / s) as f32).collect(),
                b: q.bias.iter().map(|&b| (b / s) as f32).collect(),
                lo: lo as f32,
                hi: hi as f32,
                out_scale,
            }
        } else {
            Requant::Wide {
                m: q.mult.iter().map(|&m| m / s).collect(),
                b: q.bias.iter().map(|&b| b / s).collect(),
                lo,
                hi,
                out_scale,
            }
        }
    }

    /// Channel `c`'s sums `acc` into `out`.
    pub fn row<A: Acc>(&self, q: &QuantMac, epi: &Epilogue, c: usize, acc: &[A], out: &mut [f32]) {
        self.channel(q, c, out.iter_mut().zip(acc.iter().copied()));
        if let Requant::Real = self {
            epi.apply(out);
        }
    }

    /// Channel `c`'s f32 sums, in place.
    pub fn row_in_place(&self, q: &QuantMac, epi: &Epilogue, c: usize, row: &mut [f32]) {
        self.channel(
            q,
            c,
            row.iter_mut().map(|o| {
                let a = *o;
                (o, a)
            }),
        );
        if let Requant::Real = self {
            epi.apply(row);
        }
    }

    /// Each (output, sum) pair of channel `c` (for `Real`, before the epilogue's clamp).
    #[inline(always)]
    fn channel<'o, A: Acc>(
        &self,
        q: &QuantMac,
        c: usize,
        pairs: impl Iterator<Item = (&'o mut f32, A)>,
    ) {
        match self {
            Requant::Real => {
                let (m, b) = (q.mult[c], q.bias[c]);
                pairs.for_each(|(o, a)| *o = (a.f64() * m + b) as f32);
            }
            Requant::Narrow {
                m,
                b,
                lo,
                hi,
                out_scale,
            } => {
                let (m, b, lo, hi, os) = (m[c], b[c], *lo, *hi, *out_scale);
                pairs.for_each(|(o, a)| *o = code_f32(a.f32() * m + b, lo, hi) * os);
            }
            Requant::Wide {
                m,
                b,
                lo,
                hi,
                out_scale,
            } => {
                let (m, b, lo, hi, os) = (m[c], b[c], *lo, *hi, *out_scale);
                pairs.for_each(|(o, a)| *o = code_f64(a.f64() * m + b, lo, hi) as f32 * os);
            }
        }
    }

    /// Rows of sums whose column `j` is channel `first + j` (an FC output, or a transposed conv tile) into
    /// `out`, same layout.
    pub fn rows<A: Acc>(
        &self,
        q: &QuantMac,
        epi: &Epilogue,
        first: usize,
        width: usize,
        acc: &[A],
        out: &mut [f32],
    ) {
        for (orow, arow) in out.chunks_mut(width).zip(acc.chunks(width)) {
            match self {
                Requant::Real => {
                    for (j, (o, &a)) in orow.iter_mut().zip(arow).enumerate() {
                        let c = first + j;
                        *o = (a.f64() * q.mult[c] + q.bias[c]) as f32;
                    }
                    epi.apply(orow);
                }
                Requant::Narrow {
                    m,
                    b,
                    lo,
                    hi,
                    out_scale,
                } => {
                    let (m, b) = (&m[first..first + width], &b[first..first + width]);
                    for (((o, &a), &m), &b) in orow.iter_mut().zip(arow).zip(m).zip(b) {
                        *o = code_f32(a.f32() * m + b, *lo, *hi) * out_scale;
                    }
                }
                Requant::Wide {
                    m,
                    b,
                    lo,
                    hi,
                    out_scale,
                } => {
                    let (m, b) = (&m[first..first + width], &b[first..first + width]);
                    for (((o, &a), &m), &b) in orow.iter_mut().zip(arow).zip(m).zip(b) {
                        *o = code_f64(a.f64() * m + b, *lo, *hi) as f32 * out_scale;
                    }
                }
            }
        }
    }
}

/// An exact MAC sum as the requantization reads it: rounded to nearest f32 (exact below 2²⁴) or as f64.
pub(crate) trait Acc: Copy {
    fn f32(self) -> f32;
    fn f64(self) -> f64;
}

impl Acc for f32 {
    fn f32(self) -> f32 {
        self
    }
    fn f64(self) -> f64 {
        self as f64
    }
}

impl Acc for f64 {
    fn f32(self) -> f32 {
        self as f32
    }
    fn f64(self) -> f64 {
        self
    }
}

impl Acc for i32 {
    fn f32(self) -> f32 {
        self as f32
    }
    fn f64(self) -> f64 {
        self as f64
    }
}

/// `t` rounded half to even, limited to `[lo, hi]` (f32 rounds exactly below 2²²; codes are far below).
#[inline(always)]
fn code_f32(t: f32, lo: f32, hi: f32) -> f32 {
    const MAGIC: f32 = 12582912.0; // 1.5 · 2²³
    clamp((clamp(t, -4194304.0, 4194304.0) + MAGIC) - MAGIC, lo, hi)
}

#[inline(always)]
fn code_f64(t: f64, lo: f64, hi: f64) -> f64 {
    const MAGIC: f64 = 6755399441055744.0; // 1.5 · 2⁵²
    let r = (t.clamp(-1e15, 1e15) + MAGIC) - MAGIC;
    let r = if r < lo { lo } else { r };
    if r > hi {
        hi
    } else {
        r
    }
}

/// `v` limited to `[lo, hi]` with two selects: one vector max and one min (`f32::max`/`min` add a NaN
/// check each), no panic on `lo > hi` (unlike `f32::clamp`); NaN passes through. Relu and Clip use it
/// fused or not, so both paths agree bit for bit.
#[inline(always)]
pub(crate) fn clamp(v: f32, lo: f32, hi: f32) -> f32 {
    let v = if v < lo { lo } else { v };
    if v > hi {
        hi
    } else {
        v
    }
}

/// The clamp a fusable activation applies.
fn activation_clamp(op: &Op) -> Option<(f32, f32)> {
    match *op {
        Op::Relu => Some((0.0, f32::INFINITY)),
        Op::Clip { min, max } => Some((min, max)),
        _ => None,
    }
}

/// A graph prepared for execution at one precision plan (or FP32).
pub struct Reference {
    graph: Arc<Graph>,
    plan: Option<QuantPlan>,
    macs: Vec<Option<QuantMac>>,
    /// Per tensor: index of the last node that reads it (to free memory early).
    last_use: Vec<usize>,
    /// Per node: the Relu/Clip node `run` folds into this Conv/Gemm (or Add/Sub, see `act_reads_sum`).
    fused_act: Vec<Option<usize>>,
    /// Per node: an Add/Sub/Mul/Div whose only reader, a Relu/Clip, reads the exact result (HTP fuses the
    /// pair).
    act_reads_sum: Vec<bool>,
    /// Per tensor: `run` keeps it as integer codes `q + offset` rather than `(q + offset) · scale`. Only for
    /// a quantized Conv/Gemm result that only quantized Conv/Gemm read (as their data input): the reader
    /// takes the codes as they are instead of dividing by the scale and rounding, the same integers.
    as_codes: Vec<bool>,
    /// Constant operands of element-wise ops (not weights) on the grid QNN stores them on, by (node, input):
    /// quantized as [`Encoding::for_operand`] says.
    qconsts: HashMap<(usize, usize), Vec<f32>>,
    /// Per node: a small depthwise conv's weights laid out for the flat kernel, made once.
    flat_dw: Vec<Option<conv::FlatDw>>,
    /// Buffers freed by one run, reused by the next.
    buffers: Mutex<Buffers>,
}

fn node_err(n: &Node, msg: impl Into<String>) -> ExecError {
    ExecError::Node {
        node: n.name.clone(),
        op: n.op.name(),
        msg: msg.into(),
    }
}

/// The largest |integer| an encoding's codes reach after adding the offset.
fn max_abs_int(e: &Encoding) -> f64 {
    (e.offset as f64).abs().max(e.qmax() + e.offset as f64)
}

impl Reference {
    /// Prepares `graph` for FP32 execution (`plan` None) or quantized execution.
    pub fn new(graph: Arc<Graph>, plan: Option<QuantPlan>) -> Result<Reference, ExecError> {
        if graph.inputs.len() != 1 {
            return Err(ExecError::Inputs(graph.inputs.len()));
        }
        let mut macs = vec![None; graph.nodes.len()];
        if let Some(plan) = &plan {
            for (i, n) in graph.nodes.iter().enumerate() {
                let Some(wq) = &plan.weights[i] else { continue };
                let enc = plan.encodings[n.inputs[0]]
                    .ok_or_else(|| node_err(n, "its input has no quantization encoding"))?;
                let cout = graph.tensors[n.inputs[1]].shape[0];
                let k: usize = graph.tensors[n.inputs[1]].shape[1..].iter().product();
                let bias_f = n
                    .inputs
                    .get(2)
                    .and_then(|&b| graph.const_data(b))
                    .map(|b| b.to_vec())
                    .unwrap_or(vec![0.0; cout]);
                let (bcodes, bscales) = quantize_bias(&bias_f, enc.scale, wq);
                let wmax = wq.codes.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
                let exact_f32 = (k as f64) * max_abs_int(&enc) * wmax < (1u64 << 24) as f64;
                macs[i] = Some(QuantMac {
                    codes: wq.codes.clone(),
                    codes64: (!exact_f32).then(|| wq.codes.iter().map(|&v| v as f64).collect()),
                    codes_i8: if wq.bits == 8 && enc.bits == 8 {
                        int8::weight_codes(&wq.codes)
                    } else {
                        None
                    },
                    mult: (0..cout)
                        .map(|c| enc.scale as f64 * wq.scale(c) as f64)
                        .collect(),
                    bias: bcodes
                        .iter()
                        .zip(&bscales)
                        .map(|(&q, &s)| q as f64 * s as f64)
                        .collect(),
                });
            }
        }
        let mut last_use = vec![0; graph.tensors.len()];
        for (i, n) in graph.nodes.iter().enumerate() {
            for &t in &n.inputs {
                last_use[t] = i;
            }
        }
        for &o in &graph.outputs {
            last_use[o] = usize::MAX;
        }
        // QNN's rule: a Conv/Gemm output read only by a Relu/Clip is not materialised
        let tensor_roles = match &plan {
            Some(p) => p.roles.clone(),
            None => roles(&graph),
        };
        let consumers = graph.consumers();
        // HTP's rule, quantized only: a Relu/Clip that alone reads an Add/Sub/Mul/Div clamps its exact result,
        // not the result rounded to its own encoding (which is still materialised and observed)
        let act_reads_sum = graph
            .nodes
            .iter()
            .map(|n| {
                plan.is_some()
                    && matches!(n.op, Op::Add | Op::Sub | Op::Mul | Op::Div)
                    && !graph.outputs.contains(&n.output)
                    && consumers[n.output].len() == 1
                    && activation_clamp(&graph.nodes[consumers[n.output][0]].op).is_some()
            })
            .collect::<Vec<_>>();
        let fused_act = graph
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let fusable = matches!(n.op, Op::Conv(_) | Op::Gemm)
                    && tensor_roles[n.output] == Role::Fused
                    && !graph.outputs.contains(&n.output);
                let act = *consumers[n.output].first()?;
                ((fusable || act_reads_sum[i]) && activation_clamp(&graph.nodes[act].op).is_some())
                    .then_some(act)
            })
            .collect::<Vec<_>>();
        let mut as_codes = vec![false; graph.tensors.len()];
        if let Some(p) = &plan {
            let is_qmac =
                |j: usize| matches!(graph.nodes[j].op, Op::Conv(_) | Op::Gemm) && macs[j].is_some();
            for i in (0..graph.nodes.len()).filter(|&i| is_qmac(i)) {
                let t = fused_act[i].map_or(graph.nodes[i].output, |a| graph.nodes[a].output);
                let readers = &consumers[t];
                as_codes[t] = p.roles[t] == Role::Own
                    && p.encodings[t].is_some()
                    && !graph.outputs.contains(&t)
                    && !readers.is_empty()
                    && readers.iter().all(|&j| {
                        is_qmac(j)
                            && graph.nodes[j].inputs[0] == t
                            && !graph.nodes[j].inputs[1..].contains(&t)
                    });
            }
        }
        let mut qconsts = HashMap::new();
        if let Some(p) = &plan {
            for (i, n) in graph.nodes.iter().enumerate() {
                let elementwise = matches!(
                    n.op,
                    Op::Add
                        | Op::Sub
                        | Op::Mul
                        | Op::Div
                        | Op::MatMul
                        | Op::ScaleShift
                        | Op::Concat { .. }
                );
                let Some(bits) = p.encodings[n.output].map(|e| e.bits) else {
                    continue;
                };
                for (k, &t) in n.inputs.iter().enumerate() {
                    if let (true, Some(d)) = (elementwise, graph.const_data(t)) {
                        if let Some(e) = Encoding::for_operand(&n.op, k, d, bits) {
                            qconsts.insert((i, k), d.iter().map(|&v| e.fake(v)).collect());
                        }
                    }
                }
            }
        }
        let flat_dw = graph
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let Op::Conv(c) = &n.op else { return None };
                let mut input = graph.tensors[n.inputs[0]].shape.clone();
                input[0] = 1;
                let w = &graph.tensors[n.inputs[1]];
                match &macs[i] {
                    Some(q) => {
                        conv::FlatDw::new(c, &input, &w.shape, &q.codes, q.codes64.as_deref())
                    }
                    None if plan.is_none() => {
                        conv::FlatDw::new(c, &input, &w.shape, graph.const_data(n.inputs[1])?, None)
                    }
                    None => None,
                }
            })
            .collect();
        Ok(Reference {
            graph,
            plan,
            macs,
            last_use,
            fused_act,
            act_reads_sum,
            as_codes,
            qconsts,
            flat_dw,
            buffers: Mutex::new(Buffers::default()),
        })
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Runs a batch; returns the graph outputs.
    pub fn run(&self, input: &Array) -> Result<Vec<Array>, ExecError> {
        self.execute(input, true, |_, _| {})
    }

    /// Runs a batch node by node, showing every activation (after quantization) to `observe` as it is
    /// computed.
    pub fn run_observed(
        &self,
        input: &Array,
        observe: impl FnMut(usize, &Array),
    ) -> Result<Vec<Array>, ExecError> {
        self.execute(input, false, observe)
    }

    fn execute(
        &self,
        input: &Array,
        fuse: bool,
        mut observe: impl FnMut(usize, &Array),
    ) -> Result<Vec<Array>, ExecError> {
        let g = &*self.graph;
        let in_id = g.inputs[0];
        let expected = &g.tensors[in_id].shape;
        if input.shape.len() != expected.len() || input.shape[1..] != expected[1..] {
            return Err(ExecError::InputShape {
                expected: expected.clone(),
                found: input.shape.clone(),
            });
        }
        let mut bufs = std::mem::take(&mut *self.lock_buffers());
        let mut vals: Vec<Option<Array>> = vec![None; g.tensors.len()];
        let mut x = input.clone();
        self.quantize(in_id, &mut x);
        observe(in_id, &x);
        vals[in_id] = Some(x);
        let mut skip = vec![false; g.nodes.len()];
        for (i, n) in g.nodes.iter().enumerate() {
            if !skip[i] {
                // a quantized Conv/Gemm and its Relu/Clip are one op in both modes: the sum before the
                // activation is not materialised, and the requantization clamps in the code domain
                let mac = self.macs[i].is_some();
                let act = if fuse || mac { self.fused_act[i] } else { None };
                // with a fused activation, the node's result is the activation's output
                let out = match act {
                    Some(a) => {
                        skip[a] = true;
                        g.nodes[a].output
                    }
                    None => n.output,
                };
                let (mut y, quantized) = self.exec(i, n, fuse, act, out, &vals, &mut bufs)?;
                let mut observed = false;
                if !quantized {
                    if let Some((lo, hi)) = act.and_then(|a| activation_clamp(&g.nodes[a].op)) {
                        // an Add/Sub with its activation folded in
                        y.data.iter_mut().for_each(|v| *v = clamp(*v, lo, hi));
                    }
                    if !fuse && self.act_reads_sum[i] {
                        // node by node: only the activation reads this, and it reads the exact sum;
                        // what is observed is the sum rounded to its own encoding
                        let mut rounded = y.clone();
                        self.quantize(out, &mut rounded);
                        observe(out, &rounded);
                        observed = true;
                    } else {
                        self.quantize(out, &mut y);
                    }
                }
                if !observed {
                    observe(out, &y);
                }
                vals[out] = Some(y);
            }
            for &t in &n.inputs {
                if self.last_use[t] == i {
                    if let Some(a) = vals[t].take() {
                        bufs.give(a.data);
                    }
                }
            }
        }
        let outs = g
            .outputs
            .iter()
            .map(|&o| vals[o].take().expect("graph output computed"))
            .collect();
        *self.lock_buffers() = bufs;
        Ok(outs)
    }

    fn lock_buffers(&self) -> std::sync::MutexGuard<'_, Buffers> {
        // a panic elsewhere cannot leave the free list inconsistent: take it as it is
        self.buffers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The encoding `t` is quantized with, when it is quantized with its own.
    fn own_encoding(&self, t: usize) -> Option<Encoding> {
        let plan = self.plan.as_ref()?;
        (plan.roles[t] == Role::Own)
            .then_some(plan.encodings[t])
            .flatten()
    }

    fn quantize(&self, t: usize, a: &mut Array) {
        if let Some(e) = self.own_encoding(t) {
            e.fake_slice(&mut a.data);
        }
    }

    fn input<'a>(&'a self, vals: &'a [Option<Array>], t: usize) -> Result<ArrayRef<'a>, String> {
        if let Some(d) = self.graph.const_data(t) {
            return Ok(ArrayRef {
                shape: &self.graph.tensors[t].shape,
                data: d,
            });
        }
        let a = vals[t]
            .as_ref()
            .ok_or_else(|| format!("input \"{}\" was not computed", self.graph.tensors[t].name))?;
        Ok(ArrayRef {
            shape: &a.shape,
            data: &a.data,
        })
    }

    /// Executes node `i` (with the activation node `act` folded in), whose result is tensor `out`. Returns
    /// the result and whether it is already quantized.
    #[allow(clippy::too_many_arguments)]
    fn exec(
        &self,
        i: usize,
        n: &Node,
        fuse: bool,
        act: Option<usize>,
        out: usize,
        vals: &[Option<Array>],
        bufs: &mut Buffers,
    ) -> Result<(Array, bool), ExecError> {
        let epi = Epilogue {
            clamp: act.and_then(|a| activation_clamp(&self.graph.nodes[a].op)),
            quant: self.own_encoding(out),
            codes: fuse && self.as_codes[out],
        };
        self.exec_inner(i, n, fuse, &epi, vals, bufs)
            .map_err(|m| node_err(n, m))
    }

    fn exec_inner(
        &self,
        i: usize,
        n: &Node,
        fuse: bool,
        epi: &Epilogue,
        vals: &[Option<Array>],
        bufs: &mut Buffers,
    ) -> Result<(Array, bool), String> {
        let mut ins: Vec<ArrayRef> = n
            .inputs
            .iter()
            .map(|&t| self.input(vals, t))
            .collect::<Result<_, _>>()?;
        for (k, a) in ins.iter_mut().enumerate() {
            if let Some(d) = self.qconsts.get(&(i, k)) {
                a.data = d;
            }
        }
        let need_enc = |k: usize| -> Result<Encoding, String> {
            let e = self
                .plan
                .as_ref()
                .and_then(|p| p.encodings[n.inputs[k]])
                .ok_or_else(|| "its input has no quantization encoding".to_string())?;
            // an input kept as codes is on the grid of scale 1
            Ok(if fuse && self.as_codes[n.inputs[k]] {
                Encoding { scale: 1.0, ..e }
            } else {
                e
            })
        };
        let enc = |k: usize| self.plan.as_ref().and_then(|p| p.encodings[n.inputs[k]]);
        let out_shape = &self.graph.tensors[n.output].shape;
        let bias = ins.get(2).map(|b| b.data);
        let r = match &n.op {
            Op::Conv(c) => {
                let r = match &self.macs[i] {
                    Some(q) => conv::conv_quant(
                        c,
                        &ins[0],
                        ins[1].shape,
                        q,
                        need_enc(0)?,
                        epi,
                        bufs,
                        self.flat_dw[i].as_ref(),
                    ),
                    None => conv::conv_f32(
                        c,
                        &ins[0],
                        &ins[1],
                        bias,
                        epi,
                        bufs,
                        self.flat_dw[i].as_ref(),
                    ),
                };
                return r.map(|a| (a, true));
            }
            Op::Gemm => {
                let r = match &self.macs[i] {
                    Some(q) => gemm::fc_quant(&ins[0], ins[1].shape, q, need_enc(0)?, epi, bufs),
                    None => gemm::fc_f32(&ins[0], &ins[1], bias, epi, bufs),
                };
                return r.map(|a| (a, true));
            }
            Op::MatMul => gemm::matmul(&ins[0], &ins[1], enc(0).zip(enc(1))),
            Op::Add | Op::Sub | Op::Mul | Op::Div => {
                elementwise::binary(&n.op, &ins[0], &ins[1], bufs)
            }
            Op::ScaleShift => elementwise::scale_shift(&ins[0], ins[1].data, ins[2].data),
            Op::Softmax { axis } => elementwise::softmax(&ins[0], *axis),
            Op::Relu
            | Op::Clip { .. }
            | Op::LeakyRelu { .. }
            | Op::Sigmoid
            | Op::HardSigmoid { .. }
            | Op::HardSwish
            | Op::Tanh => Ok(elementwise::unary(&n.op, &ins[0], bufs)),
            Op::MaxPool(p) => pool::max_pool(p, &ins[0]),
            Op::AveragePool(p) => pool::avg_pool(p, &ins[0]),
            Op::GlobalAveragePool => pool::global_avg(&ins[0]),
            Op::ReduceMean { axes, keepdims } => pool::reduce_mean(&ins[0], axes, *keepdims),
            Op::Reshape { shape } => layout::reshape(&ins[0], shape),
            Op::Transpose { perm } => layout::transpose(&ins[0], perm),
            Op::Concat { axis } => layout::concat(&ins, *axis),
            Op::Pad { pads, value } => layout::pad(&ins[0], pads, *value),
            Op::Resize(r) => layout::resize(r, &ins[0], out_shape),
        };
        r.map(|a| (a, false))
    }
}

/// A borrowed array (an activation or a constant).
pub(crate) struct ArrayRef<'a> {
    pub shape: &'a [usize],
    pub data: &'a [f32],
}
