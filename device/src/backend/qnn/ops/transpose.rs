//! Transpose → Transpose, the permutation mapped through NHWC storage.

use qnn_sys::ParamSpec;

use super::{Lower, NodeCx, NCHW_IN_NHWC, NHWC_ORDER};
use crate::backend::qnn::Result;
use crate::ir::Transpose;

impl Lower for Transpose {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let (perm, rank) = (&self.perm, cx.rank());
        if perm[0] != 0 {
            return Err(cx.unsupported("moving the batch axis"));
        }
        let q: Vec<u32> = if rank == 4 {
            // QNN axis i holds NCHW axis NHWC_ORDER[i] of the output, which is input NCHW axis perm[..],
            // found in the input's NHWC storage at NCHW_IN_NHWC[..]
            (0..4)
                .map(|i| NCHW_IN_NHWC[perm[NHWC_ORDER[i]]] as u32)
                .collect()
        } else {
            perm.iter().map(|&a| a as u32).collect()
        };
        cx.node(
            "Transpose",
            &[ParamSpec::U32Tensor("perm", vec![rank as u32], q)],
        )
    }
}
