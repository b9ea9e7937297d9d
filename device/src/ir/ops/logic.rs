//! Logic: And or Or of two boolean tensors, element by element with numpy broadcasting (a padding mask and a
//! causal one, combined). The result is boolean ([`super::OpDef::logical`]).

use serde::{Deserialize, Serialize};

/// Which connective.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Connective {
    And,
    Or,
}

impl Connective {
    /// The ONNX op.
    pub fn onnx(self) -> &'static str {
        match self {
            Connective::And => "And",
            Connective::Or => "Or",
        }
    }

    pub fn holds(self, a: bool, b: bool) -> bool {
        match self {
            Connective::And => a && b,
            Connective::Or => a || b,
        }
    }
}

logical_op!(Logic { op: Connective }, binary_shape, Exact);
