//! Gelu: x · Φ(x), exactly (with erf) or by ONNX's tanh approximation.

use serde::{Deserialize, Serialize};

use super::{same_shape, OpDef};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gelu {
    /// ONNX's `approximate="tanh"`: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    pub tanh: bool,
}

impl OpDef for Gelu {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        same_shape(ins)
    }
}
