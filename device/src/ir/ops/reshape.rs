//! Reshape to the stored shape, with dimension 0 taken from the input's batch (Flatten, Squeeze and
//! Unsqueeze import as this). It only moves values, so its output keeps its input's encoding.

use serde::{Deserialize, Serialize};

use super::{same_shape, OpDef};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reshape {
    pub shape: Vec<usize>,
}

impl OpDef for Reshape {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        let x = same_shape(ins)?;
        let shape = &self.shape;
        if shape.iter().product::<usize>() != x.iter().product::<usize>()
            || shape.first() != x.first()
        {
            return Err(format!(
                "cannot reshape {x:?} to {shape:?} keeping the batch axis"
            ));
        }
        Ok(shape.clone())
    }

    fn passthrough(&self) -> bool {
        true
    }
}
