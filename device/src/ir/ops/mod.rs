//! The operations of the IR, one file per op. Each file holds the op's attributes and its facts
//! ([`OpDef`]): output shape, whether it multiplies and accumulates, whether it only moves values, a fixed
//! output range, what it fuses with and how its constant operands are stored. Every question about an op
//! ("is this a MAC op?") reads the one answer its file gives.
//!
//! ONNX ops that only move data or that fold at import (Identity, Dropout, Flatten, Squeeze, Unsqueeze,
//! BatchNormalization, shape subgraphs) have no op of their own.
//!
//! Adding an op: a file here, its `mod` line and one entry in the [`ops!`] list below (docs/adding-an-op.md
//! lists the other layers).

use serde::{Deserialize, Serialize};

/// Declares an element-wise op of two inputs with numpy broadcasting (either may be a constant of any
/// broadcastable shape); `act_reads_exact: true` when HTP fuses a lone Relu/Clip reader into it.
macro_rules! binary_op {
    ($name:ident, act_reads_exact: $exact:expr) => {
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        pub struct $name;

        impl $crate::ir::OpDef for $name {
            fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
                super::binary_shape(ins)
            }

            fn act_reads_exact(&self) -> bool {
                $exact
            }
        }
    };
}

/// Declares an op with a boolean output ([`OpDef::logical`]), without attributes or with one field
/// (`Compare { op: Comparison }`), its output shape given by `$shape` (`binary_shape`, `same_shape`); with
/// `Exact` after it, an op of booleans whose constant inputs are kept exact ([`Operand::Exact`]).
macro_rules! logical_op {
    ($name:ident, $shape:ident) => {
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        pub struct $name;

        logical_op!(@def $name, $shape);
    };
    ($name:ident { $field:ident: $ty:ty }, $shape:ident $(, $exact:ident)?) => {
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        pub struct $name {
            pub $field: $ty,
        }

        logical_op!(@def $name, $shape $(, $exact)?);
    };
    (@def $name:ident, $shape:ident $(, $exact:ident)?) => {
        impl $crate::ir::OpDef for $name {
            fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
                super::$shape(ins)
            }

            fn logical(&self) -> bool {
                true
            }

            $(
            /// Its inputs are booleans: a constant one is kept exact.
            fn operand(&self, _k: usize, _bits: u8) -> $crate::ir::Operand {
                $crate::ir::Operand::$exact
            }
            )?
        }
    };
}

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
mod pool;
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

pub use cast::CastTo;
pub use compare::Comparison;
pub use logic::Connective;
pub use pool::Pool;
pub use reduce::ReduceOp;
pub use resize::{CoordMode, NearestMode, ResizeMode};

/// How an op multiplies and accumulates (AIMET's MAC ops, which bit-ops count).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mac {
    /// Not a MAC op.
    None,
    /// Input 0 times constant weights (input 1, output channels along `out_axis`), plus an optional bias
    /// (input 2): the config chooses the weights' precision with the input's group.
    Weights { out_axis: usize },
    /// The product of two activations (inputs 0 and 1).
    Activations,
}

/// A fixed output encoding range, independent of calibration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FixedRange {
    /// `[0, 1)`: scale 2⁻ᵇ, offset 0.
    Unit,
    /// `[-1, 1)`: scale 2¹⁻ᵇ, offset −2ᵇ⁻¹.
    SignedUnit,
}

/// How a constant input of an op is stored when the op is quantized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    /// Quantized over its own range (with 0) at the op's output width, like an activation.
    MinMax,
    /// Symmetric at the op's output width (offset −2ᵇ⁻¹).
    Symmetric,
    /// An int32 bias at scale input × operand 1.
    Int32Bias,
    /// Not an operand of this kind: weights and biases of a MAC op, quantized with their own rules.
    Weights,
    /// Kept exactly as it is: a constant boolean (a causal mask's condition), stored as booleans.
    Exact,
}

/// The facts of one op, in its own file.
pub trait OpDef {
    /// The output shape at batch 1 for these input shapes.
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String>;

    /// Whether and how the op multiplies and accumulates.
    fn mac(&self) -> Mac {
        Mac::None
    }

    /// Multiply-accumulates per sample, for these input shapes and this output shape.
    fn macs(&self, _ins: &[&[usize]], _out: &[usize]) -> u64 {
        0
    }

    /// The output carries input 0's encoding unchanged: the op only moves or selects values, so nothing is
    /// requantized (QNN and its converters share the encoding across it).
    fn passthrough(&self) -> bool {
        false
    }

    /// The output's encoding range when it is fixed by the op, not by calibration.
    fn fixed_range(&self) -> Option<FixedRange> {
        None
    }

    /// The clamp an activation applies, when QNN folds it into the op that produces its input (a MAC op, or
    /// one that [`OpDef::act_reads_exact`]).
    fn activation_clamp(&self) -> Option<(f32, f32)> {
        None
    }

    /// A lone Relu/Clip reading this op's output clamps the op's exact result, not the result rounded to the
    /// op's own encoding (HTP fuses the pair); the op's encoding is still materialised.
    fn act_reads_exact(&self) -> bool {
        false
    }

