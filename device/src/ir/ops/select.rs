//! Where (QNN's ElementWiseSelect): input 1 where the boolean condition (input 0) holds, else input 2, with
//! numpy broadcasting over all three. Inputs 1 and 2 may be constants (a mask's fill value), stored over
//! their own range at the op's width like any element-wise operand, and the condition a constant (a causal
//! mask), kept as booleans; the output has its own encoding.

use serde::{Deserialize, Serialize};

use super::{need, OpDef, Operand};
use crate::ir::broadcast;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Where;

impl OpDef for Where {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        need(ins, 3)?;
        let ab = broadcast(ins[1], ins[2])?;
        broadcast(ins[0], &ab)
    }

    /// A constant condition (a causal mask) is kept as booleans; constant values are stored as any
    /// element-wise operand.
    fn operand(&self, k: usize, _bits: u8) -> Operand {
        match k {
            0 => Operand::Exact,
            _ => Operand::MinMax,
        }
    }
}
