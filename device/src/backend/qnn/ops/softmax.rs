//! Softmax → Softmax, over the last axis (the channels of an NHWC tensor).

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::Softmax;

impl Lower for Softmax {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let rank = cx.rank();
        if self.axis != rank - 1 && !(rank == 4 && self.axis == 1) {
            return Err(cx.unsupported("HTP Softmax runs over the last (channel) axis only"));
        }
        cx.node("Softmax", &[])
    }
}
