//! Exp: eˣ.

use serde::{Deserialize, Serialize};

use super::{same_shape, OpDef};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Exp;

impl OpDef for Exp {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        same_shape(ins)
    }
}
