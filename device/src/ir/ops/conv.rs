//! Conv: 2-D convolution over NCHW, with groups (depthwise when every group has one input channel).

use serde::{Deserialize, Serialize};

use super::{conv_operands, Mac, OpDef};
use crate::ir::shape::conv_out;

/// Inputs: x, weight `[cout, cin/group, kh, kw]`, optional bias `[cout]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conv {
    pub strides: [usize; 2],
    /// top, left, bottom, right
    pub pads: [usize; 4],
    pub dilations: [usize; 2],
    pub group: usize,
}

impl Conv {
    /// One input channel per group and one group per output channel (`weight` is the weight's shape).
    pub fn is_depthwise(&self, weight: &[usize]) -> bool {
        weight.len() == 4 && weight[1] == 1 && self.group == weight[0] && self.group > 1
    }
}

impl OpDef for Conv {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        let (x, w) = conv_operands(ins, 0)?;
        if x[1] != w[1] * self.group || w[0] % self.group != 0 {
            return Err(format!(
                "input has {} channels, weight {w:?} with group {} expects {}",
                x[1],
                self.group,
                w[1] * self.group
            ));
        }
        let (s, p, d) = (self.strides, self.pads, self.dilations);
        let h = conv_out(x[2], w[2], s[0], p[0], p[2], d[0], false)?;
        let wd = conv_out(x[3], w[3], s[1], p[1], p[3], d[1], false)?;
        Ok(vec![x[0], w[0], h, wd])
    }

    fn mac(&self) -> Mac {
        Mac::Weights { out_axis: 0 }
    }

    fn macs(&self, ins: &[&[usize]], out: &[usize]) -> u64 {
        let per_out: usize = ins[1][1..].iter().product();
        (out.iter().product::<usize>() * per_out) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_size_matches_onnx_formula() {
        let c = Conv {
            strides: [2, 2],
            pads: [1, 1, 1, 1],
            dilations: [1, 1],
            group: 1,
        };
        let s = c.infer(&[&[1, 3, 28, 28], &[8, 3, 3, 3]]).unwrap();
        assert_eq!(s, vec![1, 8, 14, 14]);
        assert_eq!(
            c.macs(&[&[1, 3, 28, 28], &[8, 3, 3, 3]], &s),
            8 * 14 * 14 * 27
        );
    }
}
