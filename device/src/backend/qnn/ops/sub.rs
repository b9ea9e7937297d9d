//! Sub → ElementWiseSubtract.

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::Sub;

impl Lower for Sub {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        cx.node("ElementWiseSubtract", &[])
    }
}
