//! Compare: whether the value input 0 stands for is greater than, at least, less than or at most input 1's,
//! element by element with numpy broadcasting (a constant operand of any broadcastable shape). The
//! result is boolean, as Equal's ([`super::OpDef::logical`]). Comparisons of constants (a causal mask's) fold
//! at import.

use serde::{Deserialize, Serialize};

/// Which comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

impl Comparison {
    /// The ONNX op.
    pub fn onnx(self) -> &'static str {
        match self {
            Comparison::Greater => "Greater",
            Comparison::GreaterOrEqual => "GreaterOrEqual",
            Comparison::Less => "Less",
            Comparison::LessOrEqual => "LessOrEqual",
        }
    }

    /// `a` compared with `b`.
    pub fn holds(self, a: f32, b: f32) -> bool {
        match self {
            Comparison::Greater => a > b,
            Comparison::GreaterOrEqual => a >= b,
            Comparison::Less => a < b,
            Comparison::LessOrEqual => a <= b,
        }
    }
}

logical_op!(Compare { op: Comparison }, binary_shape);
