//! ReduceMean, ReduceSum, ReduceMax and ReduceMin over some axes (never the batch axis), keeping them as size
//! 1 or not. A maximum or minimum only picks values, so it keeps its input's encoding.

use serde::{Deserialize, Serialize};

use super::{same_shape, OpDef};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReduceOp {
    Mean,
    Sum,
    Max,
    Min,
}

impl ReduceOp {
    /// The ONNX (and QNN) op's name.
    pub fn onnx(self) -> &'static str {
        match self {
            ReduceOp::Mean => "ReduceMean",
            ReduceOp::Sum => "ReduceSum",
            ReduceOp::Max => "ReduceMax",
            ReduceOp::Min => "ReduceMin",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reduce {
    pub op: ReduceOp,
    /// Sorted.
    pub axes: Vec<usize>,
    pub keepdims: bool,
}

impl OpDef for Reduce {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        let x = same_shape(ins)?;
        let axes = &self.axes;
        if axes.iter().any(|&a| a >= x.len() || a == 0) {
            return Err(format!(
                "axes {axes:?} invalid for shape {x:?} (the batch axis cannot be reduced)"
            ));
        }
        Ok(x.iter()
            .enumerate()
            .filter_map(|(i, &d)| match (axes.contains(&i), self.keepdims) {
                (false, _) => Some(d),
                (true, true) => Some(1),
                (true, false) => None,
            })
            .collect())
    }

    fn passthrough(&self) -> bool {
        matches!(self.op, ReduceOp::Max | ReduceOp::Min)
    }
}
