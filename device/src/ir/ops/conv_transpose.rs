//! ConvTranspose: the 2-D transposed convolution over NCHW (the gradient of Conv with respect to its input),
//! one group. Each input pixel scatters its channels through the kernel into a `strides`-spaced window of
//! the output; `pads` crop the full result and `output_padding` adds rows and columns at its end.

use serde::{Deserialize, Serialize};

use super::{need, rank4, Mac, OpDef, Operand};

/// Inputs: x, weight `[cin, cout, kh, kw]` (ONNX's layout: output channels on axis 1), optional bias
/// `[cout]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConvTranspose {
    pub strides: [usize; 2],
    /// Cropped from the full output: top, left, bottom, right.
    pub pads: [usize; 4],
    pub dilations: [usize; 2],
    /// Added at the bottom and the right of the output.
    pub output_padding: [usize; 2],
}

impl ConvTranspose {
    /// Output rows or columns for `input` of them along spatial axis `a` with a kernel of `k`.
    pub fn out_size(&self, a: usize, input: usize, k: usize) -> Result<usize, String> {
        let full = (input - 1) * self.strides[a]
            + self.dilations[a] * (k - 1)
            + 1
            + self.output_padding[a];
        let crop = self.pads[a] + self.pads[a + 2];
        if input == 0 || k == 0 || full <= crop {
            return Err(format!(
                "pads {:?} leave no output of {input} inputs and a kernel of {k} along axis {}",
                self.pads,
                a + 2
            ));
        }
        Ok(full - crop)
    }
}

impl OpDef for ConvTranspose {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        need(ins, 2)?;
        let (x, w) = (ins[0], ins[1]);
        rank4(x, "input")?;
        rank4(w, "weight")?;
        if x[1] != w[0] {
            return Err(format!(
                "input has {} channels, weight {w:?} expects {}",
                x[1], w[0]
            ));
        }
        if ins.len() > 2 && ins[2] != [w[1]] {
            return Err(format!(
                "bias shape {:?} does not match {} output channels",
                ins[2], w[1]
            ));
        }
        for a in 0..2 {
            if self.output_padding[a] >= self.strides[a].max(self.dilations[a]) {
                return Err(format!(
                    "output_padding {:?} must be smaller than the stride or the dilation",
                    self.output_padding
                ));
            }
        }
        let h = self.out_size(0, x[2], w[2])?;
        let wd = self.out_size(1, x[3], w[3])?;
        Ok(vec![x[0], w[1], h, wd])
    }

    fn mac(&self) -> Mac {
        Mac::Weights { out_axis: 1 }
    }

    /// Every input value meets every output channel at every tap.
    fn macs(&self, ins: &[&[usize]], _out: &[usize]) -> u64 {
        let per_in: usize = ins[1][1..].iter().product();
        (ins[0].iter().product::<usize>() * per_in) as u64
    }

    fn operand(&self, _k: usize, _bits: u8) -> Operand {
        Operand::Weights
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_size_matches_onnx_formula() {
        let c = ConvTranspose {
            strides: [2, 2],
            pads: [1, 1, 1, 1],
            dilations: [1, 1],
            output_padding: [1, 0],
        };
        // (7 − 1)·2 + 3 − 2 (+1 output padding on H)
        let s = c.infer(&[&[1, 4, 7, 7], &[4, 6, 3, 3]]).unwrap();
        assert_eq!(s, vec![1, 6, 14, 13]);
        assert_eq!(c.macs(&[&[1, 4, 7, 7], &[4, 6, 3, 3]], &s), 4 * 49 * 6 * 9);
        let crop_all = ConvTranspose {
            pads: [2, 0, 2, 0],
            ..c.clone()
        };
        assert!(crop_all.infer(&[&[1, 4, 1, 1], &[4, 6, 3, 3]]).is_err());
        let big_op = ConvTranspose {
            output_padding: [2, 0],
            ..c
        };
        assert!(big_op.infer(&[&[1, 4, 7, 7], &[4, 6, 3, 3]]).is_err());
    }
}
