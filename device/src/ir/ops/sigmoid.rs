//! Sigmoid: 1 / (1 + e⁻ˣ). Its output has the fixed [0, 1) encoding, which QNN requires.

use serde::{Deserialize, Serialize};

use super::{same_shape, FixedRange, OpDef};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sigmoid;

impl OpDef for Sigmoid {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        same_shape(ins)
    }

    fn fixed_range(&self) -> Option<FixedRange> {
        Some(FixedRange::Unit)
    }
}
