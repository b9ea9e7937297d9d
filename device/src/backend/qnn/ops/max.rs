//! Max → ElementWiseMaximum.

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::Max;

impl Lower for Max {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        cx.node("ElementWiseMaximum", &[])
    }
}
