//! Slice of an activation: along each axis, `len` elements from `start` every `step` (a negative step walks
//! backwards). The batch axis is kept whole. It only moves values, so its output keeps its input's encoding.
//! ONNX Split imports as one Slice per output.

use serde::{Deserialize, Serialize};

use super::{same_shape, OpDef};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Slice {
    /// Per axis, the first index read (axis 0: 0).
    pub starts: Vec<usize>,
    /// Per axis, the distance between indices read (axis 0: 1).
    pub steps: Vec<i64>,
    /// Per axis, how many indices are read (axis 0: ignored, the batch passes whole).
    pub lens: Vec<usize>,
}

impl Slice {
    /// The input index read at output index `j` of `axis`.
    pub fn index(&self, axis: usize, j: usize) -> usize {
        (self.starts[axis] as i64 + j as i64 * self.steps[axis]) as usize
    }
}

impl OpDef for Slice {
    fn infer(&self, ins: &[&[usize]]) -> Result<Vec<usize>, String> {
        let x = same_shape(ins)?;
        let r = x.len();
        if self.starts.len() != r || self.steps.len() != r || self.lens.len() != r {
            return Err(format!(
                "slice of rank {} for shape {x:?}",
                self.starts.len()
            ));
        }
        if self.starts[0] != 0 || self.steps[0] != 1 {
            return Err("slicing the batch axis".into());
        }
        for (a, &d) in x.iter().enumerate().skip(1) {
            let (s, st, n) = (self.starts[a] as i64, self.steps[a], self.lens[a] as i64);
            let last = s + (n - 1) * st;
            if st == 0 || n == 0 || s >= d as i64 || last < 0 || last >= d as i64 {
                return Err(format!(
                    "axis {a}: {n} elements from {s} every {st} do not fit in {d}"
                ));
            }
        }
        let mut out = self.lens.clone();
        out[0] = x[0];
        Ok(out)
    }

    fn passthrough(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_focus_slice_halves_the_spatial_axes_and_bad_ranges_are_named() {
        let s = Slice {
            starts: vec![0, 0, 1, 0],
            steps: vec![1, 1, 2, 2],
            lens: vec![1, 3, 4, 4],
        };
        assert_eq!(s.infer(&[&[2, 3, 8, 8]]).unwrap(), vec![2, 3, 4, 4]);
        assert_eq!(s.index(2, 3), 7);
        let e = s.infer(&[&[1, 3, 7, 8]]).unwrap_err();
        assert!(e.contains("axis 2"), "{e}");
        let back = Slice {
            starts: vec![0, 2],
            steps: vec![1, -1],
            lens: vec![1, 3],
        };
        assert_eq!(back.infer(&[&[1, 3]]).unwrap(), vec![1, 3]);
        assert_eq!(back.index(1, 2), 0);
    }
}
