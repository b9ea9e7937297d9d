//! The reference backend: FP32 execution, and quantized execution that applies QNN's quantization at every
//! tensor QNN materialises. MAC ops (Conv, Gemm, MatMul) run on integer codes with exact accumulation (i32
//! on the int8 GEMM for long a8w8 sums, f32 where the bound K·max|a|·max|w| < 2²⁴ proves it exact, f64
//! otherwise), so the only rounding is the final requantization, as on the accelerator.
//!
//! `run` fuses a Conv/Gemm with the Relu/Clip QNN folds into it (and quantizes the result in the same pass);
//! `run_observed` executes node by node so every tensor can be observed. Both give the same outputs bit for
//! bit.

//!
//! Each op's kernel is in `ops/<op>.rs`; the loops op families share are in `conv`, `gemm`, `int8`,
//! `elementwise`, `pool` and `layout`, on the arithmetic in `numeric`, `geometry` and `requant`.

mod buffers;
mod conv;
mod elementwise;
mod gemm;
mod geometry;
mod int8;
mod layout;
mod madd16;
mod numeric;
mod ops;
mod pool;
mod requant;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{Array, ExecError};
use crate::ir::{Graph, Node, Op};
use crate::quant::{quantize_bias, roles, weight_axis, Encoding, QuantPlan, Role};
use buffers::Buffers;
pub use ops::KERNELS;
use ops::{kernel, Cx, Out, State};
use requant::{clamp, Epilogue, QuantMac};

/// The clamp an activation applies when QNN folds it into the op it reads.
fn activation_clamp(op: &Op) -> Option<(f32, f32)> {
    op.def().activation_clamp()
}

