//! Max: element-wise maximum with numpy broadcasting; a constant operand of any broadcastable shape (a
//! per-channel floor, say).

use serde::{Deserialize, Serialize};

use super::{binary_shape, OpDef};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Max;

impl OpDef for Max {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        binary_shape(ins)
    }
}
