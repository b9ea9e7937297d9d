//! Erf: the error function.

use serde::{Deserialize, Serialize};

use super::{same_shape, OpDef};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Erf;

impl OpDef for Erf {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        same_shape(ins)
    }
}
