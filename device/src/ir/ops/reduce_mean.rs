//! ReduceMean over some axes (never the batch axis), keeping them as size 1 or not.

use serde::{Deserialize, Serialize};

use super::{same_shape, OpDef};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReduceMean {
    /// Sorted.
    pub axes: Vec<usize>,
    pub keepdims: bool,
}

impl OpDef for ReduceMean {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        let x = same_shape(ins)?;
        let axes = &self.axes;
        if axes.iter().any(|&a| a >= x.len() || a == 0) {
            return Err(format!(
                "axes {axes:?} invalid for shape {x:?} (the batch axis cannot be reduced)"
            ));
        }
        Ok(x.iter()
            .enumerate()
            .filter_map(|(i, &d)| match (axes.contains(&i), self.keepdims) {
                (false, _) => Some(d),
                (true, true) => Some(1),
                (true, false) => None,
            })
            .collect())
    }
}
