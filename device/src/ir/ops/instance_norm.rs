//! InstanceNorm: per sample and channel, (x − mean) / √(var + ε) · scale[c] + bias[c] over the spatial axes
//! (2 onwards). Inputs: x (rank 3 or more, channels on axis 1), scale `[C]` and bias `[C]`, constants.
//! Imported from ONNX's InstanceNormalization.

use serde::{Deserialize, Serialize};

use super::{need, OpDef, Operand};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceNorm {
    pub epsilon: f32,
}

impl OpDef for InstanceNorm {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        need(ins, 3)?;
        let x = ins[0];
        if x.len() < 3 {
            return Err(format!(
                "input {x:?} has no spatial axis to normalise (rank 3 or more, channels on axis 1)"
            ));
        }
        for (k, what) in [(1, "scale"), (2, "bias")] {
            if ins[k] != [x[1]] {
                return Err(format!(
                    "{what} {:?} does not match {} channels",
                    ins[k], x[1]
                ));
            }
        }
        Ok(x.to_vec())
    }

    /// As ScaleShift's scale and shift.
    fn operand(&self, k: usize, bits: u8) -> Operand {
        super::scale_shift::scale_and_shift(k, bits)
    }
}
