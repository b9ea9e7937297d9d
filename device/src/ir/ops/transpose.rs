//! Transpose by a permutation that keeps the batch axis first. It only moves values, so its output keeps its
//! input's encoding.

use serde::{Deserialize, Serialize};

use super::{same_shape, OpDef};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transpose {
    pub perm: Vec<usize>,
}

impl OpDef for Transpose {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        let x = same_shape(ins)?;
        let perm = &self.perm;
        let mut sorted = perm.clone();
        sorted.sort_unstable();
        if sorted != (0..x.len()).collect::<Vec<_>>() || perm.first() != Some(&0) {
            return Err(format!(
                "perm {perm:?} invalid for shape {x:?} (must keep the batch axis first)"
            ));
        }
        Ok(perm.iter().map(|&p| x[p]).collect())
    }

    fn passthrough(&self) -> bool {
        true
    }
}
