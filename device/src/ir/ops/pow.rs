//! Pow with a constant exponent: xᵉ.

use serde::{Deserialize, Serialize};

use super::{same_shape, OpDef};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pow {
    pub exponent: f32,
}

impl OpDef for Pow {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        same_shape(ins)
    }
}
