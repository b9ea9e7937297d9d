//! Tanh. Its output has the fixed [-1, 1) encoding (HTP requires offset −32768 at 16 bits).

use serde::{Deserialize, Serialize};

use super::{same_shape, FixedRange, OpDef};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tanh;

impl OpDef for Tanh {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        same_shape(ins)
    }

    fn fixed_range(&self) -> Option<FixedRange> {
        Some(FixedRange::SignedUnit)
    }
}
