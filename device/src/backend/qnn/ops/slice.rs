//! Slice → StridedSlice, its `ranges` (begin, end, stride per axis) mapped through NHWC storage.

use qnn_sys::ParamSpec;

use super::{Lower, NodeCx, NHWC_ORDER};
use crate::backend::qnn::Result;
use crate::ir::Slice;

impl Lower for Slice {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        if self.steps.iter().any(|&s| s < 0) {
            return Err(cx.unsupported("a negative step"));
        }
        let rank = cx.rank();
        let batch = cx.b.batch as i32;
        // (begin, end, stride) of IR axis a; the end is one past the last index read
        let range = |a: usize| -> [i32; 3] {
            if a == 0 {
                return [0, batch, 1];
            }
            let last = self.index(a, self.lens[a] - 1) as i32;
            [self.starts[a] as i32, last + 1, self.steps[a] as i32]
        };
        let ranges: Vec<i32> = if rank == 4 {
            NHWC_ORDER.iter().flat_map(|&a| range(a)).collect()
        } else {
            (0..rank).flat_map(range).collect()
        };
        cx.node(
            "StridedSlice",
            &[ParamSpec::I32Tensor("ranges", vec![rank as u32, 3], ranges)],
        )
    }
}
