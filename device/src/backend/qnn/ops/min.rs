//! Min → ElementWiseMinimum.

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::Min;

impl Lower for Min {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        cx.node("ElementWiseMinimum", &[])
    }
}
