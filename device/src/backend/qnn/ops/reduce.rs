//! Reduce → ReduceMean, ReduceSum, ReduceMax or ReduceMin, its axes mapped to NHWC.

use qnn_sys::ParamSpec;

use super::{Lower, NodeCx, NCHW_IN_NHWC};
use crate::backend::qnn::Result;
use crate::ir::Reduce;

impl Lower for Reduce {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let src = cx.in_shape(0).len();
        let has = |a: usize| self.axes.contains(&a);
        if has(0) {
            return Err(cx.unsupported("reducing over the batch axis"));
        }
        // without keepdims, NHWC and NCHW orders agree on what remains only when the channel axis goes or
        // both spatial axes go
        let order_kept = self.keepdims || has(1) || (has(2) && has(3));
        if src == 4 && !order_kept {
            return Err(cx.unsupported("removing one spatial axis and keeping the channels"));
        }
        let axes: Vec<u32> = self
            .axes
            .iter()
            .map(|&a| if src == 4 { NCHW_IN_NHWC[a] } else { a } as u32)
            .collect();
        let params = [
            ParamSpec::U32Tensor("axes", vec![axes.len() as u32], axes),
            ParamSpec::Bool("keep_dims", self.keepdims),
        ];
        cx.node(self.op.onnx(), &params)
    }
}
