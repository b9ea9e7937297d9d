//! Each op's QNN lowering, one file per op, named after it: it builds the op's nodes through [`NodeCx`], or
//! returns [`QnnBackendError::Unsupported`] saying why (then the search prunes the config).
//!
//! Adding an op: a file here, its `mod` line and one entry in its registration list (a missing entry does
//! not compile: the dispatch matches every op).

use qnn_sys::{ParamSpec, Quant, TensorRef, TensorSpec, DATATYPE_BOOL_8, DATATYPE_UINT_8};

use super::builder::{Builder, WeightLayout};
use super::{qdims, unsupported, QnnBackendError, Result};
use crate::ir::Node;
use crate::quant::{Encoding, Role};

mod abs;
mod add;
mod average_pool;
mod cast;
mod clip;
mod compare;
mod concat;
mod conv;
mod conv_transpose;
mod depth_space;
mod div;
mod equal;
mod erf;
mod exp;
mod gather;
mod gelu;
mod gemm;
mod global_average_pool;
mod hard_sigmoid;
mod hard_swish;
mod instance_norm;
mod layer_norm;
mod leaky_relu;
mod logic;
mod matmul;
mod max;
mod max_pool;
mod min;
mod mul;
mod neg;
mod not;
mod pad;
mod pow;
mod reduce;
mod relu;
mod reshape;
mod resize;
mod scale_shift;
mod select;
mod sigmoid;
mod slice;
mod softmax;
mod sqrt;
mod sub;
mod tanh;
mod tile;
mod transpose;

/// The NCHW axis each NHWC axis holds.
pub(super) const NHWC_ORDER: [usize; 4] = [0, 2, 3, 1];
/// Where each NCHW axis sits in NHWC storage.
pub(super) const NCHW_IN_NHWC: [usize; 4] = [0, 3, 1, 2];

/// One op's lowering to QNN.
pub(super) trait Lower {
    fn lower(&self, cx: &mut NodeCx) -> Result<()>;
}

/// The node being lowered and the graph it goes into.
pub(super) struct NodeCx<'c, 'a> {
    pub b: &'c mut Builder<'a>,
    /// The node's index.
    pub i: usize,
    pub n: &'a Node,
    /// The output's encoding (for a MAC op QNN folds a Relu/Clip into: the activation's); None for a boolean
    /// output.
    out_e: Option<Encoding>,
}

impl<'c, 'a> NodeCx<'c, 'a> {
    pub fn new(b: &'c mut Builder<'a>, i: usize, n: &'a Node, out_e: Option<Encoding>) -> Self {
        NodeCx { b, i, n, out_e }
    }

    /// The output's encoding (an error for a boolean output).
    pub fn out_e(&self) -> Result<Encoding> {
        self.out_e
            .ok_or_else(|| self.unsupported("a boolean output where the op writes a quantized one"))
    }

    /// Whether the node moves booleans: a pass-through op whose input 0 holds them, or a Concat of them
    /// ([`Node::writes_booleans`], but for the logical ops, which make them).
    pub fn moves_boolean(&self) -> bool {
        let (ints, integer) = (&self.b.ints, &self.b.g.integer);
        !self.n.op.def().logical()
            && self
                .n
                .writes_booleans(|t| ints.contains_key(&t) && !integer.contains(&t))
    }

    /// A boolean input: a BOOL_8 tensor an earlier op wrote, or a constant (a causal mask) as a static one.
    pub fn boolean(&mut self, k: usize) -> Result<TensorRef> {
        let t = self.n.inputs[k];
        if self.b.g.tensors[t].is_const() {
            let rank = self.rank();
            return self.b.constant_booleans(self.n, k, rank);
        }
        self.b.ints.get(&t).copied().ok_or_else(|| {
            let name = &self.b.g.tensors[t].name;
            self.unsupported(format!("input \"{name}\" is not a boolean tensor"))
        })
    }

    /// An intermediate tensor of `dims` holding what input 0 holds, for a node of the op's own lowering: on
    /// input 0's grid at the width the node computes at, or BOOL_8 where the op moves booleans.
    pub fn like_input(&mut self, what: &str, dims: &[u32]) -> Result<TensorRef> {
        if self.moves_boolean() {
            return self.plain(what, dims, DATATYPE_BOOL_8);
        }
        let name = self.b.fresh(what);
        let e = self.b.get(self.n.inputs[0], self.width())?.1;
        self.b.native(&name, dims, e, false)
    }

    /// A fresh native tensor of `dims` and unquantized `datatype` (BOOL_8, UINT_8).
    fn plain(&mut self, what: &str, dims: &[u32], datatype: u32) -> Result<TensorRef> {
        let name = self.b.fresh(what);
        let spec = TensorSpec::native(&name, datatype, dims, Quant::None);
        Ok(self.b.q.tensor(&spec)?)
    }

