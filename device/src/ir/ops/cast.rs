//! Cast between float and boolean activations: to bool, whether the value an input stands for is not zero
//! (exact whatever the encoding, as every encoding holds zero exactly); to float, a boolean as 0 or 1, a
//! float activation quantized like any other. A Cast from float to float is no op at all (the importer
//! drops it).

use serde::{Deserialize, Serialize};

use super::{same_shape, OpDef};

/// The element type a Cast writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CastTo {
    Bool,
    Float,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cast {
    pub to: CastTo,
}

impl OpDef for Cast {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        same_shape(ins)
    }

    fn logical(&self) -> bool {
        self.to == CastTo::Bool
    }
}
