//! Equal: whether the values two inputs stand for are equal, element by element with numpy broadcasting (a
//! constant operand of any broadcastable shape). The result is boolean: exact, never quantized
//! ([`OpDef::logical`]); it is read as a condition (Where), by Not or through a Cast to float.

use serde::{Deserialize, Serialize};

use super::{binary_shape, OpDef};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Equal;

impl OpDef for Equal {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        binary_shape(ins)
    }

    fn logical(&self) -> bool {
        true
    }
}
