//! Exp → ElementWiseExp.

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::Exp;

impl Lower for Exp {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        cx.node("ElementWiseExp", &[])
    }
}
