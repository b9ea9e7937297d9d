//! Neg → ElementWiseNeg.

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::Neg;

impl Lower for Neg {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        cx.node("ElementWiseNeg", &[])
    }
}
