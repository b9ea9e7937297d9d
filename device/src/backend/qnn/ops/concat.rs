//! Concat → Concat, its axis mapped to NHWC; the inputs are converted to the output's width.

use qnn_sys::ParamSpec;

use super::{Lower, NodeCx, NCHW_IN_NHWC};
use crate::backend::qnn::Result;
use crate::ir::Concat;

impl Lower for Concat {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let axis = if cx.rank() == 4 {
            NCHW_IN_NHWC[self.axis]
        } else {
            self.axis
        };
        cx.node("Concat", &[ParamSpec::U32("axis", axis as u32)])
    }
}
