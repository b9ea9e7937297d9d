//! Concat of several inputs along one axis (not the batch axis); its inputs may have other encodings.

use serde::{Deserialize, Serialize};

use super::{same_shape, OpDef};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Concat {
    pub axis: usize,
}

impl OpDef for Concat {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        let mut s = same_shape(ins)?;
        let axis = self.axis;
        if axis >= s.len() || axis == 0 {
            return Err(format!("axis {axis} invalid for shape {s:?}"));
        }
        for other in &ins[1..] {
            let off_axis = |(i, &d): (usize, &usize)| i != axis && d != s[i];
            if other.len() != s.len() || other.iter().enumerate().any(off_axis) {
                return Err(format!(
                    "input shapes {:?} and {other:?} differ off axis {axis}",
                    ins[0]
                ));
            }
            s[axis] += other[axis];
        }
        Ok(s)
    }
}
