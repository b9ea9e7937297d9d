//! Add → ElementWiseAdd.

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::Add;

impl Lower for Add {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        cx.node("ElementWiseAdd", &[])
    }
}
