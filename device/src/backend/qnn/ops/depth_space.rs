//! DepthSpace → DepthToSpace (mode DCR or CRD) or SpaceToDepth, both over NHWC as QNN defines them: the
//! same functions as ONNX's on NCHW.

use qnn_sys::ParamSpec;

use super::{pair, Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::DepthSpace;

impl Lower for DepthSpace {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let block = pair("block_size", [self.block, self.block]);
        if self.to_depth {
            cx.node("SpaceToDepth", &[block])
        } else {
            cx.node(
                "DepthToSpace",
                &[block, ParamSpec::U32("mode", self.crd as u32)],
            )
        }
    }
}
