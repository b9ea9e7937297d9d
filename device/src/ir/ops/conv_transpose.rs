//! ConvTranspose: the 2-D transposed convolution over NCHW (the gradient of Conv with respect to its input),
//! one group. Each input pixel scatters its channels through the kernel into a `strides`-spaced window of
//! the output; `pads` crop the full result and `output_padding` adds rows and columns at its end.

use serde::{Deserialize, Serialize};

use super::{conv_operands, Mac, OpDef};

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
    /// The ONNX op's groups. The weights are stored block-diagonal (each input channel's row is zero outside
    /// its group's output channels), so the op computes as one group exactly: a zero weight is code 0 at
    /// every width. MACs count only the products within a group, as the grouped op does them.
    pub group: usize,
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

    /// The spatial size of a `kh × kw` kernel spread out at dilation 1 (see [`ConvTranspose::undilated`]).
    pub fn spread_kernel(&self, kh: usize, kw: usize) -> [usize; 2] {
        let [dy, dx] = self.dilations;
        [dy * (kh - 1) + 1, dx * (kw - 1) + 1]
    }

    /// The kernel `w` (`[cin, cout, kh, kw]`) at dilation 1: its taps `dilations` apart with zeros between,
    /// and its shape. With it and no dilation the op computes the same sums, tap for tap; QNN's
    /// TransposeConv2d and onnxruntime's QNN EP take no dilation.
    pub fn undilated(&self, w: &[f32], shape: &[usize]) -> (Vec<f32>, Vec<usize>) {
        let [dy, dx] = self.dilations;
        let (kh, kw) = (shape[2], shape[3]);
        let [sh, sw] = self.spread_kernel(kh, kw);
        let mut out = vec![0f32; shape[0] * shape[1] * sh * sw];
        for (plane, dst) in w.chunks_exact(kh * kw).zip(out.chunks_exact_mut(sh * sw)) {
            for (y, row) in plane.chunks_exact(kw).enumerate() {
                for (x, &v) in row.iter().enumerate() {
                    dst[y * dy * sw + x * dx] = v;
                }
            }
        }
        (out, vec![shape[0], shape[1], sh, sw])
    }
}

impl OpDef for ConvTranspose {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        let (x, w) = conv_operands(ins, 1)?;
        if x[1] != w[0] {
            return Err(format!(
                "input has {} channels, weight {w:?} expects {}",
                x[1], w[0]
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

    /// Every input value meets every output channel of its group at every tap.
    fn macs(&self, ins: &[&[usize]], _out: &[usize]) -> u64 {
        let per_in: usize = ins[1][1..].iter().product();
        (ins[0].iter().product::<usize>() * per_in / self.group.max(1)) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_size_matches_onnx_formula() {
        let up = |pads, output_padding| ConvTranspose {
            strides: [2, 2],
            pads,
            dilations: [1, 1],
            output_padding,
            group: 1,
        };
        let (x, w): (&[usize], &[usize]) = (&[1, 4, 7, 7], &[4, 6, 3, 3]);
        // (7 − 1)·2 + 3 − 2, and one more row of output padding
        let s = up([1; 4], [1, 0]).infer(&[x, w]).unwrap();
        assert_eq!(s, vec![1, 6, 14, 13]);
        assert_eq!(up([1; 4], [1, 0]).macs(&[x, w], &s), 4 * 49 * 6 * 9);
        // pads that crop the whole output; an output padding as large as the stride
        assert!(up([2, 0, 2, 0], [0, 0]).infer(&[&[1, 4, 1, 1], w]).is_err());
        assert!(up([1; 4], [2, 0]).infer(&[x, w]).is_err());
    }
}
