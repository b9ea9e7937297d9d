//! Sub: element-wise a − b, with numpy broadcasting (constant operands of any broadcastable shape).

use serde::{Deserialize, Serialize};

use super::{binary_shape, OpDef};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sub;

impl OpDef for Sub {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        binary_shape(ins)
    }

    /// HTP fuses a lone Relu/Clip reader into the op (measured in the one-op suite: Add → Clip(0, 6) was
    /// 5 LSB off with double rounding, ≤ 1 LSB without).
    fn act_reads_exact(&self) -> bool {
        true
    }
}
