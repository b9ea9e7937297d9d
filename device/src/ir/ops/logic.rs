//! Logic: And, Or or Xor of two boolean tensors, element by element with numpy broadcasting (a padding mask and a
//! causal one, combined). The result is boolean ([`super::OpDef::logical`]).

use serde::{Deserialize, Serialize};

/// Which connective.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Connective {
    And,
    Or,
    Xor,
}

impl Connective {
    /// The ONNX op.
    pub fn onnx(self) -> &'static str {
        match self {
            Connective::And => "And",
            Connective::Or => "Or",
            Connective::Xor => "Xor",
        }
    }

    /// The connective of ONNX op `op`.
    pub fn from_onnx(op: &str) -> Option<Connective> {
        [Connective::And, Connective::Or, Connective::Xor]
            .into_iter()
            .find(|c| c.onnx() == op)
    }

    pub fn holds(self, a: bool, b: bool) -> bool {
        match self {
            Connective::And => a && b,
            Connective::Or => a || b,
            Connective::Xor => a != b,
        }
    }
}

logical_op!(Logic { op: Connective }, binary_shape, Exact);