/// Elements of the largest activation of a batch that [`Reference::batch_cap`] keeps to (16 MB of f32):
/// EfficientNet-Lite0 then runs 3 samples at once. Its full curve took 658 s and peaked at 498 MB so; at 8
/// samples the agent took 100 MB more, and one at a time it took 782 s (and 528 MB).
pub const BATCH_ELEMENTS: usize = 4 << 20;

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
    /// quantized as [`QuantPlan::operand`] says.
    qconsts: HashMap<(usize, usize), Vec<f32>>,
    /// Per node: what its kernel prepared once (a small depthwise conv's weights for the flat kernel).
    state: Vec<Option<State>>,
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
        let mut macs = vec![None; graph.nodes.len()];
        if let Some(plan) = &plan {
            for (i, n) in graph.nodes.iter().enumerate() {
                let Some(wq) = &plan.weights[i] else { continue };
                // the input as the op reads it: widened to the width it computes at
                let enc = plan.encodings[n.inputs[0]]
                    .ok_or_else(|| node_err(n, "its input has no quantization encoding"))?
                    .at_bits(plan.compute[i]);
                let ws = &graph.tensors[n.inputs[1]].shape;
                let cout = ws[weight_axis(&n.op)];
                let k = ws.iter().product::<usize>() / cout;
                let bias_f = n
                    .inputs
                    .get(2)
                    .and_then(|&b| graph.const_data(b))
                    .map(|b| b.to_vec())
                    .unwrap_or(vec![0.0; cout]);
                let (bcodes, bscales) = quantize_bias(&bias_f, enc.scale, wq);
                let wmax = wq.codes.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
                let exact_f32 = (k as f64) * max_abs_int(&enc) * wmax < (1u64 << 24) as f64;
                macs[i] = Some(QuantMac::new(
                    wq.codes.clone(),
                    (0..cout)
                        .map(|c| enc.scale as f64 * wq.scale(c) as f64)
                        .collect(),
                    bcodes
                        .iter()
                        .zip(&bscales)
                        .map(|(&q, &s)| q as f64 * s as f64)
                        .collect(),
                    !exact_f32,
                    wq.bits == 8 && enc.bits == 8,
                ));
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
        // only where nothing stands between them: a Convert (a width change) ends the fusion
        let act_reads_sum = match &plan {
            Some(p) => p.clamp_reads_exact(&graph),
            None => vec![false; graph.nodes.len()],
        };
        let fused_act = graph
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let fusable = n.op.has_weights()
                    && tensor_roles[n.output] == Role::Fused
                    && !graph.outputs.contains(&n.output);
                let act = *consumers[n.output].first()?;
                ((fusable || act_reads_sum[i]) && activation_clamp(&graph.nodes[act].op).is_some())
                    .then_some(act)
            })
            .collect::<Vec<_>>();
        let mut as_codes = vec![false; graph.tensors.len()];
        if let Some(p) = &plan {
            let is_qmac = |j: usize| graph.nodes[j].op.has_weights() && macs[j].is_some();
            for i in (0..graph.nodes.len()).filter(|&i| is_qmac(i)) {
                let t = fused_act[i].map_or(graph.nodes[i].output, |a| graph.nodes[a].output);
                let readers = &consumers[t];
                // the codes are those of t's own encoding: written at its width, read at it
                let Some(bits) = p.encodings[t].map(|e| e.bits) else {
                    continue;
                };
                as_codes[t] = p.roles[t] == Role::Own
                    && p.compute[i] == bits
                    && !graph.outputs.contains(&t)
                    && !readers.is_empty()
                    && readers.iter().all(|&j| {
                        is_qmac(j)
                            && p.compute[j] == bits
                            && graph.nodes[j].inputs[0] == t
                            && !graph.nodes[j].inputs[1..].contains(&t)
                    });
            }
        }
        let mut qconsts = HashMap::new();
        if let Some(p) = &plan {
            for (i, n) in graph.nodes.iter().enumerate() {
                // constants are stored at the width the op computes at
                let bits = p.compute[i];
                for (k, &t) in n.inputs.iter().enumerate() {
                    let Some(d) = graph.const_data(t) else {
                        continue;
                    };
                    if let Some(e) = p.operand(&graph, n, k, bits) {
                        qconsts.insert((i, k), d.iter().map(|&v| e.fake(v)).collect());
                    }
                }
            }
        }
        let state = graph
            .nodes
            .iter()
            .zip(&macs)
            .map(|(n, mac)| kernel(&n.op).prepare(&graph, n, mac.as_ref()))
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
            state,
            buffers: Mutex::new(Buffers::default()),
        })
    }

    /// The most samples a run of many takes at once: as many as keep the largest activation within
    /// [`BATCH_ELEMENTS`] (at least one). An ImageNet model's early activations are megabytes per sample: 32
    /// of them at once took the agent past a gigabyte while tuning EfficientNet-Lite0, and ran slower.
    pub fn batch_cap(&self) -> usize {
        let g = &*self.graph;
        let largest = g
            .tensors
            .iter()
            .filter(|t| !t.is_const())
            .map(|t| t.shape.iter().product::<usize>())
            .max()
            .unwrap_or(1);
        (BATCH_ELEMENTS / largest.max(1)).max(1)
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Runs a batch; returns the graph outputs.
    pub fn run(&self, input: &[Array]) -> Result<Vec<Array>, ExecError> {
        self.execute(input, true, |_, _| {})
    }

    /// Runs a batch node by node, showing every activation (after quantization) to `observe` as it is
    /// computed.
    pub fn run_observed(
        &self,
        input: &[Array],
        observe: impl FnMut(usize, &Array),
    ) -> Result<Vec<Array>, ExecError> {
        self.execute(input, false, observe)
    }

    /// Runs a batch from node `from` on: `given` holds every tensor live there ([`Reference::live_at`]), as
    /// a run of a plan whose [`Reference::signatures`] agree with this one's before `from` computed them
    /// (`from` 0: a whole run, `given` unused). Before each node of `keep_at` (sorted) runs, `keep` is
    /// shown the tensors live there. Returns the graph outputs, the same as [`Reference::run`]'s.
    pub fn run_from(
        &self,
        input: &[Array],
        from: usize,
        given: &dyn Fn(usize) -> Option<Array>,
        keep_at: &[usize],
        keep: &mut dyn FnMut(usize, &Array),
    ) -> Result<Vec<Array>, ExecError> {
        let resume = Resume {
            from,
            given,
            keep_at,
            keep,
        };
        self.execute_from(input, true, |_, _| {}, resume)
    }

    fn execute(
        &self,
        input: &[Array],
        fuse: bool,
        observe: impl FnMut(usize, &Array),
    ) -> Result<Vec<Array>, ExecError> {
        let resume = Resume {
            from: 0,
            given: &|_| None,
            keep_at: &[],
            keep: &mut |_, _| {},
        };
        self.execute_from(input, fuse, observe, resume)
    }

    fn execute_from(
        &self,
        input: &[Array],
        fuse: bool,
        mut observe: impl FnMut(usize, &Array),
        resume: Resume,
    ) -> Result<Vec<Array>, ExecError> {
        let g = &*self.graph;
        super::check_inputs(g, input)?;
        let mut bufs = std::mem::take(&mut *self.lock_buffers());
        let mut vals: Vec<Option<Array>> = vec![None; g.tensors.len()];
        if resume.from == 0 {
            for (&in_id, x) in g.inputs.iter().zip(input) {
                let mut x = x.clone();
                self.quantize(in_id, &mut x);
                observe(in_id, &x);
                vals[in_id] = Some(x);
            }
        } else {
            for t in self.live_at(resume.from) {
                let v = (resume.given)(t).ok_or_else(|| ExecError::Node {
                    node: g.tensors[t].name.clone(),
                    op: "resume",
                    msg: format!("no value to resume from node {}", resume.from),
                })?;
                vals[t] = Some(v);
            }
        }
        // what is live before the nodes up to `from` is given, not kept again
        let mut keep_at = resume
            .keep_at
            .iter()
            .filter(|&&c| c > resume.from)
            .peekable();
        let mut skip = vec![false; g.nodes.len()];
        for (i, n) in g.nodes.iter().enumerate().skip(resume.from) {
            if keep_at.next_if(|&&c| c == i).is_some() {
                for t in self.live_at(i) {
                    if let Some(v) = &vals[t] {
                        (resume.keep)(t, v);
                    }
                }
            }
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
                // the node whose width the result is rounded at
                let last = act.unwrap_or(i);
                let (mut y, quantized) = self.exec(i, n, fuse, act, out, &vals, &mut bufs)?;
                let mut observed = false;
                if quantized {
                    self.round(last, out, &mut y, true);
                } else {
                    if let Some((lo, hi)) = act.and_then(|a| activation_clamp(&g.nodes[a].op)) {
                        // an Add/Sub with its activation folded in
                        y.data.iter_mut().for_each(|v| *v = clamp(*v, lo, hi));
                    }
                    if !fuse && self.act_reads_sum[i] {
                        // node by node: only the activation reads this, and it reads the exact sum;
                        // what is observed is the sum rounded to its own encoding
                        let mut rounded = y.clone();
                        self.round(last, out, &mut rounded, false);
                        observe(out, &rounded);
                        observed = true;
                    } else {
                        self.round(last, out, &mut y, false);
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
        bufs.end_run();
        *self.lock_buffers() = bufs;
        Ok(outs)
    }

    /// Runs only the op that produces tensor `t` (with the op QNN fuses into it: a MAC op before its
    /// activation, an Add/Sub/Mul/Div whose exact result its activation reads), on inputs `feed` gives for
    /// that op's activation inputs (another backend's values of the same tensors, say), rounding as `run`
    /// does. How far another backend is from this, given its own inputs, is what that op adds.
    pub fn run_producer_of(
        &self,
        t: usize,
        feed: &dyn Fn(usize) -> Option<Array>,
    ) -> Result<Array, ExecError> {
        let g = &*self.graph;
        let producers = g.producers();
        let missing = |x: usize| ExecError::Node {
            node: g.tensors[x].name.clone(),
            op: "input",
            msg: "no value given for it".into(),
        };
        let p = producers[t].ok_or_else(|| missing(t))?;
        let folded_into = |i: usize| (self.fused_act[i] == Some(p)).then_some(i);
        let start = g.nodes[p]
            .inputs
            .iter()
            .filter_map(|&x| producers[x])
            .find_map(folded_into)
            .unwrap_or(p);
        let n = &g.nodes[start];
        let act = (start != p).then_some(p);
        let mut vals: Vec<Option<Array>> = vec![None; g.tensors.len()];
        for &x in &n.inputs {
            if !g.tensors[x].is_const() {
                vals[x] = Some(feed(x).ok_or_else(|| missing(x))?);
            }
        }
        let mut bufs = Buffers::default();
        let (mut y, quantized) = self.exec(start, n, false, act, t, &vals, &mut bufs)?;
        if quantized {
            self.round(p, t, &mut y, true);
        } else {
            if let Some((lo, hi)) = act.and_then(|a| activation_clamp(&g.nodes[a].op)) {
                y.data.iter_mut().for_each(|v| *v = clamp(*v, lo, hi));
            }
            self.round(p, t, &mut y, false);
        }
        Ok(y)
    }

    /// The activations live before node `at` runs: made by a node before it (or graph inputs) and read by it
    /// or a later node, or graph outputs.
    pub fn live_at(&self, at: usize) -> Vec<usize> {
        let g = &*self.graph;
        let mut live: Vec<usize> = g
            .inputs
            .iter()
            .copied()
            .chain(g.nodes[..at].iter().map(|n| n.output))
            .filter(|&t| !g.tensors[t].is_const() && self.last_use[t] >= at)
            .collect();
        live.sort_unstable();
        live.dedup();
        live
    }

    /// Per node: whether a run may start there, that is, no op before it fuses an activation at or after it
    /// (in any plan).
    pub fn can_start_at(&self) -> Vec<bool> {
        let g = &*self.graph;
        let consumers = g.consumers();
        let mut ok = vec![true; g.nodes.len()];
        for (j, n) in g.nodes.iter().enumerate() {
            if let Some(&a) = consumers[n.output].first() {
                if activation_clamp(&g.nodes[a].op).is_some() {
                    ok[j + 1..=a].iter_mut().for_each(|v| *v = false);
                }
            }
        }
        ok
    }

    /// Per node, a hash of everything that decides its result given its inputs: the width it computes at,
    /// the encodings it reads and writes, its weights' scales, what `run` fuses into it and which tensors it
    /// keeps as codes; first, one for the graph inputs' encodings. Two plans whose signatures agree up to
    /// node `i` compute the same values before `i`. None in FP32 (nothing to compare).
    pub fn signatures(&self) -> Option<Vec<u64>> {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let p = self.plan.as_ref()?;
        let g = &*self.graph;
        let tensor = |h: &mut DefaultHasher, t: usize| {
            p.encodings[t]
                .map(|e| (e.bits, e.scale.to_bits(), e.offset))
                .hash(h);
            self.as_codes[t].hash(h);
        };
        let mut sigs = Vec::with_capacity(g.nodes.len() + 1);
        let mut h = DefaultHasher::new();
        g.inputs.iter().for_each(|&t| tensor(&mut h, t));
        sigs.push(h.finish());
        for i in 0..g.nodes.len() {
            let mut h = DefaultHasher::new();
            for j in std::iter::once(i).chain(self.fused_act[i]) {
                let n = &g.nodes[j];
                p.compute[j].hash(&mut h);
                n.inputs.iter().for_each(|&t| tensor(&mut h, t));
                tensor(&mut h, n.output);
            }
            (self.fused_act[i], self.act_reads_sum[i]).hash(&mut h);
            if let Some(w) = &p.weights[i] {
                (w.bits, w.axis).hash(&mut h);
                w.scales.iter().for_each(|s| s.to_bits().hash(&mut h));
            }
            sigs.push(h.finish());
        }
        Some(sigs)
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

    /// The width node `i` computes at (0 in FP32: no rounding).
    fn compute_bits(&self, i: usize) -> u8 {
        self.plan.as_ref().map_or(0, |p| p.compute[i])
    }

    /// Rounds node `i`'s result, tensor `t`, as the HTP graph does: to `t`'s range at the width the node
    /// computes at (unless the kernel did: `at_width`), then, where `t` is kept narrower, to its own
    /// encoding (the Convert after the node).
    fn round(&self, i: usize, t: usize, a: &mut Array, at_width: bool) {
        let Some(e) = self.own_encoding(t) else {
            return;
        };
        let c = self.compute_bits(i);
        if c > e.bits {
            if !at_width {
                e.at_bits(c).fake_slice(&mut a.data);
            }
            e.fake_slice(&mut a.data);
        } else if !at_width {
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
        let c = self.compute_bits(act.unwrap_or(i));
        let epi = Epilogue {
            clamp: act.and_then(|a| activation_clamp(&self.graph.nodes[a].op)),
            // the result at the width the node computes at (narrowed after the kernel where it differs);
            // none node by node where the Relu/Clip after it reads its exact result
            quant: (fuse || !self.act_reads_sum[i])
                .then(|| self.own_encoding(out).map(|e| e.at_bits(c)))
                .flatten(),
            codes: fuse && self.as_codes[out],
        };
        let mut ins: Vec<ArrayRef> = n
            .inputs
            .iter()
            .map(|&t| self.input(vals, t))
            .collect::<Result<_, _>>()
            .map_err(|m| node_err(n, m))?;
        for (k, a) in ins.iter_mut().enumerate() {
            if let Some(d) = self.qconsts.get(&(i, k)) {
                a.data = d;
            }
        }
        let encs = n
            .inputs
            .iter()
            .map(|&t| {
                // as the node reads it: widened to the width it computes at
                let e = self.plan.as_ref().and_then(|p| p.encodings[t])?;
                let e = e.at_bits(self.compute_bits(i).max(e.bits));
                // an input kept as codes is on the grid of scale 1
                Some(if fuse && self.as_codes[t] {
                    Encoding { scale: 1.0, ..e }
                } else {
                    e
                })
            })
            .collect();
        let cx = Cx {
            ins,
            encs,
            out_shape: &self.graph.tensors[n.output].shape,
            epi,
            mac: self.macs[i].as_ref(),
            state: self.state[i].as_ref(),
            bufs,
        };
        match kernel(&n.op).run(cx) {
            Ok(Out::Done(y)) => Ok((y, true)),
            Ok(Out::Real(y)) => Ok((y, false)),
            Err(m) => Err(node_err(n, m)),
        }
    }
}

/// Where a run starts, and what it keeps on its way: see [`Reference::run_from`].
struct Resume<'a> {
    from: usize,
    given: &'a dyn Fn(usize) -> Option<Array>,
    keep_at: &'a [usize],
    keep: &'a mut dyn FnMut(usize, &Array),
}

/// A borrowed array (an activation or a constant).
pub(crate) struct ArrayRef<'a> {
    pub shape: &'a [usize],
    pub data: &'a [f32],
}
