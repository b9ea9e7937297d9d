//! ScaleShift: per-channel y = x · scale + shift on axis 1, a BatchNormalization that could not fold into a
//! preceding Conv/Gemm. Inputs: x, scale `[C]`, shift `[C]`.

use serde::{Deserialize, Serialize};

use super::{need, OpDef, Operand};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScaleShift;

impl OpDef for ScaleShift {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        need(ins, 3)?;
        let x = ins[0];
        if x.len() < 2 || ins[1] != [x[1]] || ins[2] != [x[1]] {
            return Err(format!(
                "scale/shift {:?}/{:?} do not match {} channels",
                ins[1],
                ins[2],
                x.get(1).unwrap_or(&0)
            ));
        }
        Ok(x.to_vec())
    }

    fn operand(&self, k: usize, bits: u8) -> Operand {
        scale_and_shift(k, bits)
    }
}

/// The operands of a scale (input 1) and a shift (input 2): HTP's Batchnorm takes a 16-bit scale only
/// symmetric, and the shift as an int32 bias; at 8 bits both over their own range. LayerNorm's gamma and
/// beta follow the same rule (measured on HTP: within 1 LSB at every width).
pub(crate) fn scale_and_shift(k: usize, bits: u8) -> Operand {
    match (k, bits) {
        (1, 16) => Operand::Symmetric,
        (2, 16) => Operand::Int32Bias,
        _ => Operand::MinMax,
    }
}
