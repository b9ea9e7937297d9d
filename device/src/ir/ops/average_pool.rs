//! AveragePool: the mean of each window (padded cells count when `count_include_pad`).

use serde::{Deserialize, Serialize};

use super::{OpDef, Pool};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AveragePool(pub Pool);

impl OpDef for AveragePool {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        self.0.infer(ins)
    }
}
