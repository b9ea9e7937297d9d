//! HardSigmoid: clamp(alpha · x + beta, 0, 1). Its output has the fixed [0, 1) encoding: with a calibrated
//! 16-bit encoding the HTP emulator returned garbage (43,792 LSB off after one op; 10 LSB with the fixed one).

use serde::{Deserialize, Serialize};

use super::{same_shape, FixedRange, OpDef};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HardSigmoid {
    pub alpha: f32,
    pub beta: f32,
}

impl OpDef for HardSigmoid {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        same_shape(ins)
    }

    fn fixed_range(&self) -> Option<FixedRange> {
        Some(FixedRange::Unit)
    }
}
