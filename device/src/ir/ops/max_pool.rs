//! MaxPool: the largest value of each window. It only selects values, so its output keeps its input's
//! encoding.

use serde::{Deserialize, Serialize};

use super::{OpDef, Pool};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaxPool(pub Pool);

impl OpDef for MaxPool {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        self.0.infer(ins)
    }

    fn passthrough(&self) -> bool {
        true
    }
}
