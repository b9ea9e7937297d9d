//! The reference kernel of each op, one file per op, named after it. A file is the op's kernel, or a thin
//! entry that calls the kernel its family shares (conv, gemm, elementwise, pool, layout) with the op's
//! attributes: the shared loops stay in the family, the op file delegates.
//!
//! Adding an op: a file here, its `mod` line and one entry in its registration list (a missing entry does
//! not compile: the dispatch matches every op).

use super::buffers::Buffers;
use super::conv::FlatDw;
use super::requant::{Epilogue, QuantMac};
use super::ArrayRef;
use crate::backend::Array;
use crate::ir::{Graph, Node};
use crate::quant::Encoding;

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

/// What a kernel gets: its inputs (constant operands already on the grid QNN stores them on), the encodings
/// they carry, and what it must apply to its result.
pub(crate) struct Cx<'a> {
    pub ins: Vec<ArrayRef<'a>>,
    /// Per input: its encoding when quantized (scale 1 for an input kept as integer codes), else None.
    pub encs: Vec<Option<Encoding>>,
    /// The output tensor's shape at batch 1.
    pub out_shape: &'a [usize],
    /// What follows the op: a fused Relu/Clip, the output's quantization. A kernel that applies it returns
    /// [`Out::Done`]; one that does not returns [`Out::Real`] and the executor quantizes.
    pub epi: Epilogue,
    /// The integer-domain parameters of a quantized op with weights.
    pub mac: Option<&'a QuantMac>,
    /// State the op prepared once for the model ([`Kernel::prepare`]).
    pub state: Option<&'a State>,
    pub bufs: &'a mut Buffers,
}

impl Cx<'_> {
    /// The encoding input `k` is quantized with (an error in FP32 execution).
    pub fn need_enc(&self, k: usize) -> Result<Encoding, String> {
        self.encs
            .get(k)
            .copied()
            .flatten()
            .ok_or_else(|| "its input has no quantization encoding".to_string())
    }
}

/// A kernel's result.
pub(crate) enum Out {
    /// The epilogue is applied.
    Done(Array),
    /// The real-valued result; the executor applies the activation and the quantization.
    Real(Array),
}

/// What an op prepares once per model and reuses in every run.
pub(crate) enum State {
    /// A small depthwise conv's weights laid out for the flat kernel.
    FlatDepthwise(FlatDw),
    /// A ConvTranspose's weights as the stride-1 Conv's it equals.
    Flipped(conv_transpose::Flipped),
}

/// One op's reference kernel.
pub(crate) trait Kernel {
    fn run(&self, cx: Cx) -> Result<Out, String>;

    /// State made once for node `n` of `g` (its quantized weights in `mac`, None in FP32).
    fn prepare(&self, _g: &Graph, _n: &Node, _mac: Option<&QuantMac>) -> Option<State> {
        None
    }
}

// The registration list: one entry per op (the `mod` line above names its file).
register_ops! {
    pub(crate) fn kernel -> dyn Kernel;
    pub const KERNELS;
    Conv, ConvTranspose, Gemm, MatMul, Add, Sub, Mul, Div, Min, Max, ScaleShift, Relu, Clip, LeakyRelu, Sigmoid, HardSigmoid,
    HardSwish, Tanh, Softmax, MaxPool, AveragePool, GlobalAveragePool, Reduce, Reshape, Transpose, Concat,
    Pad, Resize, Neg, Abs, Sqrt, Exp, Erf, Gelu, Pow,
    LayerNorm, InstanceNorm, Slice, DepthSpace, Tile, Gather, Equal, Compare, Logic, Not, Cast, Where,
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::backend::reference::requant::Epilogue;
    use crate::ir::Op;

    /// The FP32 result of `op` on one input of `shape`, the output's shape being `out_shape`.
    pub(crate) fn run_fp32(op: &Op, ins: &[(&[usize], &[f32])], out_shape: &[usize]) -> Array {
        let cx = Cx {
            ins: ins
                .iter()
                .map(|&(shape, data)| ArrayRef { shape, data })
                .collect(),
            encs: vec![None; ins.len()],
            out_shape,
            epi: Epilogue::NONE,
            mac: None,
            state: None,
            bufs: &mut Buffers::default(),
        };
        match kernel(op).run(cx) {
            Ok(Out::Done(a) | Out::Real(a)) => a,
            Err(e) => panic!("{}: {e}", op.name()),
        }
    }
}