    /// [`NodeCx::emit`] for an op HTP moves UINT_8 through but not BOOL_8 (StridedSlice: the sets
    /// backendValidateOpConfig lists hold UINT_8 and no BOOL_8): a boolean input 0 goes through it as 0/1
    /// bytes between two Casts.
    pub fn emit_bytes_for_booleans(
        &mut self,
        op: &str,
        params: &[ParamSpec],
        ins: &[TensorRef],
    ) -> Result<()> {
        if !self.moves_boolean() {
            return self.emit(op, params, ins);
        }
        let n = self.n;
        let what = &self.b.g.tensors[n.output].name;
        let x = self.plain(
            &format!("{what}_in_bytes"),
            &qdims(self.in_shape(0), self.b.batch),
            DATATYPE_UINT_8,
        )?;
        let y = self.plain(
            &format!("{what}_bytes"),
            &qdims(self.out_shape(), self.b.batch),
            DATATYPE_UINT_8,
        )?;
        let cast = self.b.fresh(&format!("{}_to_bytes", n.name));
        self.b.q.node(&cast, "Cast", &[], &ins[..1], &[x])?;
        let mut moved = ins.to_vec();
        moved[0] = x;
        self.b.q.node(&n.name, op, params, &moved, &[y])?;
        let out = self.boolean_output()?;
        let cast = self.b.fresh(&format!("{}_to_booleans", n.name));
        self.b.q.node(&cast, "Cast", &[], &[y], &[out])?;
        self.b.ints.insert(n.output, out);
        Ok(())
    }

    /// The op's node writing a boolean output (BOOL_8), which later ops read through [`NodeCx::boolean`].
    pub fn emit_boolean(&mut self, op: &str, ins: &[TensorRef]) -> Result<()> {
        self.emit_boolean_with(op, &[], ins)
    }

    /// [`NodeCx::emit_boolean`] with `params`.
    fn emit_boolean_with(
        &mut self,
        op: &str,
        params: &[ParamSpec],
        ins: &[TensorRef],
    ) -> Result<()> {
        let n = self.n;
        let y = self.boolean_output()?;
        self.b.q.node(&n.name, op, params, ins, &[y])?;
        self.b.ints.insert(n.output, y);
        Ok(())
    }

    /// A BOOL_8 tensor for the node's output.
    fn boolean_output(&mut self) -> Result<TensorRef> {
        let name = &self.b.g.tensors[self.n.output].name;
        self.plain(
            name,
            &qdims(self.out_shape(), self.b.batch),
            DATATYPE_BOOL_8,
        )
    }

