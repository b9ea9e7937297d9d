//! Min: element-wise minimum with numpy broadcasting; a constant operand of any broadcastable shape (a
//! per-channel bound after a Relu, say).

use serde::{Deserialize, Serialize};

use super::{binary_shape, OpDef};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Min;

impl OpDef for Min {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        binary_shape(ins)
    }
}
