//! Softmax along one axis. Its output has the fixed [0, 1) encoding.

use serde::{Deserialize, Serialize};

use super::{same_shape, FixedRange, OpDef};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Softmax {
    pub axis: usize,
}

impl OpDef for Softmax {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        let x = same_shape(ins)?;
        if self.axis >= x.len() {
            return Err(format!("axis {} out of range for shape {x:?}", self.axis));
        }
        Ok(x)
    }

    fn fixed_range(&self) -> Option<FixedRange> {
        Some(FixedRange::Unit)
    }
}
