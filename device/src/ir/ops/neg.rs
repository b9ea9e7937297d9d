//! Neg: −x.

use serde::{Deserialize, Serialize};

use super::{same_shape, OpDef};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Neg;

impl OpDef for Neg {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        same_shape(ins)
    }
}