    /// The output's IR shape at batch 1.
    pub fn out_shape(&self) -> &'a [usize] {
        &self.b.g.tensors[self.n.output].shape
    }

    pub fn rank(&self) -> usize {
        self.out_shape().len()
    }

    /// The IR shape of input `k` at batch 1.
    pub fn in_shape(&self, k: usize) -> &'a [usize] {
        &self.b.g.tensors[self.n.inputs[k]].shape
    }

    pub fn unsupported(&self, reason: impl Into<String>) -> QnnBackendError {
        unsupported(self.n, reason)
    }

    /// The width the node computes at: the widest of its activation inputs and its output.
    pub fn width(&self) -> u8 {
        self.b.plan.compute[self.i]
    }

    /// Every input at the width the node computes at: activations (through a widening Convert where they
    /// are kept narrower), constants as static tensors stored as the op's operand rule says.
    pub fn inputs(&mut self) -> Result<Vec<TensorRef>> {
        self.inputs_from(0)
    }

    /// [`NodeCx::inputs`] from input `first` on.
    pub fn inputs_from(&mut self, first: usize) -> Result<Vec<TensorRef>> {
        let (n, bits, rank) = (self.n, self.width(), self.rank());
        let mut ins = Vec::with_capacity(n.inputs.len());
        for (k, &t) in n.inputs.iter().enumerate().skip(first) {
            if self.b.g.tensors[t].is_const() {
                ins.push(self.b.constant(n, k, rank, bits)?);
            } else if let Some(&b) = self.b.ints.get(&t) {
                // a boolean a pass-through op moves
                ins.push(b);
            } else {
                ins.push(self.b.get(t, bits)?.0);
            }
        }
        Ok(ins)
    }

    /// The op's node: `op` with `params` reading `ins`, writing its output over the output's range at the
    /// width it computes at (a pass-through op: in input 0's encoding), then rounding it to the output's own
    /// width where that is narrower.
    pub fn emit(&mut self, op: &str, params: &[ParamSpec], ins: &[TensorRef]) -> Result<()> {
        let n = self.n;
        if self.moves_boolean() {
            return self.emit_boolean_with(op, params, ins);
        }
        if n.op.def().passthrough() {
            let e = self.b.get(n.inputs[0], self.width())?.1;
            let y = self.output(e, true)?;
            self.b.q.node(&n.name, op, params, ins, &[y])?;
            self.b.put(n.output, y, e);
            return Ok(());
        }
        let wide = self.out_e()?.at_bits(self.width());
        self.write(op, params, ins, wide)
    }

    /// [`NodeCx::inputs`], then [`NodeCx::emit`]: an op that maps onto one QNN op.
    pub fn node(&mut self, op: &str, params: &[ParamSpec]) -> Result<()> {
        let ins = self.inputs()?;
        self.emit(op, params, &ins)
    }

    /// A MAC op with weights, at the width it computes at (its input widened to it where the input is
    /// narrower), with int32 biases at scale input × weight.
    pub fn mac(&mut self, op: &str, params: &[ParamSpec], layout: WeightLayout) -> Result<()> {
        let n = self.n;
        let wq = self.b.plan.weights[self.i]
            .as_ref()
            .ok_or_else(|| self.unsupported("no quantized weights"))?;
        let (x, xe) = self.b.get(n.inputs[0], self.width())?;
        if wq.bits == 16 && xe.bits == 8 {
            return Err(self.unsupported("a8w16: 16-bit weights need 16-bit activations on HTP"));
        }
        let w = self.b.weights(n, wq, layout)?;
        let bias = self.b.bias(n, wq, xe.scale)?;
        let wide = self.out_e()?.at_bits(xe.bits);
        let in_shape = self.in_shape(0).to_vec();
        if in_shape.len() == 3 {
            // [batch, tokens, features]: the op over batch × tokens rows, reshaped back after
            let rows = (self.b.batch * in_shape[1]) as u32;
            let out_f = *self.out_shape().last().unwrap_or(&1) as u32;
            let name = self.b.fresh("rows");
            let flat = self
                .b
                .native(&name, &[rows, in_shape[2] as u32], xe, false)?;
            let node = self.b.fresh("reshape");
            self.b.q.node(&node, "Reshape", &[], &[x], &[flat])?;
            let name = self.b.fresh("rows_out");
            let y = self.b.native(&name, &[rows, out_f], wide, false)?;
            let node = self.b.fresh(&n.name);
            self.b.q.node(&node, op, params, &[flat, w, bias], &[y])?;
            return self.write("Reshape", &[], &[y], wide);
        }
        self.write(op, params, &[x, w, bias], wide)
    }

    /// The node writing `wide`; where the output is kept narrower (a materialised tensor, not a MAC result
    /// folded into its activation), a Convert rounds it to the output's encoding.
    fn write(
        &mut self,
        op: &str,
        params: &[ParamSpec],
        ins: &[TensorRef],
        wide: Encoding,
    ) -> Result<()> {
        let n = self.n;
        let out_e = self.out_e()?;
        let narrow = wide.bits > out_e.bits && self.b.plan.roles[n.output] != Role::Fused;
        let y = self.output(wide, !narrow)?;
        self.b.q.node(&n.name, op, params, ins, &[y])?;
        if narrow {
            let kept = self.output(out_e, true)?;
            self.b.convert(y, kept)?;
            self.b.put(n.output, kept, out_e);
        } else {
            self.b.put(n.output, y, wide);
        }
        Ok(())
    }

    /// A fresh tensor for the node's output at encoding `e`; the graph reads it back when it is the graph
    /// output as kept.
    fn output(&mut self, e: Encoding, kept: bool) -> Result<TensorRef> {
        let out = self.n.output;
        let is_output = self.b.g.outputs.contains(&out);
        let name = self.b.fresh(&self.b.g.tensors[out].name);
        let dims = qdims(self.out_shape(), self.b.batch);
        self.b.native(&name, &dims, e, is_output && kept)
    }
}

/// A `[2]` UINT_32 parameter.
pub(super) fn pair(name: &'static str, v: [usize; 2]) -> ParamSpec {
    ParamSpec::U32Tensor(name, vec![2], vec![v[0] as u32, v[1] as u32])
}

/// IR pads (top, left, bottom, right) as QNN's `pad_amount` `[[top, bottom], [left, right]]`.
pub(super) fn pads(p: [usize; 4]) -> ParamSpec {
    ParamSpec::U32Tensor(
        "pad_amount",
        vec![2, 2],
        vec![p[0] as u32, p[2] as u32, p[1] as u32, p[3] as u32],
    )
}

// The registration list: one entry per op (the `mod` line above names its file).
register_ops! {
    pub(super) fn lowering -> dyn Lower;
    pub const LOWERINGS;
    Conv, ConvTranspose, Gemm, MatMul, Add, Sub, Mul, Div, Min, Max, ScaleShift, Relu, Clip, LeakyRelu, Sigmoid, HardSigmoid,
    HardSwish, Tanh, Softmax, MaxPool, AveragePool, GlobalAveragePool, Reduce, Reshape, Transpose, Concat,
    Pad, Resize, Neg, Abs, Sqrt, Exp, Erf, Gelu, Pow,
    LayerNorm, InstanceNorm, Slice, DepthSpace, Tile, Gather, Equal, Compare, Logic, Not, Cast, Where,
}

/// The window parameters PoolMax2d and PoolAvg2d share.
pub(super) fn pool_params(p: &crate::ir::Pool) -> Vec<ParamSpec> {
    vec![
        pair("filter_size", p.kernel),
        pair("stride", p.strides),
        pads(p.pads),
        ParamSpec::U32("rounding_mode", p.ceil_mode as u32),
    ]
}
