//! Where (QNN's ElementWiseSelect): input 1 where the boolean condition (input 0) holds, else input 2, with
//! numpy broadcasting over all three. Inputs 1 and 2 may be constants (a mask's fill value), stored over
//! their own range at the op's width like any element-wise operand; the output has its own encoding.

use serde::{Deserialize, Serialize};

use super::{need, OpDef};
use crate::ir::broadcast;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Where;

impl OpDef for Where {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        need(ins, 3)?;
        let ab = broadcast(ins[1], ins[2])?;
        broadcast(ins[0], &ab)
    }
}
