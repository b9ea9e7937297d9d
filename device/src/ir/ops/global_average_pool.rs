//! GlobalAveragePool: the mean of each channel's spatial plane.

use serde::{Deserialize, Serialize};

use super::{same_shape, OpDef};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GlobalAveragePool;

impl OpDef for GlobalAveragePool {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        let mut s = same_shape(ins)?;
        if s.len() < 3 {
            return Err(format!("input must have spatial dims, found {s:?}"));
        }
        s[2..].iter_mut().for_each(|d| *d = 1);
        Ok(s)
    }
}
