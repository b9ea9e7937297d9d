//! Tile: the input repeated `reps[a]` times along each axis (the batch axis once). ONNX Expand of an
//! activation imports as the Tile that broadcasts its size-1 axes. Values only move, so the output keeps its
//! input's encoding.

use serde::{Deserialize, Serialize};

use super::{same_shape, OpDef};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tile {
    pub reps: Vec<usize>,
}

impl OpDef for Tile {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        let x = same_shape(ins)?;
        let reps = &self.reps;
        if reps.len() != x.len() || reps.first() != Some(&1) || reps.contains(&0) {
            return Err(format!(
                "repeats {reps:?} invalid for shape {x:?} (one per axis, at least 1, the batch axis once)"
            ));
        }
        Ok(x.iter().zip(reps).map(|(&d, &r)| d * r).collect())
    }

    fn passthrough(&self) -> bool {
        true
    }
}
