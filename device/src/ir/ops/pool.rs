//! The window MaxPool and AveragePool share, and its output shape.

use serde::{Deserialize, Serialize};

use super::{need, rank4};
use crate::ir::shape::conv_out;

/// A 2-D pooling window over NCHW.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    /// top, left, bottom, right
    pub pads: [usize; 4],
    pub ceil_mode: bool,
    /// AveragePool only: padded cells count in the divisor.
    pub count_include_pad: bool,
}

impl Pool {
    pub(crate) fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        need(ins, 1)?;
        let x = ins[0];
        rank4(x, "input")?;
        let (k, s, p, ceil) = (self.kernel, self.strides, self.pads, self.ceil_mode);
        let h = conv_out(x[2], k[0], s[0], p[0], p[2], 1, ceil)?;
        let w = conv_out(x[3], k[1], s[1], p[1], p[3], 1, ceil)?;
        Ok(vec![x[0], x[1], h, w])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceil_mode_pooling_rounds_up() {
        let p = Pool {
            kernel: [2, 2],
            strides: [2, 2],
            pads: [0; 4],
            ceil_mode: true,
            count_include_pad: false,
        };
        assert_eq!(p.infer(&[&[1, 1, 5, 5]]).unwrap(), vec![1, 1, 3, 3]);
        let p = Pool {
            ceil_mode: false,
            ..p
        };
        assert_eq!(p.infer(&[&[1, 1, 5, 5]]).unwrap(), vec![1, 1, 2, 2]);
    }
}
