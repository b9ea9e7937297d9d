//! The operations of the IR. ONNX ops that only move data or that fold at import (Identity, Dropout,
//! Flatten, Squeeze, Unsqueeze, BatchNormalization, shape subgraphs) have no variant of their own.

use serde::{Deserialize, Serialize};

/// 2-D convolution over NCHW. Inputs: x, weight `[cout, cin/group, kh, kw]`, optional bias `[cout]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conv {
    pub strides: [usize; 2],
    /// top, left, bottom, right
    pub pads: [usize; 4],
    pub dilations: [usize; 2],
    pub group: usize,
}

/// Max or average pooling over NCHW.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    /// top, left, bottom, right
    pub pads: [usize; 4],
    pub ceil_mode: bool,
    /// AveragePool only: padded cells count in the divisor.
    pub count_include_pad: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResizeMode {
    Nearest,
    Linear,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CoordMode {
    HalfPixel,
    PytorchHalfPixel,
    Asymmetric,
    AlignCorners,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NearestMode {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

/// Resize of the two spatial dimensions of an NCHW tensor to the output tensor's shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resize {
    pub mode: ResizeMode,
    pub coord: CoordMode,
    pub nearest: NearestMode,
    /// Output spatial size when given by scales: out = floor(in * scale).
    pub scales: [f32; 2],
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    Conv(Conv),
    /// Fully connected: y = x · Wᵀ + b over the last axis. Inputs: x `[..., K]`, W `[N, K]`, optional b `[N]`.
    /// ONNX Gemm (any transB, alpha, beta) and MatMul with a constant second input import as this.
    Gemm,
    /// Matrix product of two activations, with numpy broadcasting of leading dims.
    MatMul,
    Add,
    Sub,
    Mul,
    Div,
    /// Per-channel y = x · scale + shift on axis 1 (a BatchNormalization that could not fold). Inputs: x,
    /// scale `[C]`, shift `[C]`.
    ScaleShift,
    Relu,
    Clip {
        min: f32,
        max: f32,
    },
    LeakyRelu {
        alpha: f32,
    },
    Sigmoid,
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    HardSwish,
    Tanh,
    Softmax {
        axis: usize,
    },
    MaxPool(Pool),
    AveragePool(Pool),
    GlobalAveragePool,
    ReduceMean {
        axes: Vec<usize>,
        keepdims: bool,
    },
    /// To the output tensor's shape, with dimension 0 taken from the input's batch.
    Reshape {
        shape: Vec<usize>,
    },
    Transpose {
        perm: Vec<usize>,
    },
    Concat {
        axis: usize,
    },
    /// Constant padding; pads as ONNX orders them: all begins, then all ends.
    Pad {
        pads: Vec<usize>,
        value: f32,
    },
    Resize(Resize),
}

impl Op {
    /// The op's name as the user knows it from ONNX (for messages).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Conv(_) => "Conv",
            Op::Gemm => "Gemm",
            Op::MatMul => "MatMul",
            Op::Add => "Add",
            Op::Sub => "Sub",
            Op::Mul => "Mul",
            Op::Div => "Div",
            Op::ScaleShift => "ScaleShift",
            Op::Relu => "Relu",
            Op::Clip { .. } => "Clip",
            Op::LeakyRelu { .. } => "LeakyRelu",
            Op::Sigmoid => "Sigmoid",
            Op::HardSigmoid { .. } => "HardSigmoid",
            Op::HardSwish => "HardSwish",
            Op::Tanh => "Tanh",
            Op::Softmax { .. } => "Softmax",
            Op::MaxPool(_) => "MaxPool",
            Op::AveragePool(_) => "AveragePool",
            Op::GlobalAveragePool => "GlobalAveragePool",
            Op::ReduceMean { .. } => "ReduceMean",
            Op::Reshape { .. } => "Reshape",
            Op::Transpose { .. } => "Transpose",
            Op::Concat { .. } => "Concat",
            Op::Pad { .. } => "Pad",
            Op::Resize(_) => "Resize",
        }
    }

    /// Ops with weights whose precision a config chooses (AIMET's MAC ops).
    pub fn has_weights(&self) -> bool {
        matches!(self, Op::Conv(_) | Op::Gemm)
    }

    /// Ops whose output carries its input's quantization encoding unchanged: they only move or select values,
    /// so no requantization happens (QNN and its converters share the encoding across them).
    pub fn is_passthrough(&self) -> bool {
        matches!(
            self,
            Op::Reshape { .. } | Op::Transpose { .. } | Op::MaxPool(_) | Op::Pad { .. }
        )
    }

    /// Activations QNN folds into a preceding Conv/Gemm/MatMul (one output encoding for the pair).
    pub fn is_fusable_activation(&self) -> bool {
        matches!(self, Op::Relu | Op::Clip { .. })
    }
}
