//! Softmax along one axis, or its logarithm (ONNX LogSoftmax: `log`). A Softmax's output has the fixed [0, 1)
//! encoding; a LogSoftmax's (at most 0) is calibrated.

use serde::{Deserialize, Serialize};

use super::{same_shape, FixedRange, OpDef};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Softmax {
    pub axis: usize,
    /// LogSoftmax: the logarithm of the probabilities.
    #[serde(default)]
    pub log: bool,
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
        (!self.log).then_some(FixedRange::Unit)
    }
}
