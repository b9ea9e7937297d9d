//! Clip: x limited to [min, max] (ReLU6 is Clip(0, 6)). QNN folds it like Relu.

use serde::{Deserialize, Serialize};

use super::{same_shape, OpDef};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Clip {
    pub min: f32,
    pub max: f32,
}

impl OpDef for Clip {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        same_shape(ins)
    }

    fn activation_clamp(&self) -> Option<(f32, f32)> {
        Some((self.min, self.max))
    }
}
