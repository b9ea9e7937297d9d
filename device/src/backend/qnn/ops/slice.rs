//! Slice → StridedSlice, its `ranges` (begin, end, stride per axis) mapped through NHWC storage; booleans go
//! through it as bytes (HTP's StridedSlice takes UINT_8, not BOOL_8).

use qnn_sys::ParamSpec;

use super::{Lower, NodeCx, NHWC_ORDER};
use crate::backend::qnn::Result;
use crate::ir::Slice;

impl Lower for Slice {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let rank = cx.rank();
        let batch = cx.b.batch as i32;
        // IR axis of each QNN axis
        let order: Vec<usize> = if rank == 4 {
            NHWC_ORDER.to_vec()
        } else {
            (0..rank).collect()
        };
        // (begin, end, stride) of IR axis a; the end is one step past the last index read. A negative step
        // that reads index 0 would end at −1, which QNN counts from the back: its `end_mask` bit says "to
        // the first index" instead
        let mut end_mask = 0u32;
        let mut ranges = Vec::with_capacity(rank * 3);
        for (q, &a) in order.iter().enumerate() {
            if a == 0 {
                ranges.extend([0, batch, 1]);
                continue;
            }
            let step = self.steps[a] as i32;
            let last = self.index(a, self.lens[a] - 1) as i32;
            let end = if step > 0 { last + 1 } else { last - 1 };
            if end < 0 {
                end_mask |= 1 << q;
            }
            ranges.extend([self.starts[a] as i32, end.max(0), step]);
        }
        let mut params = vec![ParamSpec::I32Tensor("ranges", vec![rank as u32, 3], ranges)];
        if end_mask != 0 {
            params.push(ParamSpec::U32("end_mask", end_mask));
        }
        let ins = cx.inputs()?;
        cx.emit_bytes_for_booleans("StridedSlice", &params, &ins)
    }
}
