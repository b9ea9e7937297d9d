//! Pad with a constant (never the batch axis). Zero padding is exact in every encoding (ranges include 0), so
//! the output keeps its input's encoding.

use serde::{Deserialize, Serialize};

use super::{same_shape, OpDef};

/// Pads as ONNX orders them: all begins, then all ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pad {
    pub pads: Vec<usize>,
    pub value: f32,
}

impl OpDef for Pad {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        let x = same_shape(ins)?;
        let (r, pads) = (x.len(), &self.pads);
        if pads.len() != 2 * r || pads[0] != 0 || pads[r] != 0 {
            return Err(format!(
                "pads {pads:?} invalid for shape {x:?} (the batch axis cannot be padded)"
            ));
        }
        Ok(x.iter()
            .enumerate()
            .map(|(i, &d)| d + pads[i] + pads[i + r])
            .collect())
    }

    fn passthrough(&self) -> bool {
        true
    }
}
