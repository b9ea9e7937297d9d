//! Reshape → Reshape. Flattening an NHWC tensor first puts it back in NCHW order with a Transpose, so the
//! flat order is the IR's; reshaping to rank 4 goes to NCHW and then transposes to NHWC, unless the result
//! has one channel or one pixel (where both orders agree). Booleans move the same way, as BOOL_8.

use qnn_sys::ParamSpec;

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::Reshape;

impl Lower for Reshape {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let (src, rank) = (cx.in_shape(0), cx.rank());
        let mut ins = cx.inputs()?;
        let out = cx.b.g.tensors[cx.n.output].shape.clone();
        // flattening an NHWC tensor, or making one (unless one channel or one pixel: NCHW and NHWC then
        // share the flat order)
        let from_nhwc = src.len() == 4 && src[2] * src[3] != 1 && rank != 4;
        let to_nhwc = rank == 4 && src.len() != 4 && out[1] != 1 && out[2] * out[3] != 1;
        let batch = cx.b.batch as u32;
        if from_nhwc {
            let nchw = [batch, src[1] as u32, src[2] as u32, src[3] as u32];
            let tmp = cx.like_input("to_nchw", &nchw)?;
            let perm = ParamSpec::U32Tensor("perm", vec![4], vec![0, 3, 1, 2]);
            let node = cx.b.fresh("transpose");
            cx.b.q
                .node(&node, "Transpose", &[perm], &[ins[0]], &[tmp])?;
            ins[0] = tmp;
        } else if to_nhwc {
            // the IR's flat order is NCHW's: reshape to NCHW, then transpose to the NHWC kept on HTP
            let nchw = [batch, out[1] as u32, out[2] as u32, out[3] as u32];
            let tmp = cx.like_input("as_nchw", &nchw)?;
            let node = cx.b.fresh("reshape");
            cx.b.q.node(&node, "Reshape", &[], &[ins[0]], &[tmp])?;
            let perm = ParamSpec::U32Tensor("perm", vec![4], vec![0, 2, 3, 1]);
            return cx.emit("Transpose", &[perm], &[tmp]);
        }
        cx.emit("Reshape", &[], &ins)
    }
}
