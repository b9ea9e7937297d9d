//! Div → ElementWiseDivide.

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::Div;

impl Lower for Div {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        cx.node("ElementWiseDivide", &[])
    }
}
