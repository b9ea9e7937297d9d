//! Mul → ElementWiseMultiply.

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::Mul;

impl Lower for Mul {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        cx.node("ElementWiseMultiply", &[])
    }
}
