//! Not: the negation of a boolean tensor (an Equal, a Cast to bool, another Not).

use serde::{Deserialize, Serialize};

use super::{same_shape, OpDef};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Not;

impl OpDef for Not {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        same_shape(ins)
    }

    fn logical(&self) -> bool {
        true
    }
}
