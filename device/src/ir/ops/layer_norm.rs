//! LayerNorm: over the axes from `axis` to the last, (x − mean) / √(var + ε) · gamma + beta. Inputs: x, gamma
//! and beta (constants of the normalised axes' shape, or broadcastable to it). Imported from ONNX's
//! LayerNormalization and from the pattern exporters decompose it into (ReduceMean, Sub, Pow, ReduceMean,
//! Add ε, Sqrt, Div, Mul, Add), as QNN's converter does.

use serde::{Deserialize, Serialize};

use super::{need, OpDef, Operand};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerNorm {
    /// The first normalised axis (never the batch axis).
    pub axis: usize,
    pub epsilon: f32,
}

impl OpDef for LayerNorm {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        need(ins, 3)?;
        let x = ins[0];
        if self.axis == 0 || self.axis >= x.len() {
            return Err(format!(
                "axis {} invalid for shape {x:?} (the batch axis cannot be normalised)",
                self.axis
            ));
        }
        let n: usize = x[self.axis..].iter().product();
        for (k, what) in [(1, "gamma"), (2, "beta")] {
            let m: usize = ins[k].iter().product();
            if m != n && m != 1 {
                return Err(format!(
                    "{what} {:?} does not match the normalised axes {:?}",
                    ins[k],
                    &x[self.axis..]
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
