//! DepthToSpace and SpaceToDepth of an NCHW tensor by a square block: blocks of `block`² channels become
//! `block` × `block` pixels, or the reverse. Channels are read depth-column-row (ONNX's DCR, TensorFlow's
//! layout) or column-row-depth (CRD, PyTorch's PixelShuffle). Values only move, so the output keeps its
//! input's encoding.

use serde::{Deserialize, Serialize};

use super::{same_shape, OpDef};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DepthSpace {
    pub block: usize,
    /// SpaceToDepth (else DepthToSpace).
    pub to_depth: bool,
    /// CRD channel order (else DCR); SpaceToDepth has DCR only.
    pub crd: bool,
}

impl DepthSpace {
    /// For output index (c, h, w) of an output with `c_out` channels, the input index (c, h, w).
    pub fn source(&self, c_out: usize, (c, h, w): (usize, usize, usize)) -> (usize, usize, usize) {
        let b = self.block;
        if self.to_depth {
            // output channel (i·b + j)·C + c holds input pixel (h·b + i, w·b + j) of channel c
            let cin = c_out / (b * b);
            let (ij, c0) = (c / cin, c % cin);
            (c0, h * b + ij / b, w * b + ij % b)
        } else {
            let (i, j) = (h % b, w % b);
            let ch = if self.crd {
                c * b * b + i * b + j
            } else {
                (i * b + j) * c_out + c
            };
            (ch, h / b, w / b)
        }
    }
}

impl OpDef for DepthSpace {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        let x = same_shape(ins)?;
        let b = self.block;
        if x.len() != 4 || b == 0 {
            return Err(format!(
                "block {b} of shape {x:?}: amp handles NCHW tensors"
            ));
        }
        if self.to_depth {
            if x[2] % b != 0 || x[3] % b != 0 {
                return Err(format!(
                    "height and width of {x:?} are not multiples of {b}"
                ));
            }
            Ok(vec![x[0], x[1] * b * b, x[2] / b, x[3] / b])
        } else {
            if x[1] % (b * b) != 0 {
                return Err(format!("{} channels are not a multiple of {}", x[1], b * b));
            }
            Ok(vec![x[0], x[1] / (b * b), x[2] * b, x[3] * b])
        }
    }

    fn passthrough(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_to_depth_undoes_dcr_depth_to_space() {
        let d2s = DepthSpace {
            block: 2,
            to_depth: false,
            crd: false,
        };
        let s2d = DepthSpace {
            to_depth: true,
            ..d2s.clone()
        };
        assert_eq!(d2s.infer(&[&[1, 8, 3, 3]]).unwrap(), vec![1, 2, 6, 6]);
        assert_eq!(s2d.infer(&[&[1, 2, 6, 6]]).unwrap(), vec![1, 8, 3, 3]);
        for c in 0..2 {
            for h in 0..6 {
                for w in 0..6 {
                    let mid = d2s.source(2, (c, h, w));
                    assert_eq!(s2d.source(8, mid), (c, h, w));
                }
            }
        }
        assert!(d2s.infer(&[&[1, 6, 3, 3]]).is_err());
    }
}
