//! Relu: max(x, 0). QNN folds it into a MAC op or element-wise op that it alone reads.

use serde::{Deserialize, Serialize};

use super::{same_shape, OpDef};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Relu;

impl OpDef for Relu {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        same_shape(ins)
    }

    fn activation_clamp(&self) -> Option<(f32, f32)> {
        Some((0.0, f32::INFINITY))
    }
}