    /// The output's encoding covers constant input `k`'s whole range, not a calibrated one: a lookup into a
    /// table, whose every entry stays representable.
    fn const_range(&self) -> Option<usize> {
        None
    }

    /// The output holds booleans (0 or 1): exact, never quantized, read only as Where's condition, by Not, And
    /// or Or, through a Cast to float, or moved by a pass-through op (QNN's BOOL_8).
    fn logical(&self) -> bool {
        false
    }

    /// How constant input `k` is stored when the op's output has `bits` (a MAC op's weights and bias by their
    /// own rules, anything else over its own range).
    fn operand(&self, _k: usize, _bits: u8) -> Operand {
        match self.mac() {
            Mac::Weights { .. } => Operand::Weights,
            _ => Operand::MinMax,
        }
    }
}

macro_rules! ops {
    ($($op:ident($module:ident)),* $(,)?) => {
        $(pub use $module::$op;)*

        /// One operation of the IR: its kind and attributes.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        pub enum Op {
            $($op($op),)*
        }

        /// The kind of an op, without its attributes.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum OpKind {
            $($op,)*
        }

        impl OpKind {
            /// Every op of the IR.
            pub const ALL: &'static [OpKind] = &[$(OpKind::$op,)*];

            /// The op's name as the user knows it (ONNX's, where ONNX has the op).
            pub fn name(self) -> &'static str {
                match self {
                    $(OpKind::$op => stringify!($op),)*
                }
            }
        }

        impl Op {
            pub fn kind(&self) -> OpKind {
                match self {
                    $(Op::$op(_) => OpKind::$op,)*
                }
            }

            /// The op's facts.
            pub fn def(&self) -> &dyn OpDef {
                match self {
                    $(Op::$op(o) => o,)*
                }
            }
        }

        $(impl From<$op> for Op {
            fn from(o: $op) -> Op {
                Op::$op(o)
            }
        })*
    };
}

// The registration list: one entry per op (the `mod` line above names its file).
ops! {
    Conv(conv),
    ConvTranspose(conv_transpose),
    Gemm(gemm),
    MatMul(matmul),
    Add(add),
    Sub(sub),
    Mul(mul),
    Div(div),
    Min(min),
    Max(max),
    ScaleShift(scale_shift),
    Relu(relu),
    Clip(clip),
    LeakyRelu(leaky_relu),
    Sigmoid(sigmoid),
    HardSigmoid(hard_sigmoid),
    HardSwish(hard_swish),
    Tanh(tanh),
    Softmax(softmax),
    MaxPool(max_pool),
    AveragePool(average_pool),
    GlobalAveragePool(global_average_pool),
    Reduce(reduce),
    Reshape(reshape),
    Transpose(transpose),
    Concat(concat),
    Pad(pad),
    Resize(resize),
    Neg(neg),
    Abs(abs),
    Sqrt(sqrt),
    Exp(exp),
    Erf(erf),
    Gelu(gelu),
    Pow(pow),
    LayerNorm(layer_norm),
    InstanceNorm(instance_norm),
    Slice(slice),
    DepthSpace(depth_space),
    Tile(tile),
    Gather(gather),
    Equal(equal),
    Compare(compare),
    Logic(logic),
    Not(not),
    Cast(cast),
    Where(select),
}

impl Op {
    /// The op's name as the user knows it from ONNX (for messages).
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// Ops with weights whose precision a config chooses (Conv, Gemm).
    pub fn has_weights(&self) -> bool {
        matches!(self.def().mac(), Mac::Weights { .. })
    }
}

/// The input and weight of a 2-D MAC op (both rank 4) and its optional bias, which must hold one value per
/// output channel (the weight's axis `cout_axis`).
fn conv_operands<'a>(
    ins: &[&'a [usize]],
    cout_axis: usize,
) -> Result<(&'a [usize], &'a [usize]), String> {
    need(ins, 2)?;
    let (x, w) = (ins[0], ins[1]);
    rank4(x, "input")?;
    rank4(w, "weight")?;
    if ins.len() > 2 && ins[2] != [w[cout_axis]] {
        return Err(format!(
            "bias shape {:?} does not match {} output channels",
            ins[2], w[cout_axis]
        ));
    }
    Ok((x, w))
}

/// At least `n` inputs.
pub(crate) fn need(ins: &[&[usize]], n: usize) -> Result<(), String> {
    if ins.len() < n {
        return Err(format!("expects {n} inputs, found {}", ins.len()));
    }
    Ok(())
}

/// Rank 4 (NCHW).
pub(crate) fn rank4(s: &[usize], what: &str) -> Result<(), String> {
    if s.len() != 4 {
        return Err(format!("{what} must be rank 4 (NCHW), found shape {s:?}"));
    }
    Ok(())
}

/// The shape of input 0, for ops that keep it.
pub(crate) fn same_shape(ins: &[&[usize]]) -> Result<Vec<usize>, String> {
    need(ins, 1)?;
    Ok(ins[0].to_vec())
}

/// The numpy-broadcast shape of inputs 0 and 1, for element-wise binary ops.
pub(crate) fn binary_shape(ins: &[&[usize]]) -> Result<Vec<usize>, String> {
    need(ins, 2)?;
    super::shape::broadcast(ins[0], ins[1])
}
